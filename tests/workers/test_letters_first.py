"""Letters first: a worker that has letters and bulk batches waiting takes every letter before the next bulk
batch, so that a letter never waits behind a draining mailout (a real redis-server and `mailer worker`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from mailer import campaigns, mailouts
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.store.models import Supporter
from mailer.tasking import BULK_QUEUE, LETTERS_QUEUE
from mailer.transports.sendgrid import LEDGER_ARG
from tests.conftest import RedisServer
from tests.factories import RecordingBackend
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.workers.conftest import Worker

pytestmark = pytest.mark.integration
DEADLINE = 120  # seconds: a bound against hanging, not a performance check


def test_a_worker_takes_every_waiting_letter_before_the_next_bulk_batch(
    env: dict[str, str], tmp_path: Path, fake: FakeSendGrid, redis: RedisServer, worker_factory: list[Worker]
) -> None:
    env = env | {
        "MAILER_BROKER_URL": redis.url,
        "MAILER_TRANSPORT": "sendgrid",
        "MAILER_SENDGRID_API_KEY": fake.api_key,
        "MAILER_SENDGRID_API_URL": fake.url,
    }
    settings = Settings.from_env(env, cwd=tmp_path)
    upgrade_database(settings.database_url, settings.require_vault())
    runtime = Runtime(settings)
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    with runtime.db.session() as session:
        session.execute(
            insert(Supporter),
            [
                {
                    "email": f"s{i:03d}@example.org",
                    "email_index": runtime.vault.address_index(f"s{i:03d}@example.org"),
                    "name": "Sarah Miller",
                    "locale": "en",
                    "governorate": None,
                    "tags": [],
                }
                for i in range(80)
            ],
        )
    recorded = RecordingBackend()
    mailouts.launch_mailout(runtime.db, recorded, "protect-hrds-iraq", {}, {}, batch_size=10)
    assert len(recorded.batches) == 8
    # Queued before any worker runs: five bulk batches first, then three on the letters queue.
    for batch in recorded.batches[:5]:
        runtime.backend.enqueue_send_batch(batch, queue=BULK_QUEUE)
    for batch in recorded.batches[5:]:
        runtime.backend.enqueue_send_batch(batch, queue=LETTERS_QUEUE)
    worker = Worker(env, tmp_path, concurrency=1)
    worker_factory.append(worker)
    worker.start()
    deadline = time.monotonic() + DEADLINE
    while fake.stats()["deliveries"] < 80:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out\n{worker.logs()[-3000:]}")
        time.sleep(0.2)
    with fake.lock:
        order = [int(d.custom_args[LEDGER_ARG]) for d in fake.delivered]
    batch_of = {i: n for n, batch in enumerate(recorded.batches) for i in batch}
    taken = list(dict.fromkeys(batch_of[i] for i in order))
    assert taken[:3] == [5, 6, 7]  # every letter batch first, whatever order Redis had them in
    assert sorted(taken) == list(range(8))
    runtime.close()
