"""The webhook receiver's faults (FAULTS.md H2, H7, H10) and a lost apply task, each injected for real."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from werkzeug.test import EnvironBuilder

from mailer import events
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store.models import Event, Message, Suppression
from mailer.vault import Vault, generate_key
from mailer.web import create_app
from tests.conftest import DATA_KEY, free_port
from tests.test_events import NOW, Signer, count, event, message_ids, post, sent_runtime

AFTER_GRACE = NOW + events.APPLY_GRACE + dt.timedelta(seconds=1)


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def sent(env: dict[str, str], tmp_path: Path, db: Database, signer: Signer) -> Runtime:
    return sent_runtime(env, tmp_path, db, signer)


@pytest.fixture
def web(sent: Runtime) -> FlaskClient:
    return create_app(sent).test_client()


class LostApplyTasks:
    """A task backend whose apply tasks never run, as when Redis restarts without persistence."""

    name = "lossy"

    def __init__(self) -> None:
        self.lost: list[list[int]] = []

    def enqueue_send_batch(self, message_ids: list[int], queue: str = "bulk") -> None:
        raise AssertionError("nothing is left to send in these tests")

    def enqueue_apply_events(self, event_ids: list[int]) -> None:
        self.lost.append(list(event_ids))


@pytest.fixture
def lossy(sent: Runtime) -> LostApplyTasks:
    backend = LostApplyTasks()
    sent.__dict__["backend"] = backend
    return backend


def unapplied(runtime: Runtime) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).where(Event.applied_at.is_(None))) or 0)


def suppressions(runtime: Runtime) -> list[tuple[str, str, str]]:
    return sorted((s["email"], s["reason"], s["source"]) for s in events.list_suppressions(runtime.db))


def deliveries(runtime: Runtime, ids: list[int]) -> dict[int, str | None]:
    with runtime.db.session() as session:
        return {m.id: m.delivery for m in session.scalars(select(Message).where(Message.id.in_(ids)))}


def sweep_at(runtime: Runtime, when: dt.datetime) -> None:
    runtime.clock = lambda: when
    runtime.sweep()


# H2: the same event re-sent with a different sg_event_id


def test_h2_a_retry_with_a_new_event_id_is_stored_and_applied_once(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    target, other = message_ids(sent)[:2]
    bounce = event(target, "bounce", 1000, "first-id", type="bounce", reason="550 5.1.1 unknown user")
    assert post(web, signer, [bounce]) == 200
    assert post(web, signer, [bounce | {"sg_event_id": "retry-id"}]) == 200
    assert count(sent, Event) == 1
    (stored,) = suppressions(sent)
    assert stored[1] == "hard_bounce"
    shouted = bounce | {"sg_event_id": "third-id", "email": str(bounce["email"]).upper()}
    assert post(web, signer, [shouted]) == 200
    assert count(sent, Event) == 1  # an address in other letters' case is the same address
    clicks = [
        event(other, "click", 1000, "k1", url="https://act.example.org/a"),
        event(other, "click", 1000, "k2", url="https://act.example.org/b"),
        event(other, "open", 1000, "k3"),
    ]
    assert post(web, signer, clicks) == 200
    assert count(sent, Event) == 4  # different links, different events: all kept


def test_h2_the_dedupe_key_ignores_the_event_id_and_holds_no_address() -> None:
    vault = Vault.parse(DATA_KEY)
    click = event(7, "click", 1000, "a", url="https://act.example.org/x")
    key = events.dedupe_key(vault, click)
    assert key == events.dedupe_key(vault, click | {"sg_event_id": "b"})
    assert key != events.dedupe_key(vault, click | {"url": "https://act.example.org/y"})
    assert key != events.dedupe_key(vault, click | {"mailer_message": "8"})
    assert key != events.dedupe_key(vault, click | {"timestamp": 1001})
    assert "example.org" not in key
    assert "@" not in key
    # Keyed: without the installation's key, nobody can test a guessed address against it.
    other = Vault.parse(generate_key())
    assert key != events.dedupe_key(other, click)


# H7: oversize, malformed and very large batches


class CountingBody(io.BytesIO):
    """A request body that remembers how much of it the application read."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        size = super().readinto(buffer)
        self.consumed += size
        return size

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.consumed += len(data)
        return data


def raw_post(runtime: Runtime, body: CountingBody, headers: dict[str, str], chunked: bool) -> str:
    """POST through the WSGI interface the way a server hands it over: with a declared length, or
    chunked (no length; the server marks the stream as terminated, as gunicorn does)."""
    environ = EnvironBuilder(path="/webhooks/sendgrid", method="POST", headers=headers).get_environ()
    environ["wsgi.input"] = body
    environ.pop("CONTENT_LENGTH", None)
    if chunked:
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body.getvalue()))
    statuses: list[str] = []
    b"".join(create_app(runtime).wsgi_app(environ, lambda status, _headers, *_: statuses.append(status)))
    return statuses[0]


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked"])
def test_h7_an_oversize_body_is_refused_without_reading_past_the_cap(
    sent: Runtime, signer: Signer, chunked: bool
) -> None:
    batch = [event(i, "spamreport", 1000, f"big{i}") for i in message_ids(sent)]
    padding = b" " * (events.MAX_WEBHOOK_BYTES + 1)
    raw = json.dumps(batch).encode()[:-1] + padding + b"]"  # valid JSON, correctly signed, too big
    body = CountingBody(raw)
    status = raw_post(sent, body, signer.headers(raw, int(NOW.timestamp())), chunked)
    if chunked:
        # Werkzeug cuts a chunked body at the cap; the signature then fails over what is left.
        assert status.split()[0] in {"403", "413"}
        assert body.consumed <= events.MAX_WEBHOOK_BYTES
    else:
        assert status.startswith("413")
        assert body.consumed == 0  # refused on the declared length alone
    assert count(sent, Event) == 0
    assert count(sent, Suppression) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b'{"event": "spamreport", "mailer_message": "1"}',
        b'["spamreport", 1, null]',
        b'[{"event": "spamreport"}, "x"]',
        b"\xff\xfe[]",
        b"",
    ],
    ids=["not-json", "object", "not-objects", "mixed", "not-utf8", "empty"],
)
def test_h7_a_signed_body_that_is_not_a_list_of_events_is_refused_and_nothing_stored(
    web: FlaskClient, sent: Runtime, signer: Signer, raw: bytes
) -> None:
    response = web.post("/webhooks/sendgrid", data=raw, headers=signer.headers(raw, int(NOW.timestamp())))
    assert response.status_code in {400, 403}
    assert count(sent, Event) == 0
    assert count(sent, Suppression) == 0


def test_h7_ten_thousand_events_in_one_batch_are_stored_and_applied_in_time(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    ids = message_ids(sent)
    batch = [event(ids[n % len(ids)], "open", 10_000 + n, f"o{n}") for n in range(9_990)]
    batch += [event(i, "delivered", 5_000, f"d{i}") for i in ids[:9]]
    batch.append(event(ids[9], "bounce", 6_000, "b", type="bounce"))
    body = json.dumps(batch).encode()
    assert len(batch) == 10_000
    assert len(body) < events.MAX_WEBHOOK_BYTES
    started = time.monotonic()
    response = web.post("/webhooks/sendgrid", data=body, headers=signer.headers(body, int(NOW.timestamp())))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.get_json() == {"received": 10_000, "stored": 10_000}
    assert elapsed < 10, f"SendGrid gives up on a webhook after 10 s; this batch took {elapsed:.1f} s"
    assert count(sent, Event) == 10_000
    assert unapplied(sent) == 0
    assert set(deliveries(sent, ids[:10]).values()) == {"delivered", "bounced"}
    assert [s[1] for s in suppressions(sent)] == ["hard_bounce"]


# H10: the receiver's database is down


def unreachable(runtime: Runtime, tmp_path: Path) -> Database:
    """A database of the same kind that cannot be reached: a refused port, or a file that is a folder."""
    url = make_url(runtime.db.url)
    if url.get_backend_name() == "sqlite":
        folder = tmp_path / "gone"
        folder.mkdir()
        return Database(f"sqlite:///{folder}", runtime.vault)
    return Database(
        url.set(host="127.0.0.1", port=free_port()).render_as_string(hide_password=False), runtime.vault
    )


def test_h10_with_the_database_down_the_webhook_answers_5xx_and_the_retry_lands_once(
    web: FlaskClient, sent: Runtime, signer: Signer, tmp_path: Path
) -> None:
    target = message_ids(sent)[0]
    batch = [event(target, "spamreport", 1000, "down1")]
    working = sent.db
    sent.__dict__["db"] = down = unreachable(sent, tmp_path)
    try:
        assert post(web, signer, batch) >= 500  # SendGrid retries a 5xx for 24 hours
    finally:
        sent.__dict__["db"] = working
        down.dispose()
    assert count(sent, Event) == 0
    assert count(sent, Suppression) == 0
    assert post(web, signer, batch) == 200  # the retry, once the database is back
    assert count(sent, Event) == 1
    assert [s[1] for s in suppressions(sent)] == ["complaint"]


@pytest.fixture
def failing_suppressions(sent: Runtime) -> Iterator[None]:
    """The database refuses writes to the suppression table (a trigger raises), until the test ends."""
    dialect = make_url(sent.db.url).get_backend_name()
    with sent.db.engine.begin() as connection:
        if dialect == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER storage_failure BEFORE INSERT ON suppression "
                    "BEGIN SELECT RAISE(ABORT, 'storage failure'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION storage_failure() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'storage failure'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER storage_failure BEFORE INSERT ON suppression "
                    "FOR EACH ROW EXECUTE FUNCTION storage_failure()"
                )
            )
    yield
    restore_suppressions(sent)


def restore_suppressions(runtime: Runtime) -> None:
    with runtime.db.engine.begin() as connection:
        if make_url(runtime.db.url).get_backend_name() == "sqlite":
            connection.execute(text("DROP TRIGGER IF EXISTS storage_failure"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS storage_failure ON suppression"))
            connection.execute(text("DROP FUNCTION IF EXISTS storage_failure()"))


def test_h10_a_database_failure_while_applying_leaves_nothing_half_applied(
    web: FlaskClient, sent: Runtime, signer: Signer, failing_suppressions: None
) -> None:
    delivered, bounced = message_ids(sent)[:2]
    batch = [
        event(delivered, "delivered", 900, "h1"),  # applied first, then undone with the rest
        event(bounced, "bounce", 1000, "h2", type="bounce"),
    ]
    assert post(web, signer, batch) >= 500
    assert count(sent, Event) == 2  # kept: the retry and the sweep find them
    assert unapplied(sent) == 2
    assert deliveries(sent, [delivered, bounced]) == {delivered: None, bounced: None}
    assert count(sent, Suppression) == 0
    restore_suppressions(sent)
    assert post(web, signer, batch) == 200  # SendGrid's retry: nothing new to store
    assert unapplied(sent) == 2
    sweep_at(sent, AFTER_GRACE)  # the sweep applies what the failed request left
    assert unapplied(sent) == 0
    assert deliveries(sent, [delivered, bounced]) == {delivered: "delivered", bounced: "bounced"}
    assert [s[1] for s in suppressions(sent)] == ["hard_bounce"]


# A lost apply task: the sweep applies its events, once


def test_a_lost_apply_task_is_made_good_by_the_sweep_once(
    web: FlaskClient, sent: Runtime, signer: Signer, lossy: LostApplyTasks
) -> None:
    ids = message_ids(sent)
    batch = [
        event(ids[0], "bounce", 1000, "l1", type="bounce"),
        event(ids[1], "spamreport", 1000, "l2"),
        event(ids[2], "dropped", 1000, "l3", reason="Bounced Address"),
        event(ids[3], "dropped", 1000, "l4", reason="Spam Content"),
        event(ids[4], "delivered", 1000, "l5"),
    ]
    assert post(web, signer, batch) == 200
    assert len(lossy.lost) == 1  # queued, then lost with Redis
    assert unapplied(sent) == 5
    assert count(sent, Suppression) == 0

    sweep_at(sent, NOW + events.APPLY_GRACE / 2)  # too young: the task may still be on its way
    assert unapplied(sent) == 5

    sweep_at(sent, AFTER_GRACE)
    assert unapplied(sent) == 0
    applied = suppressions(sent)
    assert sorted((email, reason) for email, reason, _ in applied) == [
        (f"supporter{ids[0] - 1:05d}@example.org", "hard_bounce"),
        (f"supporter{ids[1] - 1:05d}@example.org", "complaint"),
        (f"supporter{ids[2] - 1:05d}@example.org", "hard_bounce"),
    ]
    assert deliveries(sent, ids[:5]) == {
        ids[0]: "bounced",
        ids[1]: "complained",
        ids[2]: "dropped",
        ids[3]: "dropped",
        ids[4]: "delivered",
    }

    sweep_at(sent, AFTER_GRACE + dt.timedelta(minutes=5))  # again: nothing is applied twice
    assert suppressions(sent) == applied
    assert events.apply_unapplied_events(sent.db, AFTER_GRACE).events == 0
    late = sent.apply_events(lossy.lost[0])  # the lost task turns up after all
    assert (late.events, late.state_changes, late.suppressions) == (0, 0, 0)


def test_two_appliers_racing_apply_each_event_once(sent: Runtime) -> None:
    ids = message_ids(sent)
    batch = [event(i, "bounce", 1000, f"r{i}", type="bounce") for i in ids[:20]]
    stored = events.store_events(sent.db, batch, NOW)
    results: list[events.Applied] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def apply() -> None:
        start.wait()
        try:
            results.append(events.apply_events(sent.db, stored, NOW))
        except BaseException as error:  # reported below, in the test's own thread
            errors.append(error)

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.events for r in results) == 20
    assert sum(r.state_changes for r in results) == 20
    assert sum(r.suppressions for r in results) == 20
    assert count(sent, Suppression) == 20
