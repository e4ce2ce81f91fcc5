"""Real `mailer worker` processes for the tests that need them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.runtime import Runtime
from mailer.store.models import Message, Supporter
from tests.conftest import RedisServer
from tests.fakes.sendgrid_server import FakeSendGrid


class Worker:
    """One `mailer worker` process group, started with the test's MAILER_* variables."""

    def __init__(self, env: dict[str, str], folder: Path, concurrency: int = 2) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
        self.folder = folder
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailer",
                    "worker",
                    "--concurrency",
                    str(self.concurrency),
                    "--loglevel",
                    "info",
                ],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the whole worker, pool included: nothing gets to clean up."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
            self.process = None

    def logs(self) -> str:
        return "\n".join(
            (self.folder / f"worker-{n}.log").read_text(errors="replace") for n in range(1, self.starts + 1)
        )


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.stop()


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    """The fake SendGrid, validating every request; it keeps what it accepted (``bodies``, ``delivered``)."""
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def ledger_matches_provider(
    runtime: Runtime, mailout_id: int, fake: FakeSendGrid, expected: dict[str, str]
) -> dict[str, int]:
    """Per recipient: 'sent' in the ledger means exactly one delivery; 'unknown' at most one. Returns the counts."""
    counts = fake.counts()
    assert max(counts.values()) == 1, "somebody got the alert twice"
    with runtime.db.session() as session:
        rows = session.execute(
            select(Supporter.email, Message.status)
            .join(Message, Message.supporter_id == Supporter.id)
            .where(Message.mailout_id == mailout_id)
        ).all()
    assert sorted(email for email, _ in rows) == sorted(expected)
    states: dict[str, int] = {}
    for email, state in rows:
        states[state] = states.get(state, 0) + 1
        if state == "sent":
            assert counts[email] == 1, email
        else:
            assert state == "unknown", (email, state)
            assert counts[email] <= 1, email
    for delivered in fake.delivered:
        assert delivered.headers["List-Unsubscribe"].startswith("<https://")
    return states
