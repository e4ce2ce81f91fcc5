"""A real redis-server and a real `mailer worker` process: 1,000 supporters, one .eml each, in their language."""

import os
import signal
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mailer import campaigns, mailouts
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.supporters import import_supporters
from tests.factories import supporters_csv

pytestmark = pytest.mark.integration


def test_mailout_through_redis_workers(redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    env = env | {"MAILER_BROKER_URL": redis_url}
    settings = Settings.from_env(env, cwd=tmp_path)
    upgrade_database(settings.database_url, settings.require_vault())
    runtime = Runtime(settings)
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    expected = supporters_csv(tmp_path / "people.csv", 1000)
    import_supporters(runtime.db, tmp_path / "people.csv")

    process_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailer", "worker", "--concurrency", "2", "--loglevel", "warning"],
        env=process_env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        result = mailouts.launch_mailout(
            runtime.db, runtime.backend, "protect-hrds-iraq", {}, {}, batch_size=100
        )
        assert result.new_messages == 1000
        assert result.queued_batches == 12  # 250 per locale: 3 batches of one locale each
        deadline = time.monotonic() + 240  # a bound against hanging forever, not a performance check
        status = mailouts.mailout_status(runtime.db, result.mailout_id)
        while status.status == "running" and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
            status = mailouts.mailout_status(runtime.db, result.mailout_id)
        assert status.status == "finished", (tmp_path / "worker.log").read_text()
        assert status.counts["sent"] == 1000
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
        runtime.close()

    seen: dict[str, int] = {}
    for path in (tmp_path / "outbox").glob("*.eml"):
        email = message_from_bytes(path.read_bytes(), policy=policy.default)
        address = email["To"].addresses[0].addr_spec
        seen[address] = seen.get(address, 0) + 1
        assert email["Content-Language"] == expected[address], address
    assert seen == dict.fromkeys(expected, 1)
