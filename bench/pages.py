"""Load test: the action page beside a trivial view and a static file of the same server. Asserts nothing.

    .venv/bin/python bench/pages.py [--users 8] [--seconds 10] [--runs 2] [--database-url URL]

A campaign that goes viral brings a crowd to one page. This starts gunicorn (2 sync workers, as in
production) on loopback over a database prepared as ``mailer demo`` prepares one (the seed campaign, its
officials), and drives it with Locust (headless, a fixed number of users for a fixed time, each request a
new visitor's) at three addresses in turn: the action page, ``/altcha/challenge`` (a view of the same app
that reads no database and renders no template) and a static file. The turns are repeated, interleaved,
so that each figure has its min and median; the ratio action page / trivial view is taken within each
round. Writes ``bench/PAGES.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import Row, Section, load_average, machine, min_median, write_results  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.demo_setup import SEED_CAMPAIGN, prepare_demo  # noqa: E402
from mailer.runtime import Runtime  # noqa: E402
from mailer.vault import generate_key  # noqa: E402

LOCUSTFILE = Path(__file__).resolve().parent / "pages_locust.py"
RESULTS = Path(__file__).resolve().parent / "PAGES.md"
#: What is measured, in the order of each round: (label, address).
ADDRESSES = (
    ("action page", f"/en/{SEED_CAMPAIGN}"),
    ("trivial view", "/altcha/challenge"),
    ("static file", "/static/site.css"),
)
#: What to add to pyproject.toml when a tool is missing (gunicorn is in the `production` extra).
NEEDS = {"gunicorn": "gunicorn>=22", "locust": "locust>=2.20"}


@dataclass(frozen=True)
class Turn:
    """One Locust run against one address."""

    label: str
    requests: int
    failed: int
    per_second: float
    p50_ms: float
    p99_ms: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=8, help="Locust users, all started at once")
    parser.add_argument("--seconds", type=int, default=10, help="each turn's length")
    parser.add_argument("--runs", type=int, default=2, help="rounds (at least 2: min and median)")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_tools() -> list[str]:
    return [requirement for module, requirement in NEEDS.items() if importlib.util.find_spec(module) is None]


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn stopped at start:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback, ours)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn did not answer {url} within 60 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn stops its workers), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def run_turn(label: str, path: str, base_url: str, args: argparse.Namespace, folder: Path) -> Turn:
    """One bounded Locust run (fixed users, fixed time) against one address; figures from its samples."""
    out = folder / f"turn-{secrets.token_hex(4)}.json"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.users),
        "--run-time",
        f"{args.seconds}s",
        "--stop-timeout",
        "5",
        "--host",
        base_url,
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    env = {**os.environ, "BENCH_PAGES_PATH": path, "BENCH_PAGES_OUT": str(out)}
    done = subprocess.run(
        command, env=env, cwd=folder, capture_output=True, text=True, timeout=args.seconds + 120, check=False
    )
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"locust failed ({done.returncode}):\n{done.stderr[-2000:]}")
    data = json.loads(out.read_text())
    samples: list[list[float]] = data["samples"]
    if len(samples) < 2:
        raise SystemExit(f"{label}: {len(samples)} answers; failures: {data['failures']}")
    ends = sorted(end for end, _ in samples)
    latencies = [latency * 1000 for _, latency in samples]
    return Turn(
        label=label,
        requests=len(samples),
        failed=int(data["failed"]),
        per_second=(len(ends) - 1) / (ends[-1] - ends[0]),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


def measure(args: argparse.Namespace) -> list[list[Turn]]:
    """Every round of turns, against one gunicorn over one prepared database."""
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        folder = Path(tmp)
        port = free_port()
        env = {
            "MAILER_DATABASE_URL": args.database_url or f"sqlite:///{folder / 'pages.db'}",
            "MAILER_OUTBOX_DIR": str(folder / "outbox"),
            "MAILER_SECRET_KEY": secrets.token_urlsafe(32),
            "MAILER_DATA_KEY": generate_key(),
            "MAILER_BASE_URL": f"http://127.0.0.1:{port}",
            "MAILER_FROM_EMAIL": "alerts@example.org",
            "MAILER_FROM_NAME": "Solidarity Mailer",
        }
        runtime = Runtime(Settings.from_env(env, cwd=folder))
        prepare_demo(runtime)
        runtime.db.dispose()
        log = folder / "gunicorn.log"
        with log.open("wb") as log_file:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers",
                    str(args.gunicorn_workers),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "mailer.web.wsgi:app",
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_serving(base_url + "/altcha/challenge", server, log)
            for (
                _,
                path,
            ) in ADDRESSES:  # each worker's first answer (imports, catalogs, templates) is not timed
                for _ in range(10):
                    with urllib.request.urlopen(base_url + path, timeout=10) as response:  # noqa: S310
                        response.read()
            rounds = []
            for _ in range(args.runs):
                rounds.append([run_turn(label, path, base_url, args, folder) for label, path in ADDRESSES])
            return rounds
        finally:
            stop(server)


def _figures(values: list[float], unit: str, digits: int = 0) -> str:
    low, middle = min_median(values)
    return f"min {low:,.{digits}f}, median {middle:,.{digits}f} {unit}"


def sections(args: argparse.Namespace) -> list[Section]:
    """The load test's section of the results file."""
    missing = missing_tools()
    if missing:
        raise SystemExit("bench/pages.py needs " + ", ".join(missing) + " (pip install them into .venv)")
    # bench/run.py's arguments (runs, recipients, ...) over this script's defaults.
    args = argparse.Namespace(
        **{**vars(defaults()), **{k: v for k, v in vars(args).items() if v is not None}}
    )
    args.runs = max(2, args.runs)
    rounds = measure(args)
    rows = []
    for index, (label, _) in enumerate(ADDRESSES):
        turns = [r[index] for r in rounds]
        rows.append(Row(f"{label}: requests per second", _figures([t.per_second for t in turns], "/s")))
        rows.append(Row(f"{label}: p50 latency", _figures([t.p50_ms for t in turns], "ms", 1)))
        rows.append(Row(f"{label}: p99 latency", _figures([t.p99_ms for t in turns], "ms", 1)))
    ratios = [r[0].per_second / r[1].per_second for r in rounds]
    low, middle = min_median(ratios)
    rows.append(
        Row(
            "action page GET vs a trivial view, same server and run",
            f"{middle:.2f} (min {low:.2f})",
            baseline="trivial view = 1",
            ratio=f"{middle:.2f}",
            target=">= 0.5",
        )
    )
    failed = sum(t.failed for r in rounds for t in r)
    requests = sum(t.requests for r in rounds for t in r)
    database = "PostgreSQL" if (args.database_url or "").startswith("postgres") else "SQLite"
    body = (
        f"gunicorn, {args.gunicorn_workers} sync workers, on loopback; {database} prepared as `mailer demo` "
        f"prepares one. Locust: {args.users} users started at once, no wait between requests, each request "
        f"a new visitor's (no cookie); {args.seconds} s per address, {args.runs} rounds "
        f"({', '.join(label for label, _ in ADDRESSES)} in turn). {requests:,} answers timed, {failed} failed. "
        f"Latency from the client's side; Locust shares the machine's cores with the server. "
        f"Load average before: {args.load_before}; after: {load_average()}."
    )
    command = (
        f".venv/bin/python bench/pages.py --users {args.users} --seconds {args.seconds} --runs {args.runs}"
    )
    return [Section("The action page under a crowd", command, body, rows)]


def defaults() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    namespace = parser.parse_args([])
    namespace.load_before = load_average()
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args()
    args.load_before = load_average()
    result = sections(args)
    for section in result:
        print(section.markdown())
    intro = (
        "Written by `bench/pages.py`, never by hand. Nothing here is asserted: these are measurements.\n\n"
        f"Machine: {machine()}. Measured on {time.strftime('%Y-%m-%d')}."
    )
    write_results(RESULTS, "Action pages under load", intro, result)


if __name__ == "__main__":
    main()
