"""Broker and database faults with real parts: a redis-server of the test's own, `mailer worker` processes,
the fake SendGrid (whose per-recipient count is the oracle) and a real database.

W5 Redis restarted with its append-only file, W7 Redis full (maxmemory, noeviction), W8 the broker connection
lost while send tasks run, W11 the database away or refusing a transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as redis_client
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from mailer import campaigns, mailouts
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.store.models import Mailout, Message
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from mailer.web import create_app
from tests.conftest import POSTGRES_URL, RedisServer
from tests.factories import supporters_csv
from tests.fakes.sendgrid_server import FakeSendGrid, Fault
from tests.web.conftest import MORNING, csrf_of
from tests.workers.conftest import Worker, ledger_matches_provider
from workers.backend import CeleryBackend

pytestmark = pytest.mark.integration
SLUG = "protect-hrds-iraq"
SUPPORTERS = 400
BATCH = 50
DEADLINE = 180  # seconds: a bound against hanging, not a performance check
SUCCEEDED = re.compile(r" succeeded in [0-9.e-]+s: (.*)$")


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, append_only=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def plain_redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.stop()


def client_of(server: RedisServer) -> redis_client.Redis:
    return redis_client.Redis.from_url(server.url, socket_timeout=10)


@pytest.fixture
def setup(
    env: dict[str, str], tmp_path: Path, fake: FakeSendGrid, worker_factory: list[Worker]
) -> Iterator[Callable[[str], tuple[Runtime, Worker, dict[str, str]]]]:
    """Given a broker URL: the runtime of the coordinator, a worker (not started), the expected recipients."""
    made: list[Runtime] = []

    def make(broker_url: str) -> tuple[Runtime, Worker, dict[str, str]]:
        worker_env = env | {
            "MAILER_BROKER_URL": broker_url,
            "MAILER_TRANSPORT": "sendgrid",
            "MAILER_SENDGRID_API_KEY": fake.api_key,
            "MAILER_SENDGRID_API_URL": fake.url,
            "MAILER_BATCH_SIZE": str(BATCH),
            # Short ledger timing, so that the sweeper acts within the test.
            "MAILER_CLAIM_LEASE_SECONDS": "4",
            "MAILER_REDISPATCH_SECONDS": "4",
            "MAILER_RETRY_BASE_SECONDS": "1",
        }
        settings = Settings.from_env(worker_env, cwd=tmp_path)
        upgrade_database(settings.database_url, settings.require_vault())
        runtime = Runtime(settings)
        made.append(runtime)
        campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
        expected = supporters_csv(tmp_path / "people.csv", SUPPORTERS)
        import_supporters(runtime.db, tmp_path / "people.csv")
        worker = Worker(worker_env, tmp_path)
        worker_factory.append(worker)
        return runtime, worker, expected

    yield make
    for runtime in made:
        runtime.close()


def wait_for(condition: Callable[[], bool], what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            logs = worker.logs()[-4000:] if worker else ""
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.1)


def states(runtime: Runtime, mailout_id: int) -> dict[str, int]:
    with runtime.db.session() as session:
        rows = session.scalars(select(Message.status).where(Message.mailout_id == mailout_id)).all()
    found: dict[str, int] = {}
    for state in rows:
        found[state] = found.get(state, 0) + 1
    return found


def run_to_the_end(runtime: Runtime, mailout_id: int, worker: Worker) -> dict[str, int]:
    """Sweep (as Celery beat would) until nothing is left to send; the ledger's states."""
    deadline = time.monotonic() + DEADLINE
    while mailouts.mailout_status(runtime.db, mailout_id).status == "running":
        if time.monotonic() > deadline:
            pytest.fail(f"mailout still {states(runtime, mailout_id)}\n{worker.logs()[-4000:]}")
        runtime.sweep()
        time.sleep(0.5)
    return states(runtime, mailout_id)


def received_twice(worker: Worker) -> dict[str, list[str]]:
    """Task ids the worker received more than once, with what each run reported."""
    received: dict[str, int] = {}
    results: dict[str, list[str]] = {}
    for line in worker.logs().splitlines():
        if "Task mailer.send_batch[" not in line:
            continue
        task_id = line.split("Task mailer.send_batch[", 1)[1].split("]", 1)[0]
        if line.endswith("received"):
            received[task_id] = received.get(task_id, 0) + 1
        elif found := SUCCEEDED.search(line):
            results.setdefault(task_id, []).append(found.group(1))
    return {task_id: results.get(task_id, []) for task_id, n in received.items() if n > 1}


def age_unacknowledged(server: RedisServer) -> int:
    """Make the task messages Redis holds as delivered-but-unacknowledged look older than the broker's
    visibility timeout, as they would an hour later; how many there are. kombu keeps them in the
    ``unacked`` hash, indexed by delivery time in ``unacked_index``."""
    client = client_of(server)
    tags = client.zrange("unacked_index", 0, -1)
    if tags:
        client.zadd("unacked_index", dict.fromkeys(tags, 1.0))
    return len(tags)


def test_w5_redis_restarted_with_its_append_only_file_loses_no_task(
    setup: Callable[[str], tuple[Runtime, Worker, dict[str, str]]],
    fake: FakeSendGrid,
    aof_redis: RedisServer,
) -> None:
    runtime, worker, expected = setup(aof_redis.url)
    # The first two provider calls hang: two tasks are in flight, six wait on the queue, when Redis dies.
    fake.inject(*[Fault(status=202, delay=30.0, accept=True) for _ in range(2)])
    worker.start()
    result = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {}, batch_size=BATCH)
    assert result.queued_batches == SUPPORTERS // BATCH
    wait_for(lambda: fake.requests >= 2, "two provider calls under way", worker)
    assert client_of(aof_redis).llen("bulk") == SUPPORTERS // BATCH - 2  # waiting on the queue
    aof_redis.crash()  # SIGKILL: no shutdown, no last save
    aof_redis.start()
    # Without any sweep: every task that was waiting comes back from the append-only file and is run.
    wait_for(
        lambda: states(runtime, result.mailout_id).get("sent", 0) == SUPPORTERS - 2 * BATCH,
        "the waiting tasks to be run after the restart",
        worker,
    )
    assert states(runtime, result.mailout_id) == {"sent": SUPPORTERS - 2 * BATCH, "sending": 2 * BATCH}
    assert "Terminating it instead" in worker.logs()  # the tasks in flight could not be acknowledged
    # The rows of the two tasks in flight were at the provider: the sweeper marks them unknown.
    final = run_to_the_end(runtime, result.mailout_id, worker)
    assert final == {"sent": SUPPORTERS - 2 * BATCH, "unknown": 2 * BATCH}
    ledger_matches_provider(runtime, result.mailout_id, fake, expected)
    assert len(fake.counts()) == SUPPORTERS


def test_w8_tasks_cut_off_from_the_broker_are_stopped_and_their_redelivery_sends_nothing(
    setup: Callable[[str], tuple[Runtime, Worker, dict[str, str]]],
    fake: FakeSendGrid,
    aof_redis: RedisServer,
) -> None:
    runtime, worker, expected = setup(aof_redis.url)
    backend = runtime.backend
    assert isinstance(backend, CeleryBackend)
    assert backend.app.conf.worker_cancel_long_running_tasks_on_connection_loss is True
    fake.inject(*[Fault(status=202, delay=30.0, accept=True) for _ in range(2)])  # a slow provider
    worker.start()
    result = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {}, batch_size=BATCH)
    wait_for(lambda: fake.requests >= 2, "two provider calls under way", worker)
    aof_redis.stop()  # the broker goes away and comes back, its data intact
    aof_redis.start()
    wait_for(
        lambda: states(runtime, result.mailout_id).get("sent", 0) == SUPPORTERS - 2 * BATCH,
        "the worker to reconnect and run the other tasks",
        worker,
    )
    assert worker.logs().count("Terminating it instead") == 2  # the two tasks in flight were stopped
    # Their messages were never acknowledged: Redis gives them back once the visibility timeout has
    # passed (here made to look passed) to the next worker that looks, which runs them again.
    assert age_unacknowledged(aof_redis) == 2
    worker.stop()
    worker.start()
    wait_for(lambda: len(received_twice(worker)) == 2, "the two tasks to be delivered again", worker)
    wait_for(
        lambda: all(received_twice(worker).values()), "the second deliveries to finish", worker
    )  # (the first ones were stopped: they report nothing)
    # Their rows are still claimed: the second delivery claimed nothing and called nobody.
    assert [runs for runs in received_twice(worker).values()] == [["{'claimed': 0}"]] * 2
    assert states(runtime, result.mailout_id) == {"sent": SUPPORTERS - 2 * BATCH, "sending": 2 * BATCH}
    assert sum(fake.counts().values()) == SUPPORTERS
    final = run_to_the_end(runtime, result.mailout_id, worker)
    assert final == {"sent": SUPPORTERS - 2 * BATCH, "unknown": 2 * BATCH}  # at the provider, maybe sent
    ledger_matches_provider(runtime, result.mailout_id, fake, expected)


def mailer(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `mailer` command, as a coordinator (or cron) runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def fill(server: RedisServer) -> int:
    """Redis at its ``maxmemory`` under ``noeviction``: every write that needs memory is refused, nothing is
    evicted. Returns the limit set (the keys that filled it stay: setting the limit again fills it again)."""
    client = client_of(server)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 2 * 1024 * 1024)
    filler = 0
    while True:
        try:
            client.set(f"filler:{filler}", b"x" * 64 * 1024)
        except redis_client.exceptions.OutOfMemoryError:
            break
        filler += 1
    # Well past the limit, so that the memory clients' buffers give back never makes room for a task.
    limit = int(client.info("memory")["used_memory"]) - 1024 * 1024
    client.config_set("maxmemory", limit)
    return limit


def nothing_evicted(server: RedisServer) -> None:
    client = client_of(server)
    fillers = client.keys("filler:*")
    assert len(fillers) > 0
    assert client.info("stats")["evicted_keys"] == 0
    assert client.exists(*fillers) == len(fillers)


def ready(worker: Worker) -> None:
    wait_for(lambda: " ready." in worker.logs(), "the worker to be ready", worker)


def test_w7_a_full_redis_refuses_the_launch_loudly_and_the_sweep_queues_it_when_there_is_room(
    setup: Callable[[str], tuple[Runtime, Worker, dict[str, str]]],
    fake: FakeSendGrid,
    plain_redis: RedisServer,
    tmp_path: Path,
) -> None:
    runtime, worker, expected = setup(plain_redis.url)
    worker.start()
    ready(worker)
    fill(plain_redis)

    launched = mailer(["mailout", "launch", SLUG], worker.env, tmp_path)
    assert launched.returncode == 1, launched.stdout + launched.stderr
    # One line, no traceback (after the launch's warnings about the seed's drafts and unconfirmed names).
    *warnings, line = launched.stderr.strip().splitlines()
    assert all(warning.startswith("Warning: ") for warning in warnings), warnings
    assert line.startswith("error: the task queue refused the work (")
    assert "maxmemory" in line
    assert line.endswith("nothing was lost; the waiting messages are queued again when it is back")
    # The ledger has every row, waiting; Redis has no task and lost no key of its own.
    with runtime.db.session() as session:
        mailout_id = session.scalars(select(Mailout.id)).one()
        rows = session.execute(select(Message.status, Message.dispatched_at)).all()
    assert len(rows) == SUPPORTERS
    assert {status for status, _ in rows} == {"queued"}
    assert all(dispatched_at is not None for _, dispatched_at in rows)
    assert client_of(plain_redis).llen("bulk") == 0
    nothing_evicted(plain_redis)

    # The sweep (cron or beat) tries again once the redispatch time has passed: still full, it says so too.
    def sweep_refused() -> bool:
        swept = mailer(["sweep"], worker.env, tmp_path)
        if swept.returncode == 0:
            return False
        last = swept.stderr.strip().splitlines()[-1]  # (the sweep logs the failed part before it)
        assert last.startswith("error: the task queue refused the work ("), swept.stderr
        return True

    wait_for(sweep_refused, "a sweep after the redispatch time", worker)
    assert states(runtime, mailout_id) == {"queued": SUPPORTERS}
    nothing_evicted(plain_redis)
    assert fake.requests == 0

    client_of(plain_redis).config_set("maxmemory", 0)  # room again

    def sweep_queued() -> bool:
        swept = mailer(["sweep", "--json"], worker.env, tmp_path)
        assert swept.returncode == 0, swept.stderr
        return int(json.loads(swept.stdout)["batches"]) > 0

    wait_for(sweep_queued, "a sweep that queues the waiting messages", worker)
    wait_for(
        lambda: mailouts.mailout_status(runtime.db, mailout_id).status == "finished",
        "the workers to send them",
        worker,
    )
    assert ledger_matches_provider(runtime, mailout_id, fake, expected) == {"sent": SUPPORTERS}
    assert len(fake.counts()) == SUPPORTERS


@pytest.fixture
def runtimes() -> Iterator[Callable[[Runtime], Runtime]]:
    """Closes the runtimes it is given at the end of the test."""
    made: list[Runtime] = []

    def keep(runtime: Runtime) -> Runtime:
        made.append(runtime)
        return runtime

    yield keep
    for runtime in made:
        runtime.close()


def test_w7_the_pages_answer_as_usual_when_the_queue_is_full_and_the_sweep_sends_later(
    env: dict[str, str],
    tmp_path: Path,
    fake: FakeSendGrid,
    plain_redis: RedisServer,
    worker_factory: list[Worker],
    runtimes: Callable[[Runtime], Runtime],
) -> None:
    worker_env = env | {
        "MAILER_BROKER_URL": plain_redis.url,
        "MAILER_TRANSPORT": "sendgrid",
        "MAILER_SENDGRID_API_KEY": fake.api_key,
        "MAILER_SENDGRID_API_URL": fake.url,
    }
    # The pages' own counters in the database, so that the queue is the only part that meets the full Redis
    # (with a broker, they would be on that Redis too).
    runtime = runtimes(Runtime(Settings.from_env(env, cwd=tmp_path)))
    upgrade_database(runtime.settings.database_url, runtime.vault)
    runtime.__dict__["backend"] = CeleryBackend(Settings.from_env(worker_env, cwd=tmp_path))
    now = [MORNING]
    runtime.clock = lambda: now[0]
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    client = create_app(runtime).test_client()
    worker = Worker(worker_env, tmp_path)
    worker_factory.append(worker)
    worker.start()
    ready(worker)
    limit = fill(plain_redis)

    page = client.get("/en/protect-hrds-iraq")
    answer = client.post(
        "/en/protect-hrds-iraq",
        data={
            "csrf_token": csrf_of(page.get_data(as_text=True)),
            "name": "Rojda Şêxo",
            "email": "rojda@example.com",
            "governorate": "Duhok",
            "share": "name",
            "subject": "Drop the charges against the defenders",
            "body": "Dear official, please drop the charges.",
            "note": "",
            "website": "",
        },
    )
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    assert ledger_by_kind(runtime) == {"confirm": ["queued"]}
    nothing_evicted(plain_redis)

    client_of(plain_redis).config_set("maxmemory", 0)
    now[0] += dt.timedelta(minutes=11)  # past the letters' redispatch time
    runtime.sweep()
    wait_for(lambda: ledger_by_kind(runtime) == {"confirm": ["sent"]}, "the confirmation", worker)
    (confirmation,) = [json.dumps(body) for body in fake.bodies]
    token = re.findall(r"https://act\.example\.org/confirm/([A-Za-z0-9_.\-]+)", confirmation)[0]

    # Full again, once the worker has acknowledged its task (a full Redis refuses acknowledgements too).
    wait_for(lambda: client_of(plain_redis).hlen("unacked") == 0, "the acknowledgement", worker)
    client_of(plain_redis).config_set("maxmemory", limit)
    page = client.get(f"/confirm/{token}")
    answer = client.post(f"/confirm/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert answer.status_code == 200
    assert "Your letter is on its way" in answer.get_data(as_text=True)
    assert ledger_by_kind(runtime) == {"confirm": ["sent"], "copy": ["queued"], "letter": ["queued"] * 7}
    nothing_evicted(plain_redis)

    client_of(plain_redis).config_set("maxmemory", 0)
    now[0] += dt.timedelta(minutes=11)
    runtime.sweep()
    wait_for(
        lambda: ledger_by_kind(runtime) == {"confirm": ["sent"], "copy": ["sent"], "letter": ["sent"] * 7},
        "the letters and the copy",
        worker,
    )
    counts = fake.counts()
    assert counts.pop("rojda@example.com") == 2  # the confirmation and the copy
    assert sorted(counts.values()) == [1] * 7  # each official once


def ledger_by_kind(runtime: Runtime) -> dict[str, list[str]]:
    with runtime.db.session() as session:
        rows = session.execute(select(Message.kind, Message.status).order_by(Message.id)).all()
    found: dict[str, list[str]] = {}
    for kind, status in rows:
        found.setdefault(kind, []).append(status)
    return found


class Held:
    """A task backend that keeps the batches a launch queues, for the test to hand over later."""

    name = "held"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = "bulk") -> None:
        self.batches.append(list(message_ids))

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        raise AssertionError("no events here")

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        raise AssertionError("no worker here")

    def run_beat(self, interval: float, loglevel: str) -> None:
        raise AssertionError("no beat here")


def retried(worker: Worker) -> set[str]:
    """Ids of the send tasks that Celery put back for a retry."""
    found = re.findall(r"Task mailer\.send_batch\[([0-9a-f-]+)\] retry: ", worker.logs())
    return set(found)


def attempts(runtime: Runtime) -> set[int]:
    with runtime.db.session() as session:
        return set(session.scalars(select(Message.attempts)))


@contextmanager
def database_away(database_url: str) -> Iterator[Callable[[], None]]:
    """The database refuses every connection until the returned function is called (or the block ends).

    PostgreSQL: the database stops accepting connections and the open ones are cut. SQLite: a writer holds
    the database's lock, so every other writer meets "database is locked" once its busy timeout is spent.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        back = holder.close
    else:
        admin = create_engine(
            make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        name = url.database

        def allow(allowed: bool) -> None:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
                if not allowed:
                    connection.execute(
                        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                        {"name": name},
                    )

        allow(False)

        def back() -> None:
            allow(True)
            admin.dispose()

    done = False

    def restore() -> None:
        nonlocal done
        if not done:
            done = True
            back()

    try:
        yield restore
    finally:
        restore()


def test_w11_tasks_meeting_a_database_away_call_nobody_and_are_retried_when_it_is_back(
    setup: Callable[[str], tuple[Runtime, Worker, dict[str, str]]],
    fake: FakeSendGrid,
    plain_redis: RedisServer,
) -> None:
    runtime, worker, expected = setup(plain_redis.url)
    held = Held()
    result = mailouts.launch_mailout(runtime.db, held, SLUG, {}, {}, batch_size=BATCH)
    worker.start()
    ready(worker)
    runtime.db.dispose()
    with database_away(runtime.settings.database_url) as back:
        for batch in held.batches:  # the launch's tasks reach the worker now
            runtime.backend.enqueue_send_batch(batch)
        # Each claim fails: the task is put back with a backoff (Celery's autoretry, with jitter).
        wait_for(lambda: len(retried(worker)) >= 2, "two tasks to be retried", worker)
        assert fake.requests == 0  # nobody called without a committed claim
        back()
    # No sweep: the retries alone send everything, once, each row claimed once.
    wait_for(lambda: states(runtime, result.mailout_id) == {"sent": SUPPORTERS}, "every row sent", worker)
    assert attempts(runtime) == {1}
    ledger_matches_provider(runtime, result.mailout_id, fake, expected)
    assert len(fake.counts()) == SUPPORTERS


FAULTS_SQL = [
    # A sequence is not rolled back with the transaction that the fault aborts: each fault fires once.
    "CREATE SEQUENCE fault_claim",
    "CREATE SEQUENCE fault_call",
    "CREATE SEQUENCE fault_answer",
    """
    CREATE FUNCTION refuse(fault text, times int) RETURNS boolean AS $$
    BEGIN
        IF nextval(fault) <= times THEN
            RAISE EXCEPTION 'could not serialize access (injected at %)', fault
                USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN true;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE FUNCTION inject_faults() RETURNS trigger AS $$
    BEGIN
        IF OLD.status = 'queued' AND NEW.status = 'sending' THEN
            PERFORM refuse('fault_claim', 2);
        ELSIF OLD.provider_called_at IS NULL AND NEW.provider_called_at IS NOT NULL THEN
            PERFORM refuse('fault_call', 1);
        ELSIF OLD.status = 'sending' AND NEW.status = 'sent' THEN
            PERFORM refuse('fault_answer', 1);
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    "CREATE TRIGGER inject_faults BEFORE UPDATE ON message FOR EACH ROW EXECUTE FUNCTION inject_faults()",
]


def test_w11_serialization_failures_on_the_claim_and_the_state_updates_send_nobody_twice(
    setup: Callable[[str], tuple[Runtime, Worker, dict[str, str]]],
    fake: FakeSendGrid,
    plain_redis: RedisServer,
) -> None:
    runtime, worker, expected = setup(plain_redis.url)
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers and has no serialization failure; its lock is the test above")
    with runtime.db.engine.begin() as connection:
        for statement in FAULTS_SQL:
            connection.execute(text(statement))
    worker.start()
    result = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {}, batch_size=BATCH)
    # Two claims fail (nothing claimed, nobody called); one stamp before a provider call fails (the rows
    # go back untried); one record of the provider's answer fails after the provider took the batch.
    # Celery retries the four tasks; no sweep yet.
    wait_for(
        lambda: states(runtime, result.mailout_id) == {"sent": SUPPORTERS - BATCH, "sending": BATCH},
        "every batch but the one whose answer was lost",
        worker,
    )
    assert len(retried(worker)) == 4
    assert sum(fake.counts().values()) == SUPPORTERS  # that batch too went to the provider, once
    # Its rows stay claimed, the provider called: the sweeper marks them unknown, never to be sent again.
    final = run_to_the_end(runtime, result.mailout_id, worker)
    assert final == {"sent": SUPPORTERS - BATCH, "unknown": BATCH}
    assert attempts(runtime) == {1}  # the failed claims and the stamp given back counted nothing
    ledger_matches_provider(runtime, result.mailout_id, fake, expected)
