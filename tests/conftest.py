"""Shared fixtures: a fresh database per test, a real redis-server on a free port, test settings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer.config import Settings
from mailer.runtime import Runtime
from mailer.store import Database, upgrade_database

SECRET = "test-secret-key-0123456789abcdef"
# A fixed installation key for tests (never used anywhere else): made with `mailer keys generate`.
DATA_KEY = (
    "mailer-key-v1.zPj17mIoVqbobXbkIemRoxOJAxDOLZanR_Pq3lZIDxg.s5LZaEMQxtwCsEjAUL7GmEFMlTpZUzOazxAQYK6Z5WU"
)
ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current rendering (on purpose only)",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite always, PostgreSQL too when MAILER_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailer.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("MAILER_TEST_POSTGRES_URL is not set")
    admin = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"mailer_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """MAILER_* variables for a test: its own database and outbox."""
    return {
        "MAILER_DATABASE_URL": database_url,
        "MAILER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "MAILER_SECRET_KEY": SECRET,
        "MAILER_DATA_KEY": DATA_KEY,
        "MAILER_BASE_URL": "https://act.example.org",
        "MAILER_FROM_EMAIL": "alerts@example.org",
        "MAILER_FROM_NAME": "Solidarity Mailer",
    }


@pytest.fixture
def settings(env: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.from_env(env, cwd=tmp_path)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    upgrade_database(settings.database_url, settings.require_vault())
    database = Database(settings.database_url, settings.require_vault())
    yield database
    database.dispose()


@pytest.fixture
def runtime(settings: Settings, db: Database) -> Iterator[Runtime]:
    rt = Runtime(settings)
    rt.__dict__["db"] = db  # share the fixture's database object
    return rt


class RedisServer:
    """A redis-server process of our own on a loopback port; it can be stopped and started again."""

    def __init__(self, folder: Path, port: int | None = None, append_only: bool = False) -> None:
        """``append_only``: keep the data in an append-only file written before each answer, so that a
        restart, even after SIGKILL, finds every message it had acknowledged."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.binary = binary
        self.folder = folder
        self.port = port or free_port()
        self.append_only = append_only
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *(
                ("--appendonly", "yes", "--appendfsync", "always")
                if self.append_only
                else ("--appendonly", "no")
            ),
        ]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last write."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of our own on a free loopback port (never one that happens to be running)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()
