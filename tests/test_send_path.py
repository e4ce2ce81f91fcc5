"""The send path's shape: requests at the shipped defaults, one rendering per content and batch, a launch
that sends while it lists, and a batch whose statements do not grow with its rows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text

from mailer import campaigns, letters, mailouts, sending
from mailer.config import Settings
from mailer.rendering import Renderer
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Mailout, Message, Supporter
from mailer.targets import import_targets
from mailer.tasking import InProcessBackend
from tests.factories import NAMES, RecordingBackend, prefilled_letter
from tests.fakes.sendgrid_server import FakeSendGrid

SLUG = "protect-hrds-iraq"


def add_supporters(rt: Runtime, per_locale: dict[str, int]) -> None:
    """Synthetic supporters on example.org, written in one statement (the import is tested elsewhere)."""
    rows = []
    for code, count in per_locale.items():
        for i in range(count):
            address = f"{code}{i:05d}@example.org"
            rows.append(
                {
                    "email": address,
                    "email_index": rt.vault.address_index(address),
                    "name": NAMES[code][i % 3],
                    "locale": code,
                    "governorate": None,
                    "tags": [],
                }
            )
    with rt.db.session() as session:
        session.execute(insert(Supporter), rows)


def runtime_for(env: dict[str, str], tmp_path: Path, db: Database, **more: str) -> Runtime:
    runtime = Runtime(Settings.from_env(env | more, cwd=tmp_path))
    runtime.__dict__["db"] = db
    campaigns.load_campaign(db, demo_dir() / "campaigns" / SLUG)
    return runtime


def sendgrid_runtime(env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid) -> Runtime:
    return runtime_for(
        env,
        tmp_path,
        db,
        MAILER_TRANSPORT="sendgrid",
        MAILER_SENDGRID_API_KEY=fake.api_key,
        MAILER_SENDGRID_API_URL=fake.url,
    )


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(keep_bodies=False) as server:
        yield server


def test_the_shipped_defaults_make_the_fewest_requests_sendgrid_allows(
    env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid
) -> None:
    """10,001 recipients, uneven over the locales, Sorani readers sent the English alert: one request per
    1000 recipients of each content, with nothing tuned (no MAILER_BATCH_SIZE)."""
    rt = sendgrid_runtime(env, tmp_path, db, fake)
    per_locale = {"en": 4500, "ar": 3000, "ckb": 1500, "kmr": 1001}
    add_supporters(rt, per_locale)
    result = mailouts.launch_mailout(
        rt.db, rt.backend, SLUG, {}, {"ckb": "en"}, batch_size=rt.settings.batch_size
    )
    content = {"en": 4500 + 1500, "ar": 3000, "kmr": 1001}  # apart, en and ckb would take 5 + 2
    assert result.status == "finished"
    assert fake.stats()["deliveries"] == fake.stats()["recipients"] == 10_001
    assert fake.stats()["rejected"] == 0
    assert fake.requests == sum(math.ceil(n / 1000) for n in content.values()) == 11
    rt.close()


class Watching(InProcessBackend):
    """Runs each batch at once, and notes what the ledger held when it was queued."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__({"send_batch": rt.send_batch, "apply_events": rt.apply_events})
        self.rt = rt
        self.seen: list[tuple[int, bool, str]] = []

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = "bulk") -> None:
        with self.rt.db.session() as session:
            rows = session.scalar(select(func.count()).select_from(Message)) or 0
            mailout = session.scalars(select(Mailout)).one()
            self.seen.append((rows, mailout.listing, mailout.status))
        super().enqueue_send_batch(message_ids, queue)


def test_a_launch_sends_each_page_as_it_commits_and_finishes_only_after_the_last(
    env: dict[str, str], tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first alerts leave while the ledger is still being written; the workers that send the first
    pages never call the mailout finished before its last page is written."""
    monkeypatch.setattr(mailouts, "PAGE_SIZE", 10)
    rt = runtime_for(env, tmp_path, db)
    add_supporters(rt, {"en": 35})
    backend = Watching(rt)
    result = mailouts.launch_mailout(rt.db, backend, SLUG, {}, {}, batch_size=10)
    assert [rows for rows, _, _ in backend.seen] == [10, 20, 30, 35]  # each batch as soon as it fills
    assert all(listing and status == "running" for _, listing, status in backend.seen)
    assert result.status == "finished"
    assert result.new_messages == 35
    assert len(list((tmp_path / "outbox").glob("alert-*.eml"))) == 35
    with rt.db.session() as session:
        assert session.scalars(select(Mailout.listing)).one() is False


def test_every_transport_renders_the_alert_once_per_content_and_batch(
    env: dict[str, str], tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox (and SMTP) hand messages over one by one, but render the alert once for the batch."""
    renders: Counter[str] = Counter()
    original = Renderer.render_alert

    def counting(self: Renderer, *args: Any, **kwargs: Any) -> Any:
        renders[args[1]] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Renderer, "render_alert", counting)
    rt = runtime_for(env, tmp_path, db)
    add_supporters(rt, {"en": 30, "ar": 30, "ckb": 30, "kmr": 30})
    backend = RecordingBackend()
    mailouts.launch_mailout(rt.db, backend, SLUG, {}, {})
    assert [len(b) for b in backend.batches] == [30, 30, 30, 30]  # one content each
    for batch in backend.batches:
        rt.send_batch(batch)
    assert renders == {"en": 1, "ar": 1, "ckb": 1, "kmr": 1}
    assert len(list((tmp_path / "outbox").glob("alert-*.eml"))) == 120


def statements_of(rt: Runtime, batch: list[int]) -> list[str]:
    """The SQL statements one batch of alerts runs, from its claim to its outcome, as sent."""
    seen: list[str] = []
    engine = rt.db.engine

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        result = rt.send_batch(batch)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert result.outcomes == {"sent": len(batch)}
    return seen


def test_a_batch_runs_the_same_statements_for_ten_rows_as_for_a_thousand(
    env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid
) -> None:
    """No statement per recipient: claim, read, mark and record are one each, whatever the batch."""
    rt = sendgrid_runtime(env, tmp_path, db, fake)
    add_supporters(rt, {"ar": 1010})
    backend = RecordingBackend()
    mailouts.launch_mailout(rt.db, backend, SLUG, {}, {}, batch_size=1000)
    big, small = backend.batches
    assert (len(big), len(small)) == (1000, 10)
    texts, big_texts = statements_of(rt, small), statements_of(rt, big)
    statements = [text.split(None, 1)[0].upper() for text in texts]
    assert [text.split(None, 1)[0].upper() for text in big_texts] == statements
    if rt.db.engine.dialect.name == "postgresql":  # the ids as one array: the same text, whatever the batch
        assert big_texts == texts
        assert max(len(text) for text in texts) < 2000
    writes = [s for s in statements if s in ("UPDATE", "INSERT", "DELETE")]
    assert writes == ["UPDATE", "UPDATE", "UPDATE", "UPDATE"]  # claim, mark, outcome, the mailout's end
    assert len(statements) <= 12
    with rt.db.session() as session:
        assert repo.message_counts(session, 1) == {"ar": {"sent": 1010}}
    rt.close()


def test_sqlite_finds_a_batchs_rows_by_their_ids_however_many_are_queued(
    env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid
) -> None:
    """Without statistics SQLite would rather read every queued row through the status index than look up
    the batch's ids: a batch would cost more the larger its mailout. Every UPDATE of a batch's rows goes by
    the ids (EXPLAIN QUERY PLAN of the statements as sent)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by its statistics")
    rt = sendgrid_runtime(env, tmp_path, db, fake)
    add_supporters(rt, {"ar": 1500})
    backend = RecordingBackend()
    mailouts.launch_mailout(rt.db, backend, SLUG, {}, {}, batch_size=1000)
    sent: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement.startswith("UPDATE message"):
            sent.append((statement, parameters))

    event.listen(rt.db.engine, "before_cursor_execute", note)
    try:
        assert rt.send_batch(backend.batches[0]).outcomes == {"sent": 1000}
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", note)
    assert len(sent) == 3  # the claim, the mark, the outcome
    with rt.db.engine.connect() as connection:
        for statement, parameters in sent:
            plan = [
                row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
            assert plan[0] == "SEARCH message USING INTEGER PRIMARY KEY (rowid=?)", (statement[:60], plan)
    rt.close()


def test_the_claim_reads_back_what_composing_needs(env: dict[str, str], tmp_path: Path, db: Database) -> None:
    rt = runtime_for(env, tmp_path, db)
    add_supporters(rt, {"kmr": 3})
    backend = RecordingBackend()
    mailouts.launch_mailout(rt.db, backend, SLUG, {}, {"kmr": "en"})
    (batch,) = backend.batches
    with rt.db.session() as session:
        rows = repo.claim_rows(session, batch, sending.utc_now())
        again = repo.claim_rows(session, batch, sending.utc_now())
    assert [r.id for r in rows] == batch
    assert {(r.kind, r.content_locale, r.attempts, r.mailout_id) for r in rows} == {("alert", "en", 1, 1)}
    assert [r.idempotency_key for r in rows] == [f"alert:1:{r.supporter_id}" for r in rows]
    assert again == []  # claimed once


def test_the_letters_queue_costs_the_same_however_long_a_mailouts_ledger(
    env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    """A confirmation dispatches the letters queue: its cost must not grow with the queued rows a mailout
    fills the ledger with. Counted in SQLite's virtual machine steps, not in time."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite counts its steps; PostgreSQL uses the same indexes")
    rt = runtime_for(env, tmp_path, db)

    def steps_of_a_dispatch() -> int:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        def watch(conn: Any, *rest: Any) -> None:
            conn.connection.driver_connection.set_progress_handler(count, 10)

        event.listen(rt.db.engine, "before_cursor_execute", watch)
        try:
            letters.dispatch_letters(rt.db, RecordingBackend())
        finally:
            event.remove(rt.db.engine, "before_cursor_execute", watch)
        return steps[0]

    import_targets(rt.db, demo_dir() / "officials.yaml")
    held = RecordingBackend()  # nothing it is given is sent: the letters stay waiting for their officials
    started = letters.start_letter(rt.db, held, prefilled_letter(rt, "ar", governorate="Basra"))
    letters.confirm_letter_id(rt.db, held, started.letter_id)
    add_supporters(rt, {"ar": 100})
    mailouts.launch_mailout(rt.db, RecordingBackend(), SLUG, {}, {})  # queued rows nobody sends
    small = steps_of_a_dispatch()
    add_supporters(rt, {"en": 3000})
    mailouts.launch_mailout(rt.db, RecordingBackend(), SLUG, {"locale": ["en"]}, {})
    large = steps_of_a_dispatch()
    assert small > 0
    assert large <= small * 1.5, (small, large)


def test_a_large_launch_refreshes_the_ledgers_statistics_on_postgresql(
    env: dict[str, str], tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a launch, PostgreSQL's planner would still see a near-empty ledger and send the letters
    queue's queries through the new queued rows (a confirmation 8 times slower) until autovacuum came."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no statistics until asked, and plans by its indexes")
    monkeypatch.setattr(mailouts, "ANALYZE_AFTER", 30)
    rt = runtime_for(env, tmp_path, db)

    def planner_rows() -> float:
        with rt.db.engine.connect() as connection:
            query = text("SELECT reltuples FROM pg_class WHERE relname = 'message'")
            return float(connection.execute(query).scalar_one())

    add_supporters(rt, {"ar": 20})
    mailouts.launch_mailout(rt.db, RecordingBackend(), SLUG, {}, {})
    assert planner_rows() < 20  # never analysed: below the threshold, nothing is asked of the database
    add_supporters(rt, {"en": 40})
    mailouts.launch_mailout(rt.db, RecordingBackend(), SLUG, {"locale": ["en"]}, {})
    assert planner_rows() == 60
