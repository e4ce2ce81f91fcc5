"""Benchmark a mailout end to end, beside a naive baseline measured in the same run. Asserts nothing.

    .venv/bin/python bench/mailout.py [--recipients 100000] [--baseline 2000] [--database-url URL]

Real parts: a redis-server of its own, `mailer worker` processes, the fake SendGrid (which validates
every request against SendGrid's schema) in a process of its own, and a real database (SQLite by default).
Prints recipients per second, provider requests per 1000 recipients, TCP connections opened, peak RSS per
worker and Redis bytes per queued recipient, for the engine and for the one-task-per-recipient baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer import campaigns, mailouts  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.resources import demo_dir  # noqa: E402
from mailer.runtime import Runtime  # noqa: E402
from mailer.store import upgrade_database  # noqa: E402
from mailer.store.models import Supporter  # noqa: E402
from mailer.vault import generate_key  # noqa: E402

CODES = ("en", "ar", "ckb", "kmr")
NAMES = {"en": "Sarah Miller", "ar": "زينب حسن", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Şêxo"}
API_KEY = "SG.bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def redis_used_memory(port: int) -> int:
    return int(redis.Redis(host="127.0.0.1", port=port).info("memory")["used_memory"])


def fake_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
        return dict(json.load(response))


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of a process and its children, in KiB."""
    total = 0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    for each in pids:
        try:
            status = Path(f"/proc/{each}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
        except (OSError, StopIteration):
            pass
    return total


@dataclass
class Figures:
    name: str
    recipients: int
    seconds: float
    requests: int
    connections: int
    peak_rss_kib: list[int]
    redis_bytes_per_recipient: float
    duplicates: int
    queued_after: float  # seconds from the start until every recipient's task was on the queue

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds


def add_supporters(runtime: Runtime, count: int) -> None:
    """Synthetic supporters, spread over the four locales, on example.org (bulk insert: the import is not measured)."""
    with runtime.db.session() as session:
        session.execute(
            insert(Supporter),
            [
                {
                    "email": f"bench{i:06d}@example.org",
                    "email_index": runtime.vault.address_index(f"bench{i:06d}@example.org"),
                    "name": NAMES[CODES[i % 4]],
                    "locale": CODES[i % 4],
                    "governorate": None,
                    "tags": [],
                }
                for i in range(count)
            ],
        )


def start_workers(
    command: list[str], env: dict[str, str], count: int, folder: Path
) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=(folder / f"w{n}.log").open("wb"), stderr=subprocess.STDOUT
        )
        for n in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def run_engine(
    env: dict[str, str], count: int, workers: int, redis_port: int, fake_port: int, folder: Path
) -> Figures:
    runtime = Runtime(Settings.from_env(env, cwd=folder))
    add_supporters(runtime, count)
    before = fake_stats(fake_port)
    memory = redis_used_memory(redis_port)
    started = time.monotonic()
    result = mailouts.launch_mailout(
        runtime.db, runtime.backend, "protect-hrds-iraq", {}, {}, batch_size=1000
    )
    queued_after = time.monotonic() - started
    queued_bytes = redis_used_memory(redis_port) - memory
    processes = start_workers(
        [sys.executable, "-m", "mailer", "worker", "--concurrency", "1", "--loglevel", "warning"],
        env,
        workers,
        folder,
    )
    try:
        while mailouts.mailout_status(runtime.db, result.mailout_id).status == "running":
            time.sleep(0.2)
        seconds = time.monotonic() - started
        rss = [peak_rss_kib(p.pid) for p in processes]
    finally:
        stop(processes)
    after = fake_stats(fake_port)
    runtime.close()
    return Figures(
        "engine (batches of 1000, one request per batch)",
        count,
        seconds,
        after["requests"] - before["requests"],
        after["connections"] - before["connections"],
        rss,
        queued_bytes / count,
        after["deliveries"] - before["deliveries"] - count,
        queued_after,
    )


def run_naive(
    env: dict[str, str], count: int, workers: int, redis_port: int, fake_port: int, folder: Path
) -> Figures:
    from bench.naive import app

    runtime = Runtime(Settings.from_env(env, cwd=folder))
    with runtime.db.session() as session:
        ids = list(session.scalars(select(Supporter.id).order_by(Supporter.id).limit(count)))
    before = fake_stats(fake_port)
    memory = redis_used_memory(redis_port)
    started = time.monotonic()
    for supporter_id in ids:
        app.send_task("naive.send_one", args=[supporter_id, "protect-hrds-iraq"])
    queued_after = time.monotonic() - started
    queued_bytes = redis_used_memory(redis_port) - memory
    processes = start_workers(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.naive",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "warning",
        ],
        env,
        workers,
        folder,
    )
    try:
        while fake_stats(fake_port)["deliveries"] - before["deliveries"] < count:
            time.sleep(0.2)
        seconds = time.monotonic() - started
        rss = [peak_rss_kib(p.pid) for p in processes]
    finally:
        stop(processes)
    after = fake_stats(fake_port)
    runtime.close()
    return Figures(
        "naive (one task and one send() per recipient)",
        count,
        seconds,
        after["requests"] - before["requests"],
        after["connections"] - before["connections"],
        rss,
        queued_bytes / count,
        after["deliveries"] - before["deliveries"] - count,
        queued_after,
    )


def report(engine: Figures, naive: Figures) -> str:
    rows = [
        ("recipients", f"{engine.recipients:,}", f"{naive.recipients:,}", ""),
        ("seconds, launch to last delivery", f"{engine.seconds:.1f}", f"{naive.seconds:.1f}", ""),
        (
            "  of which writing the ledger and queueing",
            f"{engine.queued_after:.1f}",
            f"{naive.queued_after:.1f}",
            "",
        ),
        (
            "recipients per second",
            f"{engine.rate:,.0f}",
            f"{naive.rate:,.1f}",
            f"{engine.rate / naive.rate:,.1f}x",
        ),
        (
            "provider requests per 1000 recipients",
            f"{1000 * engine.requests / engine.recipients:.2f}",
            f"{1000 * naive.requests / naive.recipients:.0f}",
            "",
        ),
        ("TCP connections opened to the provider", f"{engine.connections}", f"{naive.connections}", ""),
        (
            "peak RSS per worker (MiB)",
            ", ".join(f"{r / 1024:.0f}" for r in engine.peak_rss_kib),
            ", ".join(f"{r / 1024:.0f}" for r in naive.peak_rss_kib),
            "",
        ),
        (
            "Redis bytes per queued recipient",
            f"{engine.redis_bytes_per_recipient:.1f}",
            f"{naive.redis_bytes_per_recipient:.0f}",
            "",
        ),
        ("recipients delivered twice", f"{engine.duplicates}", f"{naive.duplicates}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'engine':>14}  {'naive baseline':>16}  {'ratio':>8}"]
    lines += [f"{a:<{width}}  {b:>14}  {c:>16}  {d:>8}" for a, b, c, d in rows]
    return "\n".join(lines)


def machine() -> str:
    import celery
    import sendgrid
    import sqlalchemy

    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    return (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Celery {celery.__version__}, SQLAlchemy {sqlalchemy.__version__}, sendgrid {sendgrid.__version__}, "
        f"Redis {redis_version.removeprefix('v=')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=2_000, help="recipients for the naive baseline")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    arguments = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (Debian: apt-get install redis-server)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        redis_port, fake_port = free_port(), free_port()
        redis_server = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.sendgrid_server",
                "--port",
                str(fake_port),
                "--api-key",
                API_KEY,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port(redis_port)
            wait_for_port(fake_port)
            database_url = arguments.database_url or f"sqlite:///{folder / 'bench.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | {
                "MAILER_DATABASE_URL": database_url,
                "MAILER_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
                "MAILER_TRANSPORT": "sendgrid",
                "MAILER_SENDGRID_API_KEY": API_KEY,
                "MAILER_SENDGRID_API_URL": f"http://127.0.0.1:{fake_port}",
                "MAILER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
                "MAILER_DATA_KEY": generate_key(),
                "MAILER_BATCH_SIZE": "1000",
                "PYTHONPATH": str(ROOT),
            }
            os.environ.update(env)
            runtime = Runtime(Settings.from_env(env, cwd=folder))
            upgrade_database(database_url, runtime.vault)
            campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
            runtime.close()
            print(f"machine: {machine()}\ndatabase: {database_url.split(':')[0]}\n", flush=True)
            engine = run_engine(env, arguments.recipients, arguments.workers, redis_port, fake_port, folder)
            naive = run_naive(env, arguments.baseline, arguments.workers, redis_port, fake_port, folder)
            print(report(engine, naive))
        finally:
            fake.terminate()
            redis_server.terminate()


if __name__ == "__main__":
    main()
