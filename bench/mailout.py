"""The mailout send path measured end to end, beside its baselines, in one run. Asserts nothing.

    .venv/bin/python bench/mailout.py [--recipients 100000] [--baseline 2000] [--runs 2] [--database-url URL]

``bench/run.py`` runs this for SQLite and PostgreSQL (with the letters and pages benchmarks) and writes
``bench/RESULTS.md``; this script alone prints the figures of one database.

Real parts, the same for every run: a redis-server of the benchmark's own, a database (SQLite in a
temporary folder, or ``--database-url postgresql://...``: the benchmark creates and drops its databases
beside the one named), and the fake SendGrid of ``tests/fakes/sendgrid_server.py`` in a process of its own,
either *validating* (every body checked against SendGrid's OpenAPI document: correctness) or *light*
(counts only: throughput). Each run gets a fresh copy of a seeded database and a fresh fake, so that its
counts are its own.

- **engine**: ``launch_mailout`` of the seed campaign to N synthetic supporters in four locales, with the
  engine's default batch size, drained by two ``mailer worker --concurrency 1`` processes that were
  started, and idle, before the launch; time runs from the launch to the mailout's ``finished_at``.
- **launch**: the same launch with no worker running, against one ``INSERT … SELECT`` of the same rows
  into a scratch copy of the ``message`` table (same columns and indexes): the floor. Redis bytes per
  queued recipient are read here (INFO memory), every task still on the queue.
- **B0, B0+sign, B3, B1**: see ``bench/baselines.py``.
- **SMTP**: the engine with ``MAILER_TRANSPORT=smtp`` against a real aiosmtpd server (``bench/smtp_sink.py``).
- **defaults**: 10,001 recipients split unevenly, with ``--fallback ckb=en``: the requests SendGrid gets.

CPU is utime+stime from ``/proc`` for each worker process and its pool children (the process's own
``os.times()`` for B0), per recipient; memory is PSS (``smaps_rollup``) of a worker and its pool child.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import (
    Engine,
    MetaData,
    String,
    Table,
    cast,
    create_engine,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.baselines import API_KEY, BATCH, CODES, NAMES, SLUG, address, make_app  # noqa: E402
from bench.report import Row, Section, grid, load_average, machine, min_median  # noqa: E402
from mailer import campaigns, mailouts  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.resources import demo_dir  # noqa: E402
from mailer.runtime import Runtime  # noqa: E402
from mailer.store import Database, upgrade_database  # noqa: E402
from mailer.store.models import Supporter  # noqa: E402
from mailer.vault import generate_key  # noqa: E402

__all__ = ["API_KEY", "CODES", "NAMES", "free_port", "wait_for_port"]  # bench/privacy.py imports these

TICK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000
ENGINE_WORKER = ["-m", "mailer", "worker", "--concurrency", "1", "--loglevel", "warning"]
BASELINE_WORKER = [
    "-m",
    "celery",
    "-A",
    "bench.baselines",
    "worker",
    "--concurrency",
    "1",
    "--loglevel",
    "warning",
]
#: Uneven locales for the requests-at-defaults run (10,001 recipients), Sorani sent the English alert.
DEFAULTS_SPLIT = {"en": 4_500, "ar": 2_501, "ckb": 1_500, "kmr": 1_500}
DEFAULTS_FALLBACKS = {"ckb": "en"}
KINDS = ("launch", "engine", "b0", "b0sign", "b3", "b1", "smtp", "defaults")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


# Options


@dataclass(frozen=True)
class Options:
    recipients: int = 100_000
    baseline: int = 2_000  # B1's sample
    b3: int = 20_000
    smtp: int = 5_000
    compare: int = 100_000  # the size a larger run's rate and memory are compared with
    runs: int = 2
    workers: int = 2
    only: frozenset[str] = frozenset(KINDS)
    stall: float = 300.0  # seconds without progress before a run is given up

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        skip = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
        return cls(
            recipients=args.recipients,
            baseline=args.baseline,
            b3=min(args.b3, args.recipients),
            smtp=args.smtp,
            compare=args.compare,
            runs=args.runs,
            workers=args.workers,
            only=frozenset(KINDS) - skip,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the mailout benchmark (``bench/run.py`` takes the same)."""
    parser.add_argument(
        "--recipients", type=int, default=100_000, help="engine, launch and B0 (default 100000)"
    )
    parser.add_argument("--baseline", type=int, default=2_000, help="B1's sample (default 2000)")
    parser.add_argument("--b3", type=int, default=20_000, help="B3's sample (default 20000)")
    parser.add_argument("--smtp", type=int, default=5_000, help="the SMTP run's recipients (default 5000)")
    parser.add_argument(
        "--compare",
        type=int,
        default=100_000,
        help="above this many recipients, one more engine run at this size",
    )
    parser.add_argument("--runs", type=int, default=2, help="repetitions of every measurement (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--skip", default="", help=f"comma-separated, among {','.join(KINDS)}")


# Processes


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Processes:
    """Every process the benchmark starts, each in a session of its own, so that stopping one stops its
    children too (a worker's pool); whatever is left is stopped on the way out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Started] = []
        self._count = 0

    def start(self, argv: Sequence[str], env: Mapping[str, str], name: str) -> Started:
        self._count += 1
        log = self.folder / f"{self._count:03d}-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(process, log)
        self.started.append(started)
        return started

    def stop(self, started: Started, timeout: float = 30.0) -> None:
        if started.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(started.pid, signal.SIGTERM)
            try:
                started.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(started.pid, signal.SIGKILL)
                started.process.wait(timeout=timeout)
        with suppress(ProcessLookupError):  # a pool child that outlived its parent
            os.killpg(started.pid, signal.SIGKILL)
        if started in self.started:
            self.started.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self.started)):
            self.stop(started)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (the first is the state, field 3)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """A process's children: /proc/PID/task/*/children where the kernel has it, else a scan of /proc."""
    task = Path(f"/proc/{pid}/task")
    try:
        files = [t / "children" for t in task.iterdir()]
    except OSError:
        return []
    if files and files[0].exists():
        found: list[int] = []
        for file in files:
            with suppress(OSError):
                found += [int(p) for p in file.read_text().split()]
        return found
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Cpu:
    main: float  # seconds: the process, and children it has reaped
    children: float  # seconds: its live children (a worker's pool)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.main - other.main, self.children - other.children)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.main + other.main, self.children + other.children)

    @property
    def total(self) -> float:
        return self.main + self.children


def cpu(pid: int) -> Cpu:
    """utime+stime of a process (with its reaped children's) and of its live children, in seconds."""
    fields = _stat(pid)
    main = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK if fields else 0.0
    live = 0.0
    for child in children(pid):
        child_fields = _stat(child)
        if child_fields:
            live += (int(child_fields[11]) + int(child_fields[12])) / TICK
    return Cpu(main, live)


def _status_kib(pid: int, key: str, file: str) -> int:
    with suppress(OSError, StopIteration):
        text_ = Path(f"/proc/{pid}/{file}").read_text()
        return int(next(line.split()[1] for line in text_.splitlines() if line.startswith(key)))
    return 0


def pss_mb(pid: int) -> float:
    """PSS of a process and its children (a worker and its pool child), in MB."""
    return sum(_status_kib(p, "Pss:", "smaps_rollup") for p in [pid, *children(pid)]) * 1024 / MB


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process plus its children's, in MB."""
    return sum(_status_kib(p, "VmHWM:", "status") for p in [pid, *children(pid)]) * 1024 / MB


# The stack: Redis, fakes, databases


class Stack:
    """The redis-server, the folder and the keys every run of one benchmark shares."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes = Processes(folder)
        self.redis_port = free_port()
        self.data_key = generate_key()
        self.redis: redis.Redis | None = None

    def __enter__(self) -> Stack:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is needed (Debian: apt-get install redis-server)")
        self.processes.start(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            os.environ,
            "redis",
        )
        wait_for_port(self.redis_port)
        self.redis = redis.Redis(host="127.0.0.1", port=self.redis_port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.redis is not None:
            self.redis.close()
        self.processes.stop_all()

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(
        self, database_url: str, sendgrid_url: str = "http://127.0.0.1:9", **extra: str
    ) -> dict[str, str]:
        """The environment of the engine and the baselines for one run (no MAILER_BATCH_SIZE: defaults)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return base | {
            "MAILER_DATABASE_URL": database_url,
            "MAILER_BROKER_URL": self.broker_url,
            "MAILER_TRANSPORT": "sendgrid",
            "MAILER_SENDGRID_API_KEY": API_KEY,
            "MAILER_SENDGRID_API_URL": sendgrid_url,
            "MAILER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "MAILER_DATA_KEY": self.data_key,
            "MAILER_BASE_URL": "https://act.example.org",
            "MAILER_FROM_EMAIL": "alerts@example.org",
            "PYTHONPATH": pythonpath,
            **extra,
        }

    def used_memory(self) -> int:
        assert self.redis is not None
        return int(self.redis.info("memory")["used_memory"])

    def queue_bytes(self) -> int:
        """What Redis holds for the task lists themselves (MEMORY USAGE of each list, every element counted)."""
        assert self.redis is not None
        return sum(
            int(self.redis.memory_usage(key, samples=0) or 0)
            for key in self.redis.scan_iter(count=1000)
            if self.redis.type(key) == b"list"
        )

    def consumers(self) -> int:
        """Connections blocked on a queue: a Celery worker that waits for tasks (kombu's BRPOP)."""
        assert self.redis is not None
        return sum(
            1 for client in self.redis.client_list() if client.get("cmd") in ("brpop", "blpop", "blmove")
        )

    def flush(self) -> None:
        """Nothing of one run left on the queue for the next (called with no worker running)."""
        assert self.redis is not None
        self.redis.flushall()

    def start_workers(
        self, argv: Sequence[str], env: Mapping[str, str], count: int, name: str
    ) -> list[Started]:
        """``count`` workers, returned once each of them waits on the queue (imports done, pool forked: a
        `mailer worker --concurrency 1` has no pool, it runs its tasks itself)."""
        workers = [self.processes.start([sys.executable, *argv], env, f"{name}{n}") for n in range(count)]
        pooled = list(argv[:3]) != ["-m", "mailer", "worker"] or "--concurrency" not in argv
        if not pooled:
            pooled = argv[list(argv).index("--concurrency") + 1] != "1"
        deadline = time.monotonic() + 120
        while self.consumers() < count or (pooled and any(not children(w.pid) for w in workers)):
            for w in workers:
                if w.process.poll() is not None:
                    raise RuntimeError(f"a worker stopped at start:\n{w.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the workers did not start within 120 s:\n" + "\n".join(w.tail() for w in workers)
                )
            time.sleep(0.1)
        return workers


class Fake:
    """The fake SendGrid in a process of its own, validating or light."""

    def __init__(self, stack: Stack, mode: str) -> None:
        self.stack = stack
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "tests.fakes.sendgrid_server",
            "--port",
            str(self.port),
            "--api-key",
            API_KEY,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.started = stack.processes.start(
            [*argv, *(["--light"] if mode == "light" else [])], env, f"fake-{mode}"
        )
        wait_for_port(self.port)
        self.probes = (
            1  # our own connections, which the fake counts too: wait_for_port's, then one per /stats
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        """What the fake received, with the connections opened by its clients only."""
        self.probes += 1
        with urllib.request.urlopen(f"{self.url}/stats", timeout=60) as response:  # noqa: S310 - our own fake
            stats = dict(json.load(response))
        stats["connections"] -= self.probes
        return stats

    def stop(self) -> None:
        self.stack.processes.stop(self.started)


class SmtpSink:
    """A real SMTP server (aiosmtpd) in a process of its own that counts what it accepts."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = free_port()
        self.stats_file = stack.folder / f"smtp-{self.port}.json"
        argv = [
            sys.executable,
            "-m",
            "bench.smtp_sink",
            "--port",
            str(self.port),
            "--stats",
            str(self.stats_file),
        ]
        self.started = stack.processes.start(argv, {**os.environ, "PYTHONPATH": str(ROOT)}, "smtp")
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, int]:
        """Stop the server; what it accepted."""
        self.stack.processes.stop(self.started)
        try:
            return dict(json.loads(self.stats_file.read_text()))
        except (OSError, ValueError):
            return {}


class Store:
    """The databases of one benchmark: seeded once per shape, copied fresh for every run, all dropped at the
    end. SQLite files in the folder, or PostgreSQL databases beside the one ``database_url`` names."""

    def __init__(self, stack: Stack, database_url: str | None) -> None:
        self.stack = stack
        self.url = make_url(database_url) if database_url else None
        self.kind = (
            "postgresql" if self.url is not None and self.url.get_backend_name() == "postgresql" else "sqlite"
        )
        if self.url is not None and self.kind == "sqlite" and self.url.database:
            self.folder = Path(self.url.database).resolve().parent
        else:
            self.folder = stack.folder
        self.seeds: dict[tuple[tuple[str, int], ...], str] = {}
        self.created: list[str] = []
        self._admin: Engine | None = None
        self._count = 0

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.kind == "postgresql" else "SQLite"

    def _name(self, what: str) -> str:
        self._count += 1
        base = (self.url.database if self.url is not None and self.kind == "postgresql" else None) or "bench"
        return f"{base}_{what}{self._count}"

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            assert self.url is not None
            admin = self.url.set(drivername="postgresql+psycopg", database="postgres")
            self._admin = create_engine(admin, isolation_level="AUTOCOMMIT")
        return self._admin

    def _new(self, what: str, template: str | None = None) -> str:
        name = self._name(what)
        if self.kind == "sqlite":
            path = self.folder / f"{name}.db"
            if template is not None:
                source, target = sqlite3.connect(make_url(template).database or ""), sqlite3.connect(path)
                try:
                    source.backup(target)
                finally:
                    source.close()
                    target.close()
                path.chmod(0o600)
            url = f"sqlite:///{path}"
        else:
            assert self.url is not None
            with self._admin_engine().connect() as connection:
                clause = f' TEMPLATE "{make_url(template).database}"' if template else ""
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # a crashed run's
                connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            url = self.url.set(database=name).render_as_string(hide_password=False)
        self.created.append(url)
        return url

    def seed(self, split: Mapping[str, int] | int) -> str:
        """A database with the campaign and supporters (an int: evenly over the four locales, supporter i in
        CODES[i % 4]), made once per shape."""
        key = (("even", split),) if isinstance(split, int) else tuple(split.items())
        if key not in self.seeds:
            url = self._new("seed")
            populate(url, self.stack.env(url), self.stack.folder, _locales(split))
            self.seeds[key] = url
        return self.seeds[key]

    def copy(self, seed: str) -> str:
        return self._new("run", template=seed)

    def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = Path(make_url(url).database or "")
            for suffix in ("", "-wal", "-shm"):
                with suppress(OSError):
                    path.with_name(path.name + suffix).unlink()
        else:
            name = make_url(url).database
            with self._admin_engine().connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if url in self.created:
            self.created.remove(url)
        for key, seed in list(self.seeds.items()):
            if seed == url:
                del self.seeds[key]

    def close(self) -> None:
        for url in list(self.created):
            with suppress(Exception):
                self.drop(url)
        if self._admin is not None:
            self._admin.dispose()

    def server_version(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        with self._admin_engine().connect() as connection:
            return "PostgreSQL " + str(connection.execute(text("SHOW server_version")).scalar())


def _locales(split: Mapping[str, int] | int) -> list[str]:
    if isinstance(split, int):
        return [CODES[i % len(CODES)] for i in range(split)]
    return [code for code, count in split.items() for _ in range(count)]


def populate(url: str, env: Mapping[str, str], folder: Path, locales: Sequence[str]) -> None:
    """Schema, seed campaign and synthetic supporters (bulk insert: the import is not what is measured).
    Supporter i (from 0) gets id i+1, ``address(i)`` and the name of its locale."""
    settings = Settings.from_env(env, cwd=folder)
    vault = settings.require_vault()
    upgrade_database(url, vault)
    db = Database(url, vault)
    try:
        campaigns.load_campaign(db, demo_dir() / "campaigns" / SLUG)
        for start in range(0, len(locales), 10_000):
            rows = [
                {
                    "email": address(i),
                    "email_index": vault.address_index(address(i)),
                    "name": NAMES[locales[i]],
                    "locale": locales[i],
                    "governorate": None,
                    "tags": [],
                }
                for i in range(start, min(start + 10_000, len(locales)))
            ]
            with db.session() as session:
                session.execute(insert(Supporter), rows)
    finally:
        db.dispose()


def supporter_ids(url: str, count: int) -> list[int]:
    engine = create_engine(
        make_url(url).set(drivername="postgresql+psycopg") if url.startswith("postgresql") else url
    )
    try:
        with engine.connect() as connection:
            return [
                int(i)
                for i in connection.execute(
                    text("SELECT id FROM supporter ORDER BY id LIMIT :n"), {"n": count}
                ).scalars()
            ]
    finally:
        engine.dispose()


# The figures of one run


@dataclass
class Figures:
    kind: str  # engine, launch, B0, B0+sign, B3, B1, SMTP, defaults
    mode: str  # the fake: validating, light; smtp; "-" when none
    run: int
    recipients: int
    seconds: float = math.nan
    cpu: Cpu = field(default_factory=lambda: Cpu(0.0, 0.0))  # the workers (B0: its own process)
    per_worker: list[Cpu] = field(default_factory=list)
    launcher_cpu: float = math.nan  # the launching process, during launch_mailout
    launch_seconds: float = math.nan
    floor_seconds: float = math.nan
    redis_bytes: float = math.nan  # per queued recipient
    requests: int = 0
    connections: int = 0
    rejected: int = 0
    delivered: int = 0
    duplicates: int = 0
    missing: int = 0
    pss_idle: float = math.nan  # MB, the largest worker (main + pool child)
    pss_after: float = math.nan
    peak_rss: float = math.nan
    load: str = ""
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds if self.seconds and self.seconds > 0 else math.nan

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu.total / self.recipients if self.recipients else math.nan


def _fake_figures(figures: Figures, stats: Mapping[str, int], expected: int) -> None:
    figures.requests = stats.get("requests", 0)
    figures.connections = stats.get("connections", 0)
    figures.rejected = stats.get("rejected", 0)
    figures.delivered = stats.get("deliveries", 0)
    figures.duplicates = stats.get("duplicates", stats.get("deliveries", 0) - stats.get("recipients", 0))
    figures.missing = max(0, expected - stats.get("recipients", 0))


def wait_for(done: Callable[[], tuple[bool, object]], stall: float, what: str) -> None:
    """Poll ``done`` (finished?, progress) until it says finished; give up after ``stall`` seconds without
    progress. Polls at most a twentieth of the time, so that watching costs the run little."""
    last: object = None
    moved = time.monotonic()
    while True:
        began = time.monotonic()
        finished, progress = done()
        if finished:
            return
        now = time.monotonic()
        if progress != last:
            last, moved = progress, now
        elif now - moved > stall:
            raise RuntimeError(f"{what}: no progress for {stall:.0f} s (at {progress})")
        time.sleep(max(0.2, 20 * (now - began)))


def engine_run(
    stack: Stack,
    store: Store,
    seed: str,
    recipients: int,
    mode: str,
    run: int,
    options: Options,
    kind: str = "engine",
    fallbacks: Mapping[str, str] | None = None,
) -> Figures:
    """A mailout end to end: workers started and idle, then the launch, until the mailout is no longer
    running. ``mode`` is the fake's (validating, light) or ``smtp``."""
    figures = Figures(kind, mode, run, recipients)
    url = store.copy(seed)
    fake = sink = None
    runtime: Runtime | None = None
    workers: list[Started] = []
    try:
        if mode == "smtp":
            sink = SmtpSink(stack)
            env = stack.env(url, MAILER_TRANSPORT="smtp", MAILER_SMTP_URL=sink.url)
        else:
            fake = Fake(stack, mode)
            env = stack.env(url, fake.url)
        runtime = Runtime(Settings.from_env(env, cwd=stack.folder))
        workers = stack.start_workers(ENGINE_WORKER, env, options.workers, "worker")
        figures.pss_idle = max(pss_mb(w.pid) for w in workers)
        before = [cpu(w.pid) for w in workers]
        started, own = time.time(), os.times()
        result = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, dict(fallbacks or {}))
        launched, own_after = time.time(), os.times()
        figures.launch_seconds = launched - started
        figures.launcher_cpu = (own_after.user - own.user) + (own_after.system - own.system)
        db, mailout_id = runtime.db, result.mailout_id
        state: dict[str, Any] = {"next": 0.0}

        def finished() -> tuple[bool, object]:
            now = time.monotonic()
            delivered = fake.stats()["deliveries"] if fake is not None else None
            if fake is None or (delivered or 0) >= recipients or now >= state["next"]:
                began = time.monotonic()
                status = mailouts.mailout_status(db, mailout_id)
                state["next"] = now + max(3.0, 20 * (time.monotonic() - began))
                state["status"] = status
                if status.status != "running":
                    return True, None
                return False, (delivered, status.done)
            return False, (delivered, state.get("status") and state["status"].done)

        wait_for(finished, options.stall, f"{kind} ({mode})")
        ended = time.time()
        status = state["status"]
        if status.finished_at is not None and status.finished_at.timestamp() >= started:
            ended = min(ended, status.finished_at.timestamp())
        figures.seconds = ended - started
        after = [cpu(w.pid) for w in workers]
        figures.per_worker = [a - b for a, b in zip(after, before, strict=True)]
        figures.cpu = sum(figures.per_worker, Cpu(0.0, 0.0))
        figures.pss_after = max(pss_mb(w.pid) for w in workers)
        figures.peak_rss = max(peak_rss_mb(w.pid) for w in workers)
        figures.status = f"{status.status}, {status.counts.get('sent', 0):,} sent"
        figures.extra = {"content_locales": result.content_locales, "by_locale": status.by_locale}
        if fake is not None:
            _fake_figures(figures, fake.stats(), recipients)
    finally:
        for w in workers:
            stack.processes.stop(w)
        if fake is not None:
            fake.stop()
        if sink is not None:
            smtp = sink.stop()
            figures.connections = smtp.get("connections", 0)
            figures.requests = smtp.get("messages", 0)
            figures.delivered = smtp.get("deliveries", 0)
            figures.duplicates = smtp.get("duplicates", 0)
            figures.missing = max(0, recipients - smtp.get("recipients", 0))
        if runtime is not None:
            runtime.close()
        stack.flush()
        store.drop(url)
    figures.load = load_average()
    return figures


def launch_run(stack: Stack, store: Store, seed: str, recipients: int, run: int) -> Figures:
    """The launch alone (no worker running), then one INSERT … SELECT of the same rows: the floor."""
    figures = Figures("launch", "-", run, recipients)
    url = store.copy(seed)
    runtime: Runtime | None = None
    try:
        runtime = Runtime(Settings.from_env(stack.env(url), cwd=stack.folder))
        _ = runtime.db, runtime.backend  # built before the clock starts, as a long-running process has them
        memory = stack.used_memory()
        started, own = time.time(), os.times()
        result = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
        figures.launch_seconds = figures.seconds = time.time() - started
        own_after = os.times()
        figures.launcher_cpu = (own_after.user - own.user) + (own_after.system - own.system)
        figures.redis_bytes = (stack.used_memory() - memory) / max(1, result.new_messages)
        figures.extra["queue_bytes"] = stack.queue_bytes() / max(1, result.new_messages)
        figures.floor_seconds, rows = insert_select_floor(runtime.db.engine, result.mailout_id)
        figures.status = (
            f"{result.new_messages:,} ledger rows, {result.queued_batches} batches; floor {rows:,} rows"
        )
    finally:
        if runtime is not None:
            runtime.close()
        stack.flush()
        store.drop(url)
    figures.load = load_average()
    return figures


def insert_select_floor(engine: Engine, mailout_id: int) -> tuple[float, int]:
    """Seconds for one ``INSERT INTO <copy of message> (...) SELECT ... FROM supporter`` of every
    supporter's ledger row, committed; the copy has the columns, indexes and constraints of ``message`` as
    the database has them (reflected), and is dropped afterwards."""
    metadata = MetaData()
    message = Table("message", metadata, autoload_with=engine)
    supporter = metadata.tables.get("supporter")
    if supporter is None:
        supporter = Table("supporter", metadata, autoload_with=engine)
    floor = message.to_metadata(metadata, name="bench_floor")
    for index in floor.indexes:
        index.name = f"bench_floor_{index.name}"
    for constraint in floor.constraints:
        if isinstance(constraint.name, str) and constraint.name:
            constraint.name = f"bench_floor_{constraint.name}"
    floor.create(engine)
    try:
        now = dt.datetime.now(dt.UTC)
        c = floor.c
        columns = [
            c.idempotency_key,
            c.kind,
            c.mailout_id,
            c.supporter_id,
            c.locale,
            c.content_locale,
            c.status,
            c.attempts,
            c.created_at,
            c.updated_at,
        ]
        rows = select(
            literal(f"alert:{mailout_id}:") + cast(supporter.c.id, String),
            literal("alert"),
            literal(mailout_id),
            supporter.c.id,
            supporter.c.locale,
            supporter.c.locale,
            literal("queued"),
            literal(0),
            literal(now, c.created_at.type),
            literal(now, c.updated_at.type),
        )
        statement = insert(floor).from_select(columns, rows)
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(statement)
        seconds = time.perf_counter() - started
        with engine.connect() as connection:  # not every driver reports the rows of an INSERT … SELECT
            count = connection.execute(select(func.count()).select_from(floor)).scalar_one()
        return seconds, int(count)
    finally:
        floor.drop(engine)


def b0_run(stack: Stack, mode: str, recipients: int, sign: bool, run: int, options: Options) -> Figures:
    """B0 (or B0+sign) in a process of its own, against a fresh fake."""
    figures = Figures("B0+sign" if sign else "B0", mode, run, recipients)
    fake = Fake(stack, mode)
    try:
        env = stack.env(f"sqlite:///{stack.folder / 'unused.db'}", fake.url)
        argv = [sys.executable, "-m", "bench.baselines", "b0", "--recipients", str(recipients)]
        done = subprocess.run(
            argv + (["--sign"] if sign else []),
            env=env,
            cwd=stack.folder,
            capture_output=True,
            text=True,
            timeout=options.stall * 10,
        )
        if done.returncode != 0:
            raise RuntimeError(f"B0 failed:\n{done.stderr[-2000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        figures.seconds = measured["seconds"]
        figures.cpu = Cpu(measured["cpu"], 0.0)
        figures.per_worker = [figures.cpu]
        _fake_figures(figures, fake.stats(), recipients)
        figures.status = f"{measured['refused']} refused" if measured["refused"] else "all accepted"
    finally:
        fake.stop()
    figures.load = load_average()
    return figures


def celery_baseline_run(
    stack: Stack, seed: str, mode: str, recipients: int, kind: str, run: int, options: Options
) -> Figures:
    """B3 (tasks of 1000 ids) or B1 (a task per recipient), on the seeded database (read only)."""
    figures = Figures(kind, mode, run, recipients)
    ids = supporter_ids(seed, recipients)
    fake = Fake(stack, mode)
    workers: list[Started] = []
    sender = make_app(stack.broker_url)
    try:
        env = stack.env(seed, fake.url)
        workers = stack.start_workers(BASELINE_WORKER, env, options.workers, kind.lower())
        before = [cpu(w.pid) for w in workers]
        started = time.time()
        if kind == "B3":
            for start in range(0, len(ids), BATCH):
                sender.send_task("bench.b3_send", args=[ids[start : start + BATCH]])
        else:
            for supporter_id in ids:
                sender.send_task("bench.b1_send", args=[supporter_id])

        def finished() -> tuple[bool, object]:
            stats = fake.stats()
            answered = stats["deliveries"] + stats["rejected"]
            return answered >= len(ids), answered

        wait_for(finished, options.stall, f"{kind} ({mode})")
        figures.seconds = time.time() - started
        after = [cpu(w.pid) for w in workers]
        figures.per_worker = [a - b for a, b in zip(after, before, strict=True)]
        figures.cpu = sum(figures.per_worker, Cpu(0.0, 0.0))
        figures.pss_after = max(pss_mb(w.pid) for w in workers)
        _fake_figures(figures, fake.stats(), recipients)
        figures.status = f"{figures.rejected:,} refused by the fake" if figures.rejected else "all accepted"
    finally:
        sender.close()
        for w in workers:
            stack.processes.stop(w)
        fake.stop()
        stack.flush()
    figures.load = load_average()
    return figures


# One database: every measurement, repeated


@dataclass
class Measured:
    """Every run of one database."""

    store_label: str
    kind: str  # sqlite, postgresql
    server: str
    options: Options
    figures: list[Figures] = field(default_factory=list)

    def of(self, kind: str, mode: str | None = None, recipients: int | None = None) -> list[Figures]:
        return [
            f
            for f in self.figures
            if f.kind == kind
            and (mode is None or f.mode == mode)
            and (recipients is None or f.recipients == recipients)
        ]


def measure(options: Options, database_url: str | None, say: Callable[[str], None] = print) -> Measured:
    """Every mailout measurement on one database, ``options.runs`` times, interleaved. A run that fails is
    recorded as failed (its processes stopped, its database dropped) and the others go on."""
    with tempfile.TemporaryDirectory(prefix="bench-mailout-") as tmp, Stack(Path(tmp)) as stack:
        store = Store(stack, database_url)
        try:
            measured = Measured(store.label, store.kind, store.server_version(), options)
            say(f"{store.label}: seeding {options.recipients:,} supporters")
            main = store.seed(options.recipients)
            only = options.only

            def record(
                kind: str, mode: str, run: int, recipients: int, measure: Callable[[], Figures]
            ) -> None:
                try:
                    figures = measure()
                except Exception as err:  # one broken run must not lose the others' figures
                    traceback.print_exc()
                    figures = Figures(
                        kind, mode, run, recipients, status=f"failed: {type(err).__name__}: {err}"
                    )
                    figures.load = load_average()
                measured.figures.append(figures)
                say("  " + one_line(figures))

            if {"launch", "engine"} & only:
                # The first launch of a process pays for imports and first connections (about 50 ms): once,
                # on a database of its own, so that every measured launch is alike.
                launch_run(stack, store, store.seed(40), 40, 0)
            n, b3, b1, smtp, compare = (
                options.recipients,
                options.b3,
                options.baseline,
                options.smtp,
                options.compare,
            )
            for run in range(1, options.runs + 1):
                say(f"{store.label}: run {run} of {options.runs}")
                if "launch" in only:
                    record("launch", "-", run, n, partial(launch_run, stack, store, main, n, run))
                for mode in ("validating", "light"):
                    if "engine" in only:
                        record(
                            "engine",
                            mode,
                            run,
                            n,
                            partial(engine_run, stack, store, main, n, mode, run, options),
                        )
                    if "b0" in only:
                        record("B0", mode, run, n, partial(b0_run, stack, mode, n, False, run, options))
                    if "b0sign" in only:
                        record("B0+sign", mode, run, n, partial(b0_run, stack, mode, n, True, run, options))
                    if "b3" in only:
                        record(
                            "B3",
                            mode,
                            run,
                            b3,
                            partial(celery_baseline_run, stack, main, mode, b3, "B3", run, options),
                        )
                    if "b1" in only:
                        record(
                            "B1",
                            mode,
                            run,
                            b1,
                            partial(celery_baseline_run, stack, main, mode, b1, "B1", run, options),
                        )
                if "smtp" in only:
                    seed = store.seed(smtp)
                    record(
                        "SMTP",
                        "smtp",
                        run,
                        smtp,
                        partial(engine_run, stack, store, seed, smtp, "smtp", run, options, "SMTP"),
                    )
                if "engine" in only and n > compare:
                    seed = store.seed(compare)
                    record(
                        "engine",
                        "light",
                        run,
                        compare,
                        partial(engine_run, stack, store, seed, compare, "light", run, options),
                    )
            if "defaults" in only:
                total = sum(DEFAULTS_SPLIT.values())
                seed = store.seed(DEFAULTS_SPLIT)
                run_defaults = partial(
                    engine_run,
                    stack,
                    store,
                    seed,
                    total,
                    "validating",
                    1,
                    options,
                    "defaults",
                    DEFAULTS_FALLBACKS,
                )
                record("defaults", "validating", 1, total, run_defaults)
            return measured
        finally:
            store.close()


# Reporting


def _n(value: float, digits: int = 0) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def one_line(f: Figures) -> str:
    if f.kind == "launch":
        return (
            f"launch {f.recipients:,}: {f.launch_seconds:.2f} s, floor {f.floor_seconds:.2f} s, "
            f"Redis {f.redis_bytes:.1f} B/recipient (task lists {f.extra.get('queue_bytes', math.nan):.1f}) "
            f"({f.status})"
        )
    return (
        f"{f.kind} [{f.mode}] {f.recipients:,}: {f.seconds:.2f} s, {_n(f.rate)}/s, {f.cpu_ms:.3f} CPU-ms/recipient, "
        f"{f.requests:,} requests, {f.connections} connections, {f.rejected} rejected, {f.duplicates} duplicates, "
        f"{f.missing} missing; load {f.load}" + (f"; {f.status}" if f.status else "")
    )


def _stat_text(values: Sequence[float], unit: str, digits: int) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "not measured"
    low, mid = min_median(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}{unit} (one run)"
    return f"{mid:,.{digits}f}{unit} (min {low:,.{digits}f})"


def _median(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return min_median(values)[1] if values else math.nan


def _ratio(a: float, b: float, suffix: str = "", digits: int = 2) -> str:
    if math.isnan(a) or math.isnan(b) or not b:
        return ""
    return f"{a / b:.{digits}f}{suffix}"


def target_rows(m: Measured) -> list[Row]:
    """The rows of the issue's targets table that this benchmark measures, beside their baselines."""
    pg = m.kind == "postgresql"
    n = m.options.recipients
    rows: list[Row] = []
    engine_light = m.of("engine", "light", n)
    engine_valid = m.of("engine", "validating", n)
    sign_light = m.of("B0+sign", "light")
    b1_valid = m.of("B1", "validating")

    cpu_engine = [f.cpu_ms for f in engine_light]
    cpu_sign = [f.cpu_ms for f in sign_light]
    rows.append(
        Row(
            "worker CPU per recipient, alerts over SendGrid (light fake)",
            _stat_text(cpu_engine, " ms", 3),
            "B0+sign " + _stat_text(cpu_sign, " ms", 3),
            _ratio(_median(cpu_engine), _median(cpu_sign), "x", 1),
            "<= 0.15 ms",
        )
    )
    rate_engine = [f.rate for f in engine_light]
    rate_sign = [f.rate for f in sign_light]
    rows.append(
        Row(
            "end to end vs B0+sign, light fake",
            _stat_text(rate_engine, "/s", 0),
            "B0+sign " + _stat_text(rate_sign, "/s", 0),
            _ratio(_median(rate_engine), _median(rate_sign)),
            ">= 0.5" if pg else ">= 0.6",
        )
    )
    rate_valid = [f.rate for f in engine_valid]
    rate_b1 = [f.rate for f in b1_valid]
    rows.append(
        Row(
            "end to end vs fair B1, validating fake",
            _stat_text(rate_valid, "/s", 0),
            "B1 " + _stat_text(rate_b1, "/s", 1),
            _ratio(_median(rate_valid), _median(rate_b1), "x", 1),
            ">= 15x" if pg else ">= 20x",
        )
    )
    launches = m.of("launch")
    launch = [f.launch_seconds for f in launches]
    floor = [f.floor_seconds for f in launches]
    rows.append(
        Row(
            f"launch vs INSERT … SELECT floor ({n:,} rows, no worker running)",
            _stat_text(launch, " s", 2),
            "floor " + _stat_text(floor, " s", 3),
            _ratio(_median(launch), _median(floor), "x", 1),
            "<= 2x",
        )
    )
    defaults = m.of("defaults")
    if defaults:
        f = defaults[0]
        needed, per_content = ceil_requests(f)
        detail = ", ".join(f"{code} {count:,}" for code, count in sorted(per_content.items()))
        rows.append(
            Row(
                f"requests at defaults ({f.recipients:,} recipients, --fallback ckb=en)",
                f"{f.requests} requests",
                f"Σ ceil(n_content/1000) = {needed} ({detail})",
                _ratio(f.requests, needed),
                "Σ ceil(n_content/1000)",
            )
        )
    else:
        rows.append(Row("requests at defaults", "not measured", "", "", "Σ ceil(n_content/1000)"))
    idle = [f.pss_idle for f in engine_light + engine_valid]
    after = [f.pss_after for f in engine_light + engine_valid]
    rows.append(
        Row(
            "worker PSS (the process and its pool children), idle before the first task / after the run",
            f"{_stat_text(idle, ' MB', 0)} / {_stat_text(after, ' MB', 0)}",
            "",
            "",
            "<= 150 MB",
        )
    )
    redis_bytes = [f.redis_bytes for f in launches]
    if n > m.options.compare:
        small = m.of("engine", "light", m.options.compare)
        rss_big = _median([f.peak_rss for f in engine_light])
        rss_small = _median([f.peak_rss for f in small])
        rate_big, rate_small = _median(rate_engine), _median([f.rate for f in small])
        rows.append(
            Row(
                f"{n:,} recipients: RSS, Redis per recipient, rate",
                f"peak RSS {_n(rss_big)} MB; Redis {_n(_median(redis_bytes), 1)} B; {_n(rate_big)}/s",
                f"{m.options.compare:,}: peak RSS {_n(rss_small)} MB; {_n(rate_small)}/s",
                f"RSS {_ratio(rss_big, rss_small)}, rate {_ratio(rate_big, rate_small)}",
                "flat, <= 64 B, rate within 10% of 100k",
            )
        )
    else:
        rows.append(
            Row(
                "1,000,000 recipients: RSS, Redis per recipient, rate",
                f"in `bench/RESULTS-1M.md` (`--recipients 1000000`); at {n:,}: Redis {_n(_median(redis_bytes), 1)} B per queued recipient, "
                f"peak RSS {_n(_median([f.peak_rss for f in engine_light]))} MB",
                "",
                "",
                "flat, <= 64 B, rate within 10% of 100k",
            )
        )
    smtp = m.of("SMTP", "smtp")
    if smtp:
        rows.append(
            Row(
                f"engine over SMTP (aiosmtpd), {smtp[0].recipients:,} recipients",
                f"{_stat_text([f.rate for f in smtp], '/s', 0)}; {_stat_text([f.cpu_ms for f in smtp], ' CPU-ms', 3)}",
                "",
                "",
                "renders once per locale and batch",
            )
        )
    return rows


def ceil_requests(f: Figures) -> tuple[int, dict[str, int]]:
    """Σ ceil(n_content/1000) over the content locales actually sent, and n_content per locale."""
    plan: Mapping[str, str] = f.extra.get("content_locales", {})
    by_locale: Mapping[str, Mapping[str, int]] = f.extra.get("by_locale", {})
    per_content: dict[str, int] = {}
    for code, states in by_locale.items():
        content = plan.get(code, code)
        per_content[content] = per_content.get(content, 0) + states.get("sent", 0)
    return sum(math.ceil(count / BATCH) for count in per_content.values() if count), per_content


def runs_table(m: Measured) -> str:
    """Every run: rates, CPU, requests, connections, duplicates, memory, load."""
    header = (
        "run",
        "what",
        "fake",
        "recipients",
        "seconds",
        "recipients/s",
        "CPU-ms/recipient (main + pool)",
        "launch s (launcher CPU-ms/rcpt)",
        "requests",
        "connections",
        "rejected",
        "duplicates",
        "missing",
        "PSS MB idle / after",
        "load at end",
        "outcome",
    )
    lines = []
    for f in m.figures:
        if f.kind == "launch":
            lines.append(
                (
                    str(f.run),
                    "launch, no worker",
                    "-",
                    f"{f.recipients:,}",
                    f"{f.launch_seconds:.2f}",
                    "",
                    "",
                    f"{f.launch_seconds:.2f} ({1000 * f.launcher_cpu / f.recipients:.3f}); floor {f.floor_seconds:.3f} s; "
                    f"Redis {f.redis_bytes:.1f} B/rcpt (task lists {f.extra.get('queue_bytes', math.nan):.1f})",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f.load,
                    f.status,
                )
            )
            continue
        split = (
            f"{f.cpu_ms:.3f} = {1000 * f.cpu.main / f.recipients:.3f} + {1000 * f.cpu.children / f.recipients:.3f}"
            if f.kind not in ("B0", "B0+sign")
            else f"{f.cpu_ms:.3f} (one process)"
        )
        launch = (
            f"{f.launch_seconds:.2f} ({1000 * f.launcher_cpu / f.recipients:.3f})"
            if not math.isnan(f.launch_seconds)
            else ""
        )
        lines.append(
            (
                str(f.run),
                f.kind,
                f.mode,
                f"{f.recipients:,}",
                f"{f.seconds:.2f}",
                _n(f.rate, 1 if f.rate < 1000 else 0),
                split,
                launch,
                f"{f.requests:,}",
                f"{f.connections:,}",
                f"{f.rejected:,}",
                f"{f.duplicates:,}",
                f"{f.missing:,}",
                f"{_n(f.pss_idle)} / {_n(f.pss_after)}" if not math.isnan(f.pss_after) else "",
                f.load,
                f.status,
            )
        )
    return grid(header, lines)


def describe(m: Measured) -> str:
    o = m.options
    runs = f"{o.runs} run{'s' if o.runs != 1 else ''}"
    samples = (("b3", "B3", o.b3), ("b1", "B1", o.baseline), ("smtp", "SMTP", o.smtp))
    return (
        f"{m.server}; {o.workers} workers (`--concurrency 1` each); {runs} of each measurement, interleaved; "
        "medians, with the best run (min) in brackets; ratios of medians. Engine, launch and B0: "
        f"{o.recipients:,} synthetic supporters in four locales (example.org)"
        + "".join(f"; {label} {size:,}" for kind, label, size in samples if kind in o.only)
        + "; the engine's default batch size. Every run has a fresh copy of the seeded database "
        "and a fresh fake SendGrid (*validating*: every body checked against SendGrid's schema; *light*: "
        "counts only). Rates compare; absolute times depend on a shared machine (see the load column)."
    )


def reading(m: Measured) -> str:
    split = ", ".join(f"{code} {count:,}" for code, count in DEFAULTS_SPLIT.items())
    return "\n".join(
        [
            "Every run:",
            "",
            runs_table(m),
            "",
            "- **engine**: `launch_mailout` with the workers up and idle, then until the mailout is no longer "
            "running (its `finished_at`); **launch, no worker**: `launch_mailout` alone, then one `INSERT … "
            "SELECT` of the same rows into a scratch copy of `message` (the floor), and Redis bytes per queued "
            "recipient (INFO memory; in brackets, MEMORY USAGE of the task lists alone).",
            "- **B0**, **B0+sign**, **B3**, **B1**: see `bench/baselines.py` (B3 and B1 sign the same link as the "
            "engine, with the key derived once). **SMTP**: the engine over aiosmtpd. **defaults**: "
            f"{sum(DEFAULTS_SPLIT.values()):,} recipients ({split}; Sorani readers sent the English alert, "
            "`--fallback ckb=en`), nothing tuned.",
            "- CPU-ms per recipient: utime+stime of both workers' processes over the run (main + pool "
            "children), over the recipients; B0's own process. Launch: seconds, and the launching process's "
            "CPU-ms per recipient. Connections: TCP connections the fake or the SMTP server accepted from the "
            "senders. Duplicates: deliveries beyond the first to one address (must be 0); missing: recipients "
            "never delivered. PSS: the larger of the two workers, main process + pool child.",
        ]
    )


def sections(args: argparse.Namespace, database_url: str | None, command: str) -> list[Section]:
    """The mailout benchmark's section for one database (``bench/run.py``)."""
    measured = measure(Options.from_args(args), database_url)
    title = f"Mailout send path: {measured.store_label}"
    return [Section(title, command, describe(measured), target_rows(measured), reading(measured))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--database-url", help="default: SQLite files in a temporary folder")
    args = parser.parse_args()
    print(machine(), flush=True)
    command = "python bench/mailout.py " + " ".join(sys.argv[1:])
    for section in sections(args, args.database_url, command):
        print()
        print(section.markdown())


if __name__ == "__main__":
    main()
