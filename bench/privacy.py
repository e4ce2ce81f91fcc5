"""What encryption at rest costs on the mailout path, measured in one run. Asserts nothing.

    .venv/bin/python bench/privacy.py [--recipients 20000] [--rounds 3] [--database-url postgresql://...]

The same engine twice on the same data: with the installation's vault (XChaCha20-Poly1305, blind indexes),
and with a baseline vault whose cipher is the identity (values stored in clear; the blind indexes kept,
so that the schema and the queries are the same). Each round imports the supporters, launches a mailout
(writing the ledger) and sends every batch in this process through the fake SendGrid, which runs in a
process of its own and validates every request. Rounds alternate the two, each on a fresh database.
Writes bench/PRIVACY.sqlite.md (or PRIVACY.postgresql.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mailout import API_KEY, CODES, NAMES, free_port, wait_for_port  # noqa: E402
from mailer import campaigns, mailouts, supporters  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.resources import demo_dir  # noqa: E402
from mailer.runtime import Runtime  # noqa: E402
from mailer.store import Database, upgrade_database  # noqa: E402
from mailer.vault import Vault, generate_key  # noqa: E402
from tests.factories import RecordingBackend  # noqa: E402

RESULTS = ROOT / "bench" / "PRIVACY.{database}.md"  # one file per database kind


class ClearVault(Vault):
    """The baseline: the same vault with its cipher taken out (values stored as they are)."""

    def encrypt(self, plaintext: str, label: str) -> str:
        return plaintext

    def decrypt(self, token: str, label: str) -> str:
        return token


@dataclass
class Timing:
    wall: float
    cpu: float


def timed(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def supporters_csv(count: int) -> str:
    lines = ["email,name,locale,governorate,tags"]
    governorates = {"en": "", "ar": "Basra", "ckb": "Erbil", "kmr": "Duhok"}
    for i in range(count):
        code = CODES[i % 4]
        lines.append(f"bench{i:06d}@example.org,{NAMES[code]},{code},{governorates[code]},volunteer")
    return "\n".join(lines) + "\n"


def fresh_database(base_url: str | None, folder: Path) -> tuple[str, Callable[[], None]]:
    if not base_url:
        path = folder / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    admin = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin.set(database=name).render_as_string(hide_password=False), drop


def one_round(
    vault: Vault, env: dict[str, str], folder: Path, count: int, base_url: str | None
) -> dict[str, Timing]:
    url, drop = fresh_database(base_url, folder)
    settings = Settings.from_env(env | {"MAILER_DATABASE_URL": url}, cwd=folder)
    upgrade_database(url, vault)
    runtime = Runtime(settings)
    runtime.__dict__["vault"] = vault
    runtime.__dict__["db"] = Database(url, vault)
    recorder = RecordingBackend()
    runtime.__dict__["backend"] = recorder
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    data = supporters_csv(count)
    figures = {
        "import": timed(lambda: supporters.import_supporters_text(runtime.db, data, "bench.csv")),
        "launch": timed(
            lambda: mailouts.launch_mailout(
                runtime.db, recorder, "protect-hrds-iraq", {}, {}, batch_size=1000
            )
        ),
    }
    figures["send"] = timed(lambda: [runtime.send_batch(batch) for batch in recorder.batches])
    runtime.close()
    drop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to make fresh databases on (default SQLite)"
    )
    arguments = parser.parse_args()
    key = generate_key()
    variants = {"encrypted": Vault.parse(key), "clear (baseline)": ClearVault.parse(key)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.sendgrid_server", "--port", str(port), "--api-key", API_KEY],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | {
            "MAILER_TRANSPORT": "sendgrid",
            "MAILER_SENDGRID_API_KEY": API_KEY,
            "MAILER_SENDGRID_API_URL": f"http://127.0.0.1:{port}",
            "MAILER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "MAILER_BASE_URL": "https://act.example.org",
            "MAILER_DATA_KEY": key,
        }
        try:
            wait_for_port(port)
            results: dict[str, list[dict[str, Timing]]] = {name: [] for name in variants}
            for vault in variants.values():  # warm-up, not counted: imports, caches, the fake's first answers
                one_round(vault, env, folder, 1000, arguments.database_url)
            for n in range(arguments.rounds):
                for name, vault in variants.items():
                    results[name].append(
                        one_round(vault, env, folder, arguments.recipients, arguments.database_url)
                    )
                    last = results[name][-1]
                    steps = ", ".join(f"{step} {t.wall:.2f} s ({t.cpu:.2f} CPU)" for step, t in last.items())
                    print(f"round {n + 1}, {name}: {steps}", flush=True)
        finally:
            fake.terminate()
    write_results(results, arguments)


def write_results(results: dict[str, list[dict[str, Timing]]], arguments: argparse.Namespace) -> None:
    count = arguments.recipients
    clear = results["clear (baseline)"]
    encrypted = results["encrypted"]

    def median(rounds: list[dict[str, Timing]], step: str, field: str) -> float:
        return statistics.median(getattr(r[step], field) for r in rounds)

    lines = [
        "| step | clock | clear (baseline) | encrypted | cost |",
        "|---|---|---:|---:|---:|",
    ]
    for step in ("import", "launch", "send"):
        for field, label in (("wall", "wall s"), ("cpu", "CPU s")):
            base, enc = median(clear, step, field), median(encrypted, step, field)
            lines.append(f"| {step} | {label} | {base:.2f} | {enc:.2f} | {100 * (enc - base) / base:+.1f}% |")
    for title, steps in (
        ("**mailout, launch to last request**", ("launch", "send")),
        ("**import and mailout**", ("import", "launch", "send")),
    ):
        for field, label in (("wall", "wall s"), ("cpu", "CPU s")):
            base = sum(median(clear, s, field) for s in steps)
            enc = sum(median(encrypted, s, field) for s in steps)
            lines.append(
                f"| {title} | {label} | {base:.2f} | {enc:.2f} | {100 * (enc - base) / base:+.1f}% |"
            )
    send_rate = count / median(encrypted, "send", "wall")
    database = "PostgreSQL" if arguments.database_url else "SQLite"
    table = "\n".join(lines)
    body = f"""# Encryption at rest: what it costs

`bench/privacy.py` (this file is written by it). {count:,} supporters in four locales; after a warm-up round
of each variant, {arguments.rounds} rounds alternating the two, each on a fresh {database} database; medians.
Each round imports the supporters (validation, blind indexes, encryption of four values each), launches the
mailout (the ledger) and sends
every batch of 1000 in the benchmark's own process through the fake SendGrid (a process of its own that
validates every request): the worker's send path without Celery. The baseline is the same engine with the
cipher replaced by the identity (the values stored in clear, the blind indexes kept).

Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}.

{table}

Encrypted, the send path delivered {send_rate:,.0f} recipients per second in one process. CPU time is this
process's only: the fake SendGrid's is not counted in either variant.
"""
    RESULTS.with_name(RESULTS.name.format(database=database.lower())).write_text(body, encoding="utf-8")
    print(body)


if __name__ == "__main__":
    main()
