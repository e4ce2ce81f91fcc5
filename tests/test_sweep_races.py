"""Races on the ledger's leases, on SQLite and PostgreSQL: two sweepers at once (W12), and a sweeper whose clock
runs ahead of the workers' (W13). No broker: sweepers and workers are threads over their own connections, as
separate processes would be. The fake SendGrid's per-recipient count is the oracle.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from mailer import mailouts, sending
from mailer.config import Settings
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store.models import Message, Supporter
from mailer.transports import BulkEmail, Delivery, Transport
from mailer.transports.sendgrid import SendGridTransport
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.test_ledger import sendgrid_runtime

SLUG = "protect-hrds-iraq"
SUPPORTERS = 240
WAIT = 60.0  # seconds: a bound against hanging, never a duration the test relies on
LEASE = dt.timedelta(minutes=8)
SKEW = dt.timedelta(minutes=5)
ONE_LOCALE = {"locale": ["ar"]}  # one batch, one provider call
IN_ONE_LOCALE = SUPPORTERS // 4


class Held:
    """A task backend that keeps the batches it is given (the test decides who runs them, and when)."""

    name = "held"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = "bulk") -> None:
        with self.lock:
            self.batches.append(list(message_ids))

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        raise AssertionError("no events here")

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        raise AssertionError("no worker here")

    def run_beat(self, interval: float, loglevel: str) -> None:
        raise AssertionError("no beat here")

    def ids(self) -> list[int]:
        return sorted(i for batch in self.batches for i in batch)


class Killed(BaseException):
    """The worker process dies here (SIGKILL: nothing after this line runs)."""


class Hooked:
    """A transport that runs ``before`` (and ``after``) around the real provider call."""

    def __init__(
        self,
        inner: Transport,
        before: Callable[[], None] = lambda: None,
        after: Callable[[], None] = lambda: None,
    ) -> None:
        self.inner, self.before, self.after = inner, before, after
        self.name, self.chunk_size = inner.name, inner.chunk_size

    def send(self, email: BulkEmail) -> list[Delivery]:
        self.before()
        deliveries = self.inner.send(email)
        self.after()
        return deliveries

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


@pytest.fixture
def rt(env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid) -> Iterator[Runtime]:
    runtime = sendgrid_runtime(env, tmp_path, db, fake, SUPPORTERS)
    yield runtime
    runtime.close()


def transport(fake: FakeSendGrid) -> SendGridTransport:
    return SendGridTransport(fake.api_key, fake.url)


def send(
    rt: Runtime,
    through: Transport,
    ids: Sequence[int],
    clock: sending.Clock = sending.utc_now,
    compose: sending.Composer = sending.compose_alerts,
) -> sending.BatchResult:
    """One worker's send task for a batch."""
    return sending.send_batch(rt.db, through, {"alert": compose}, rt.compose_context, ids, clock)


def provider_counts(rt: Runtime, fake: FakeSendGrid) -> dict[int, int]:
    """Per ledger row: how many times the provider accepted its recipient."""
    counts = fake.counts()
    with rt.db.session() as session:
        rows = session.execute(select(Message.id, Supporter.email).join(Supporter)).all()
    return {message_id: counts.get(email, 0) for message_id, email in rows}


def statuses(rt: Runtime) -> dict[str, int]:
    found: dict[str, int] = {}
    with rt.db.session() as session:
        for status in session.scalars(select(Message.status)):
            found[status] = found.get(status, 0) + 1
    return found


def run_threads(*targets: Callable[[], object]) -> list[object]:
    """Run each target in its own thread, all released at once; their results, or the first error raised."""
    start = threading.Barrier(len(targets))
    results: list[object] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(index: int, target: Callable[[], object]) -> None:
        try:
            start.wait(WAIT)
            results[index] = target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


# W12: two sweepers on the same expired leases


def test_w12_two_sweepers_on_the_same_expired_leases_settle_each_row_once(
    rt: Runtime, fake: FakeSendGrid, settings: Settings
) -> None:
    start = sending.utc_now()
    held = Held()
    mailouts.launch_mailout(rt.db, held, SLUG, {}, {}, clock=lambda: start, batch_size=SUPPORTERS)
    assert len(held.batches) == 4  # one per locale
    # Four workers die with their claims. Two were killed just after the provider took their batch: those
    # rows may have left. Two were killed while composing: the provider never saw their rows.
    for batch in held.batches[:2]:
        with pytest.raises(Killed):
            send(rt, Hooked(transport(fake), after=raise_killed), batch, clock=lambda: start)
    for batch in held.batches[2:]:
        with pytest.raises(Killed):
            send(rt, transport(fake), batch, clock=lambda: start, compose=killed_while_composing)
    first = held.batches[0] + held.batches[1]
    second = held.batches[2] + held.batches[3]
    assert statuses(rt) == {"sending": SUPPORTERS}
    assert sum(provider_counts(rt, fake).values()) == len(first)

    # Long after the leases ran out, two sweepers (two beat processes by mistake, or beat and a cron job)
    # settle the same rows at the same instant, each over its own connections.
    later = start + 2 * LEASE
    timing = mailouts.Timing(claim_lease=LEASE)
    queues = [Held(), Held()]
    databases = [Database(settings.database_url, settings.require_vault()) for _ in queues]
    try:
        reports = run_threads(
            *[
                (lambda d=d, q=q: mailouts.sweep(d, q, lambda: later, SUPPORTERS, timing))
                for d, q in zip(databases, queues, strict=True)
            ]
        )
    finally:
        for database in databases:
            database.dispose()
    swept = [r for r in reports if isinstance(r, mailouts.SweepReport)]
    assert len(swept) == 2
    # Exactly one sweeper won each row: together they settled every row once.
    assert sum(r.requeued for r in swept) == len(second)
    assert sum(r.unknown for r in swept) == len(first)
    assert sum(r.failed for r in swept) == 0
    assert statuses(rt) == {"queued": len(second), "unknown": len(first)}
    # Each requeued row went back on the queue once, by one of them.
    dispatched = queues[0].ids() + queues[1].ids()
    assert sorted(dispatched) == sorted(second)

    for batch in queues[0].batches + queues[1].batches:
        send(rt, transport(fake), batch, clock=lambda: later)
    assert statuses(rt) == {"sent": len(second), "unknown": len(first)}
    assert set(provider_counts(rt, fake).values()) == {1}  # everyone, once


def raise_killed() -> None:
    raise Killed


def killed_while_composing(
    session: Session, messages: list[Message], context: sending.ComposeContext
) -> sending.Composed:
    raise Killed


# W13: a sweeper whose clock runs ahead of the workers'


def test_w13_a_sweeper_ahead_takes_back_a_live_claim_and_the_first_worker_stands_down(
    rt: Runtime, fake: FakeSendGrid
) -> None:
    """The worst order: worker A (its clock 5 minutes behind) claims a batch and is still composing when a
    sweeper 5 minutes ahead finds the claim ten minutes old, past the lease, and queues the rows again;
    worker B claims them; then A goes on to the provider while B is about to. A's claim is no longer A's:
    its stamp before the provider call misses every row, so A calls nobody and B sends each row once."""
    now = sending.utc_now
    worker_a_clock = lambda: now() - SKEW  # noqa: E731
    sweeper_clock = lambda: now() + SKEW  # noqa: E731
    held = Held()
    mailouts.launch_mailout(rt.db, held, SLUG, ONE_LOCALE, {}, clock=worker_a_clock, batch_size=SUPPORTERS)
    (batch,) = held.batches

    a_composing, a_go, a_calling_or_done, b_composing, b_calling = (threading.Event() for _ in range(5))

    def compose_a(
        session: Session, messages: list[Message], context: sending.ComposeContext
    ) -> sending.Composed:
        a_composing.set()
        assert a_go.wait(WAIT)
        return sending.compose_alerts(session, messages, context)

    def compose_b(
        session: Session, messages: list[Message], context: sending.ComposeContext
    ) -> sending.Composed:
        b_composing.set()
        assert a_calling_or_done.wait(WAIT)  # B reaches the provider only after A has had its chance
        return sending.compose_alerts(session, messages, context)

    def a_calls() -> None:  # A holds its call until B is at the provider too: both would send
        a_calling_or_done.set()
        assert b_calling.wait(WAIT)

    def worker_a() -> sending.BatchResult:
        try:
            return send(rt, Hooked(transport(fake), before=a_calls), batch, worker_a_clock, compose_a)
        finally:
            a_calling_or_done.set()

    results: dict[str, sending.BatchResult] = {}
    a = threading.Thread(target=lambda: results.update(a=worker_a()))
    a.start()
    assert a_composing.wait(WAIT)

    queue = Held()
    report = mailouts.sweep(rt.db, queue, sweeper_clock, SUPPORTERS, mailouts.Timing(claim_lease=LEASE))
    assert report.requeued == IN_ONE_LOCALE  # the live claim, taken back early
    (again,) = queue.batches

    b = threading.Thread(
        target=lambda: results.update(
            b=send(rt, Hooked(transport(fake), before=b_calling.set), again, now, compose_b)
        )
    )
    b.start()
    assert b_composing.wait(WAIT)  # B holds the rows now
    a_go.set()
    for thread in (a, b):
        thread.join(WAIT)
        assert not thread.is_alive()

    assert set(provider_counts(rt, fake).values()) == {1}  # nobody twice
    assert fake.requests == 1  # one provider call: B's
    assert statuses(rt) == {"sent": IN_ONE_LOCALE}
    assert results["b"].outcomes == {"sent": IN_ONE_LOCALE}
    assert "sent" not in results["a"].outcomes


def test_w13_a_sweeper_ahead_marks_a_claim_under_way_unknown_and_nothing_is_sent_again(
    rt: Runtime, fake: FakeSendGrid
) -> None:
    """The sweeper takes the claim back while A's provider call is under way: the rows may have left, so
    they become 'unknown'; A's answer, arriving later, finds them no longer 'sending' and changes nothing;
    no later sweep sends them again."""
    now = sending.utc_now
    worker_a_clock = lambda: now() - SKEW  # noqa: E731
    sweeper_clock = lambda: now() + SKEW  # noqa: E731
    timing = mailouts.Timing(claim_lease=LEASE, redispatch_after=dt.timedelta(seconds=1))
    held = Held()
    result = mailouts.launch_mailout(
        rt.db, held, SLUG, ONE_LOCALE, {}, clock=worker_a_clock, batch_size=SUPPORTERS
    )
    (batch,) = held.batches
    a_calling, a_go = threading.Event(), threading.Event()

    def a_calls() -> None:
        a_calling.set()
        assert a_go.wait(WAIT)

    results: dict[str, sending.BatchResult] = {}
    a = threading.Thread(
        target=lambda: results.update(
            a=send(rt, Hooked(transport(fake), before=a_calls), batch, worker_a_clock)
        )
    )
    a.start()
    assert a_calling.wait(WAIT)
    queue = Held()
    report = mailouts.sweep(rt.db, queue, sweeper_clock, SUPPORTERS, timing)
    assert (report.requeued, report.unknown) == (0, IN_ONE_LOCALE)
    a_go.set()
    a.join(WAIT)
    assert not a.is_alive()

    assert statuses(rt) == {"unknown": IN_ONE_LOCALE}  # the provider's answer came too late to count
    later = sweeper_clock() + 2 * LEASE
    for _ in range(2):  # later sweeps, and whatever they would queue, sent
        mailouts.sweep(rt.db, queue, lambda: later, SUPPORTERS, timing)
        for again in queue.batches:
            send(rt, transport(fake), again, lambda: later)
    assert queue.batches == []
    assert statuses(rt) == {"unknown": IN_ONE_LOCALE}
    assert mailouts.mailout_status(rt.db, result.mailout_id).status == "finished"
    assert set(provider_counts(rt, fake).values()) == {1}


# Two workers record a mailout's last outcomes at once


def test_two_workers_ending_a_mailout_at_once_leave_it_finished(rt: Runtime, fake: FakeSendGrid) -> None:
    """Each worker checks for the mailout's end after recording its last outcomes. Checked inside that
    transaction, on PostgreSQL (READ COMMITTED) each check can see the other worker's rows still 'sending'
    and nobody finishes the mailout. Worker A is held between writing its outcomes and committing them
    while worker B sends, records and checks; then A goes on. (SQLite serializes the two writers.)"""
    if rt.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers: B would wait for A's commit")
    held = Held()
    result = mailouts.launch_mailout(rt.db, held, SLUG, ONE_LOCALE, {}, batch_size=IN_ONE_LOCALE // 2)
    first, second = held.batches
    recorded, b_done = threading.Event(), threading.Event()
    worker_a: list[threading.Thread] = []

    def note(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if threading.current_thread() in worker_a and "provider_message_id" in statement:
            recorded.set()  # A's outcomes are written, not committed

    def hold(conn: object) -> None:
        if threading.current_thread() in worker_a and recorded.is_set() and not b_done.is_set():
            assert b_done.wait(WAIT), "worker B did not finish"

    def run_a() -> sending.BatchResult:
        worker_a.append(threading.current_thread())
        return send(rt, transport(fake), first)

    def run_b() -> sending.BatchResult:
        assert recorded.wait(WAIT), "worker A never recorded its outcomes"
        try:
            return send(rt, transport(fake), second)
        finally:
            b_done.set()

    event.listen(rt.db.engine, "before_cursor_execute", note)
    event.listen(rt.db.engine, "commit", hold)
    try:
        outcomes = run_threads(run_a, run_b)
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", note)
        event.remove(rt.db.engine, "commit", hold)
    assert [cast(sending.BatchResult, o).outcomes for o in outcomes] == [{"sent": IN_ONE_LOCALE // 2}] * 2
    assert mailouts.mailout_status(rt.db, result.mailout_id).status == "finished"
