"""`mailer beat` as it runs in production: a real process that sweeps until stopped, whatever one pass meets."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer import campaigns, events, mailouts
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.store.models import Letter
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from tests.factories import supporters_csv
from tests.test_cli import mailer

DEADLINE = 60.0  # seconds; a bound for a hung process, never a measure of speed


@contextmanager
def beat(env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer", "beat", "--interval", "0.2"],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def scheduled_mailout(env: dict[str, str], tmp_path: Path) -> None:
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    campaign = str(demo_dir() / "campaigns" / "protect-hrds-iraq")
    assert mailer(["campaign", "load", campaign], env, tmp_path).returncode == 0
    supporters_csv(tmp_path / "people.csv", 8)
    assert mailer(["supporters", "import", str(tmp_path / "people.csv")], env, tmp_path).returncode == 0
    # Due already: only a sweep starts it.
    launched = mailer(
        ["mailout", "launch", "protect-hrds-iraq", "--at", "2020-01-01T09:00+03:00"], env, tmp_path
    )
    assert launched.returncode == 0, launched.stderr
    assert not (tmp_path / "outbox").exists()


def test_beat_starts_a_due_mailout_and_keeps_going(env: dict[str, str], tmp_path: Path) -> None:
    scheduled_mailout(env, tmp_path)
    with beat(env, tmp_path) as process:
        wait_for(lambda: len(list((tmp_path / "outbox").glob("alert-*.eml"))) == 8, "eight alerts")
        assert process.poll() is None  # still sweeping
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 8


def test_beat_survives_the_database_going_away(env: dict[str, str], tmp_path: Path) -> None:
    """W11: every pass fails while the database refuses connections; the scheduler lives on and catches up."""
    url = env["MAILER_DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("closing a database to connections is a PostgreSQL fault; SQLite has no server")
    scheduled_mailout(env, tmp_path)
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")

    def refuse_connections(refuse: bool) -> None:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')
            )
            if refuse:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )

    refuse_connections(True)
    lines: list[str] = []
    try:
        with beat(env, tmp_path) as process:
            assert process.stdout is not None
            reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
            reader.start()
            wait_for(lambda: sum("the sweep failed" in line for line in lines) >= 2, "two failed sweeps")
            assert process.poll() is None
            refuse_connections(False)
            wait_for(lambda: len(list((tmp_path / "outbox").glob("alert-*.eml"))) == 8, "eight alerts")
            assert process.poll() is None
    finally:
        refuse_connections(False)
        admin.dispose()


def test_one_failing_part_of_the_sweep_never_stops_the_others(runtime: Runtime, tmp_path: Path) -> None:
    """A campaign whose stored pacing cannot be read makes the letters' part fail; the rest still runs."""
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    supporters_csv(tmp_path / "people.csv", 8)
    import_supporters(runtime.db, tmp_path / "people.csv")
    mailouts.launch_mailout(runtime.db, runtime.backend, "protect-hrds-iraq", {}, {})
    now = dt.datetime.now(dt.UTC)
    bounce = {
        "email": "supporter00000@example.org",
        "event": "bounce",
        "type": "bounce",
        "timestamp": int(now.timestamp()) - 300,
        "sg_message_id": "abc.filter1",
        "mailer_message": "1",
    }
    events.store_events(runtime.db, [bounce], now - dt.timedelta(minutes=5))  # its apply task was lost
    with runtime.db.session() as session:
        campaign = repo.get_campaign(session, "protect-hrds-iraq")
        target = repo.active_targets(session, ["supreme-judicial-council"])[0]
        session.add(
            Letter(
                campaign_id=campaign.id,
                supporter_id=1,
                locale="en",
                share="name",
                targets=[target.slug],
                status="confirmed",
            )
        )
        session.flush()
        repo.add_messages(
            session,
            [
                {
                    "idempotency_key": "letter:poison",
                    "kind": "letter",
                    "letter_id": 1,
                    "target_id": target.id,
                    "supporter_id": 1,
                    "locale": "ar",
                    "content_locale": "ar",
                    "status": "queued",
                    "attempts": 0,
                }
            ],
        )
        # Pacing as no version of the loader accepts it: reading it raises.
        campaign.manifest = {**campaign.manifest, "pacing": {"hours": "after-dark"}}
    with pytest.raises(ValueError, match="isoformat"):
        runtime.sweep()
    with runtime.db.session() as session:
        assert repo.is_suppressed(
            session, runtime.vault.address_index("supporter00000@example.org"), "supporter"
        )  # the events' part ran
