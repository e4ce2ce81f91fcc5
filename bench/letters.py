"""Letters to officials: how long from a supporter's confirmation to the provider call, idle and while a
mailout drains, and what one confirmation costs as the ledger grows. Asserts nothing.

    .venv/bin/python bench/letters.py [--recipients 100000] [--letters 50] [--confirmations 60] [--runs 2]
        [--database-url URL]

Real parts, as ``bench/mailout.py`` has them (and from it): a redis-server of the benchmark's own, two
``mailer worker --concurrency 1`` processes serving both queues (the default deployment: no worker of
the letters' own), the fake SendGrid in a process of its own (light: the provider costs next to nothing
locally), and a database (SQLite in a temporary folder, or PostgreSQL beside ``--database-url``), seeded
with the demo campaign, its officials and N synthetic supporters, a fresh copy for every run.

Letters are written and confirmed in this process through the use-cases the pages call
(``letters.check_form``, ``letters.start_letter``, ``letters.confirm_letter_id``, which dispatches),
never through a browser; the signed link's check is left out. A letter's latency is measured per message
to an official, from just before its confirmation is called to the ``provider_called_at`` the worker
stamps on its ledger row just before calling the provider (the engine's side: the fake keeps counts
only). ``sent_at`` (the provider's acceptance) is reported beside it.

- **idle**: M letters, one every ``--letter-interval`` seconds, nothing else to send.
- **during a drain**: a mailout of N supporters is launched (workers running), then M letters are spread
  over the drain's expected remainder (from its rate in its first second); only letters confirmed before
  the mailout finished count.
- **confirmation cost**: no worker running; K confirmations timed one by one (wall and CPU time of this
  process, which for SQLite includes the database's work) with only letters in the ledger, then K more
  after a launch has queued N alert rows; medians, and their ratio.

Pacing is not measured: the campaign is loaded with ``pacing: {per_target_per_hour: 1000000, hours:
"00:00-24:00"}`` (the demo's own hours are the whole day already), so every letter may go at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.mailout import ENGINE_WORKER, Fake, Stack, Started, Store  # noqa: E402
from bench.report import Row, Section, grid, load_average, machine, min_median, write_results  # noqa: E402
from mailer import campaigns, letters, mailouts, targets  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.demo_setup import SEED_CAMPAIGN  # noqa: E402
from mailer.resources import demo_dir  # noqa: E402
from mailer.runtime import Runtime  # noqa: E402
from mailer.store import Database  # noqa: E402
from mailer.store.models import Message  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "LETTERS.md"
SLUG = SEED_CAMPAIGN
CODES = ("en", "ar", "ckb", "kmr")
NAMES = {"en": "Sarah Miller", "ar": "زينب حسن", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Şêxo"}
#: Governorates in turn: the four fixed officials, and two or three more for some.
GOVERNORATES = ("", "Basra", "Duhok", "Erbil")
#: High enough that no official's hourly cap holds a letter back: pacing is not what is measured.
PACING = 'pacing:\n  per_target_per_hour: 1000000\n  hours: "00:00-24:00"\n'
DONE = ("sent", "failed", "unknown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=100_000, help="the draining mailout's supporters")
    parser.add_argument("--letters", type=int, default=50, help="letters timed, idle and during the drain")
    parser.add_argument("--confirmations", type=int, default=60, help="confirmations timed per ledger")
    parser.add_argument("--letter-interval", type=float, default=0.2, help="seconds between idle letters")
    parser.add_argument("--runs", type=int, default=2, help="repetitions of every measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", help="PostgreSQL (databases made beside it); default SQLite")


# The campaign, its officials, the letters


def paced_campaign(folder: Path) -> Path:
    """A copy of the demo campaign whose pacing lets every letter go at once."""
    target = folder / "letters-campaign" / SLUG
    if target.exists():
        return target
    shutil.copytree(demo_dir() / "campaigns" / SLUG, target)
    manifest = target / "campaign.yaml"
    text, replaced = re.subn(
        r"^pacing:\n(?:[ \t]+.*\n)+", PACING, manifest.read_text(encoding="utf-8"), flags=re.M
    )
    if replaced != 1:
        raise SystemExit("the demo campaign's pacing block was not found: bench/letters.py needs updating")
    manifest.write_text(text, encoding="utf-8")
    return target


def prepare(stack: Stack, store: Store, recipients: int) -> str:
    """The seed database: the campaign (paced for the benchmark), its officials, N supporters."""
    seed = store.seed(recipients)
    db = Database(seed, Settings.from_env(stack.env(seed), cwd=stack.folder).require_vault())
    try:
        campaigns.load_campaign(db, paced_campaign(stack.folder))
        targets.import_targets(db, demo_dir() / "officials.yaml")
    finally:
        db.dispose()
    return seed


def write_letter(runtime: Runtime, index: int) -> int:
    """One letter as the page's form makes it (its confirmation email goes on the letters queue)."""
    code = CODES[index % len(CODES)]
    raw = {
        "name": NAMES[code],
        "email": f"writer{index}@example.net",
        "governorate": GOVERNORATES[index % len(GOVERNORATES)],
        "subject": "Drop the lawsuits against the human-rights defenders in Basra",
        "body": "Please drop the lawsuits against the human-rights defenders in Basra.",
        "note": "",
        "share": "name",
        "opt_in": "",
    }
    form = letters.check_form(raw, SLUG, code)
    return letters.start_letter(runtime.db, runtime.backend, form).letter_id


def confirm(runtime: Runtime, letter_id: int) -> None:
    letters.confirm_letter_id(runtime.db, runtime.backend, letter_id)


# Latency


@dataclass
class Latency:
    """Confirmation to provider call, per message to an official, of one run."""

    label: str
    run: int
    letters: int = 0
    messages: int = 0
    called: list[float] = field(default_factory=list)  # seconds, confirmation to provider_called_at
    accepted: list[float] = field(default_factory=list)  # seconds, confirmation to sent_at
    not_sent: int = 0
    drain_seconds: float = math.nan
    mailout: str = ""
    load: str = ""

    def p(self, values: Sequence[float], percent: int) -> float:
        if not values:
            return math.nan
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def letter_rows(
    db: Database, letter_ids: Sequence[int]
) -> list[tuple[int, str, dt.datetime | None, dt.datetime | None]]:
    with db.session() as session:
        rows = session.execute(
            select(Message.letter_id, Message.status, Message.provider_called_at, Message.sent_at).where(
                Message.kind == "letter", Message.letter_id.in_(list(letter_ids))
            )
        ).all()
    return [(int(r[0] or 0), str(r[1]), r[2], r[3]) for r in rows]


def settle(db: Database, letter_ids: Sequence[int], kind: str = "letter", stall: float = 120.0) -> None:
    """Until every message of this kind of these letters is sent (or settled otherwise); gives up after
    ``stall`` seconds without progress."""
    last, moved = -1, time.monotonic()
    while True:
        with db.session() as session:
            left = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.kind == kind,
                    Message.letter_id.in_(list(letter_ids)),
                    Message.status.not_in(DONE),
                )
            )
        if not left:
            return
        if left != last:
            last, moved = int(left), time.monotonic()
        elif time.monotonic() - moved > stall:
            raise RuntimeError(f"{left} {kind} messages not sent after {stall:.0f} s without progress")
        time.sleep(0.5)


def collect(figures: Latency, db: Database, confirmed: dict[int, float]) -> None:
    figures.letters = len(confirmed)
    for letter_id, status, called, sent in letter_rows(db, list(confirmed)):
        figures.messages += 1
        if called is None or status != "sent":
            figures.not_sent += 1
            continue
        figures.called.append(called.timestamp() - confirmed[letter_id])
        if sent is not None:
            figures.accepted.append(sent.timestamp() - confirmed[letter_id])


def idle_run(stack: Stack, store: Store, seed: str, args: argparse.Namespace, run: int) -> Latency:
    figures = Latency("idle", run)
    with Running(stack, store, seed, args) as (runtime, _):
        drafts = [write_letter(runtime, i) for i in range(args.letters)]
        settle(runtime.db, drafts, "confirm")  # their confirmation emails are not what letters wait behind
        confirmed: dict[int, float] = {}
        for letter_id in drafts:
            confirmed[letter_id] = time.time()
            confirm(runtime, letter_id)
            time.sleep(args.letter_interval)
        settle(runtime.db, list(confirmed))
        collect(figures, runtime.db, confirmed)
    figures.load = load_average()
    return figures


def drain_run(stack: Stack, store: Store, seed: str, args: argparse.Namespace, run: int) -> Latency:
    """Letters while a mailout of N drains (from its launch's return), spread over the drain's expected
    remainder."""
    figures = Latency("during a drain", run)
    with Running(stack, store, seed, args) as (runtime, fake):
        drafts = [write_letter(runtime, i) for i in range(args.letters)]
        settle(runtime.db, drafts, "confirm")
        base = fake.stats()["deliveries"]
        started = time.time()
        launched = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
        confirmed: dict[int, float] = {}
        for index, letter_id in enumerate(drafts):
            confirmed[letter_id] = time.time()
            confirm(runtime, letter_id)
            # The next letter after an even share of the drain's expected remainder, from its pace so far.
            done = fake.stats()["deliveries"] - base
            left = args.recipients - done
            if left <= 0:
                break  # letters after the drain would be idle ones
            elapsed = time.time() - started
            remainder = left * elapsed / done if done > 0 else 1.0
            time.sleep(min(2.0, 0.8 * remainder / max(1, len(drafts) - index - 1)))
        deadline = time.monotonic() + 3600
        while (status := mailouts.mailout_status(runtime.db, launched.mailout_id)).status == "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the mailout did not finish within an hour")
            time.sleep(1.0)
        finished = status.finished_at.timestamp() if status.finished_at is not None else time.time()
        during = {k: v for k, v in confirmed.items() if v < finished}
        settle(runtime.db, list(confirmed))
        collect(figures, runtime.db, during)
        figures.drain_seconds = finished - started
        figures.mailout = f"{status.counts.get('sent', 0):,} sent in {finished - started:.1f} s"
    figures.load = load_average()
    return figures


class Running:
    """A fresh copy of the seed, a fake, the workers started and idle; all stopped on the way out."""

    def __init__(self, stack: Stack, store: Store, seed: str, args: argparse.Namespace) -> None:
        self.stack, self.store, self.seed, self.args = stack, store, seed, args
        self.url = ""
        self.fake: Fake | None = None
        self.workers: list[Started] = []
        self.runtime: Runtime | None = None

    def __enter__(self) -> tuple[Runtime, Fake]:
        self.url = self.store.copy(self.seed)
        self.fake = Fake(self.stack, "light")
        env = self.stack.env(self.url, self.fake.url)
        self.runtime = Runtime(Settings.from_env(env, cwd=self.stack.folder))
        self.workers = self.stack.start_workers(ENGINE_WORKER, env, self.args.workers, "worker")
        return self.runtime, self.fake

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            self.stack.processes.stop(worker)
        if self.fake is not None:
            self.fake.stop()
        if self.runtime is not None:
            self.runtime.close()
        self.stack.flush()
        if self.url:
            self.store.drop(self.url)


# What a confirmation costs


@dataclass
class Cost:
    run: int
    queued: int = 0  # alert rows queued when the second set was timed
    empty_wall: list[float] = field(default_factory=list)  # seconds per confirmation
    empty_cpu: list[float] = field(default_factory=list)
    full_wall: list[float] = field(default_factory=list)
    full_cpu: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.full_wall) / statistics.median(self.empty_wall)


def timed(runtime: Runtime, letter_ids: Sequence[int], wall: list[float], cpu: list[float]) -> None:
    for letter_id in letter_ids:
        began, began_cpu = time.perf_counter(), time.process_time()
        confirm(runtime, letter_id)
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)


def cost_run(stack: Stack, store: Store, seed: str, args: argparse.Namespace, run: int) -> Cost:
    """No worker: confirmations with only letters in the ledger, then with N alert rows queued."""
    figures = Cost(run)
    url = store.copy(seed)
    runtime: Runtime | None = None
    try:
        runtime = Runtime(Settings.from_env(stack.env(url), cwd=stack.folder))
        warm = 5  # the first calls build caches (statements, templates): not what is compared
        drafts = [write_letter(runtime, i) for i in range(warm + 2 * args.confirmations)]
        timed(runtime, drafts[:warm], [], [])
        timed(runtime, drafts[warm : warm + args.confirmations], figures.empty_wall, figures.empty_cpu)
        figures.queued = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {}).new_messages
        timed(runtime, drafts[warm + args.confirmations :], figures.full_wall, figures.full_cpu)
    finally:
        if runtime is not None:
            runtime.close()
        stack.flush()
        store.drop(url)
    return figures


# The section


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    ms = value * 1000
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _both(values: Sequence[float]) -> str:
    low, middle = min_median(values)
    return f"{_ms(middle)} (min {_ms(low)})"


def measure(
    args: argparse.Namespace, database_url: str | None
) -> tuple[str, list[Latency], list[Latency], list[Cost]]:
    with tempfile.TemporaryDirectory(prefix="bench-letters-") as tmp, Stack(Path(tmp)) as stack:
        store = Store(stack, database_url)
        try:
            seed = prepare(stack, store, args.recipients)
            idle, drain, cost = [], [], []
            for run in range(1, args.runs + 1):
                idle.append(idle_run(stack, store, seed, args, run))
                drain.append(drain_run(stack, store, seed, args, run))
                cost.append(cost_run(stack, store, seed, args, run))
            return store.label, idle, drain, cost
        finally:
            store.close()


def section(args: argparse.Namespace, database_url: str | None) -> Section:
    label, idle, drain, cost = measure(args, database_url)
    target = "< 1 s" if label == "PostgreSQL" else "< 0.5 s"
    rows = [
        Row(
            f"letters p99 during a {args.recipients:,} mailout, default deployment ({label})",
            _both([f.p(f.called, 99) for f in drain]),
            baseline=f"idle {_both([f.p(f.called, 99) for f in idle])}",
            ratio=f"{statistics.median(f.p(f.called, 99) for f in drain) / statistics.median(f.p(f.called, 99) for f in idle):.1f}x",
            target=target,
        ),
        Row(
            "letters p50 during the drain",
            _both([f.p(f.called, 50) for f in drain]),
            baseline=f"idle {_both([f.p(f.called, 50) for f in idle])}",
        ),
        Row(
            f"confirmation cost, {cost[0].queued:,} queued vs empty ledger ({label}, wall)",
            _both([statistics.median(c.full_wall) for c in cost]),
            baseline=_both([statistics.median(c.empty_wall) for c in cost]),
            ratio=f"{statistics.median(c.ratio for c in cost):.1f}x (min {min(c.ratio for c in cost):.1f}x)",
            target="<= 1.5x",
        ),
        Row(
            "confirmation CPU (this process), queued vs empty",
            _both([statistics.median(c.full_cpu) for c in cost]),
            baseline=_both([statistics.median(c.empty_cpu) for c in cost]),
        ),
    ]
    details = grid(
        (
            "run",
            "letters",
            "to officials",
            "p50 call",
            "p99 call",
            "max call",
            "p99 accepted",
            "not sent",
            "mailout",
            "load",
        ),
        [
            (
                f"{f.label} {f.run}",
                str(f.letters),
                str(f.messages),
                _ms(f.p(f.called, 50)),
                _ms(f.p(f.called, 99)),
                _ms(max(f.called, default=math.nan)),
                _ms(f.p(f.accepted, 99)),
                str(f.not_sent),
                f.mailout or "-",
                f.load,
            )
            for f in [*idle, *drain]
        ],
    )
    body = (
        f"{label}; {args.workers} workers (`mailer worker --concurrency 1`, both queues); the fake SendGrid, "
        f"light. {args.letters} letters per run ({args.letter_interval} s apart when idle; spread over the "
        f"drain otherwise), each to four to seven officials; latency per message to an official, from the "
        f"confirmation's call to the row's `provider_called_at` (the worker's stamp just before the provider "
        f"call), and to `sent_at` (accepted). {args.confirmations} confirmations timed per ledger "
        f"(`letters.confirm_letter_id`, its dispatch included), medians per run. Pacing set out of the way "
        f"(per_target_per_hour 1000000, hours 00:00-24:00). {args.runs} runs; figures are median (min).\n\n"
        + details
    )
    command = (
        f".venv/bin/python bench/letters.py --recipients {args.recipients} --letters {args.letters} "
        f"--confirmations {args.confirmations} --runs {args.runs}"
        + (" --database-url postgresql://..." if label == "PostgreSQL" else "")
    )
    return Section(f"Letters while a mailout drains ({label})", command, body, rows)


def defaults() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([])


def sections(args: argparse.Namespace) -> list[Section]:
    """SQLite, and PostgreSQL when a URL is given (``--database-url`` here, ``--postgres-url`` in run.py)."""
    args = argparse.Namespace(
        **{**vars(defaults()), **{k: v for k, v in vars(args).items() if v is not None}}
    )
    args.runs = max(2, args.runs)
    postgres = getattr(args, "postgres_url", None)  # bench/run.py: SQLite, then PostgreSQL
    databases: list[str | None] = [None, postgres] if postgres else [args.database_url]
    return [section(args, database) for database in databases]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args()
    found = sections(args)
    for found_section in found:
        print(found_section.markdown())
    intro = (
        "Written by `bench/letters.py`, never by hand. Nothing here is asserted: these are measurements.\n\n"
        f"Machine: {machine()}. Measured on {time.strftime('%Y-%m-%d')}; load average at the end "
        f"{load_average()}."
    )
    write_results(RESULTS, "Letters to officials", intro, found)


if __name__ == "__main__":
    main()
