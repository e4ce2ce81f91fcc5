"""The exactly-once ledger under retries, pauses, cancels, dead workers and a misbehaving provider.

The fake SendGrid server's per-recipient count is the oracle: every supporter exactly once, or, for the
ambiguous cases, marked unknown and never sent again.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mailer import campaigns, events, mailouts, sending
from mailer.config import Settings
from mailer.errors import MailerError, MailoutError
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store import repository as repo
from mailer.supporters import import_supporters
from tests.factories import supporters_csv
from tests.fakes.sendgrid_server import FakeSendGrid, Fault

SLUG = "protect-hrds-iraq"


class Queue:
    """A task backend that keeps the batches, so that a test decides when each one runs."""

    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def enqueue_send_batch(self, message_ids: list[int], queue: str = "bulk") -> None:
        self.batches.append(list(message_ids))

    def take(self) -> list[list[int]]:
        batches, self.batches = self.batches, []
        return batches


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


def sendgrid_runtime(
    env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid, supporters: int
) -> Runtime:
    """A runtime sending through the fake SendGrid, with the seed campaign and synthetic supporters."""
    settings = Settings.from_env(
        env
        | {
            "MAILER_TRANSPORT": "sendgrid",
            "MAILER_SENDGRID_API_KEY": fake.api_key,
            "MAILER_SENDGRID_API_URL": fake.url,
        },
        cwd=tmp_path,
    )
    runtime = Runtime(settings)
    runtime.__dict__["db"] = db
    campaigns.load_campaign(db, demo_dir() / "campaigns" / SLUG)
    supporters_csv(tmp_path / "people.csv", supporters)
    import_supporters(db, tmp_path / "people.csv")
    return runtime


@pytest.fixture
def rt(env: dict[str, str], tmp_path: Path, db: Database, fake: FakeSendGrid) -> Iterator[Runtime]:
    runtime = sendgrid_runtime(env, tmp_path, db, fake, 120)
    runtime.__dict__["backend"] = Queue()
    yield runtime
    runtime.close()


def queue_of(rt: Runtime) -> Queue:
    backend = rt.backend
    assert isinstance(backend, Queue)
    return backend


def run_all(rt: Runtime, clock: Clock) -> None:
    for batch in queue_of(rt).take():
        sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batch, clock)


def launch(rt: Runtime, clock: Clock, **options: object) -> mailouts.LaunchResult:
    return mailouts.launch_mailout(rt.db, rt.backend, SLUG, {}, {}, clock=clock, batch_size=25, **options)  # type: ignore[arg-type]


def status(rt: Runtime, mailout_id: int) -> mailouts.MailoutStatus:
    return mailouts.mailout_status(rt.db, mailout_id)


def test_everyone_once_in_one_request_per_batch(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock)
    assert len(queue_of(rt).batches) == 8  # 30 per locale, batches of 25: two per locale
    run_all(rt, clock)
    assert set(fake.counts().values()) == {1}
    assert len(fake.counts()) == 120
    assert fake.requests == 8
    assert status(rt, result.mailout_id).status == "finished"


def test_pause_half_way_then_resume_delivers_everyone_exactly_once(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock)
    batches = queue_of(rt).take()
    for batch in batches[:4]:
        sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batch, clock)
    mailouts.pause_mailout(rt.db, result.mailout_id)
    for batch in batches[4:]:  # tasks already on the queue find the mailout paused
        sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batch, clock)
    paused = status(rt, result.mailout_id)
    assert (paused.status, paused.counts["sent"], paused.counts["queued"]) == ("paused", 60, 60)
    mailouts.sweep(rt.db, rt.backend, clock)  # the dispatcher leaves a paused mailout alone
    assert queue_of(rt).batches == []
    mailouts.resume_mailout(rt.db, rt.backend, result.mailout_id, clock, batch_size=25)
    run_all(rt, clock)
    assert len(fake.counts()) == 120
    assert set(fake.counts().values()) == {1}
    assert status(rt, result.mailout_id).status == "finished"


def test_rate_limits_and_outages_are_retried_later(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    fake.inject(Fault(status=429, headers={"X-RateLimit-Reset": "0"}), Fault(status=503), Fault(status=429))
    result = launch(rt, clock)
    run_all(rt, clock)
    waiting = status(rt, result.mailout_id)
    # Batches of 25 and 5 per locale: the first three requests (25 + 5 + 25 recipients) were refused.
    assert (waiting.counts["sent"], waiting.counts["queued"], waiting.status) == (65, 55, "running")
    mailouts.sweep(rt.db, rt.backend, clock)
    assert queue_of(rt).batches == []  # not due yet
    clock.advance(hours=2)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    assert set(fake.counts().values()) == {1}
    assert len(fake.counts()) == 120
    assert status(rt, result.mailout_id).status == "finished"


def test_ambiguous_answers_are_marked_unknown_and_never_resent(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    fake.inject(
        Fault(status=500, accept=True), Fault(status=502, accept=False), Fault(drop=True, accept=True)
    )
    result = launch(rt, clock)
    run_all(rt, clock)
    clock.advance(hours=3)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    final = status(rt, result.mailout_id)
    assert (final.counts["unknown"], final.counts["sent"]) == (55, 65)  # requests of 25, 5 and 25
    assert max(fake.counts().values()) == 1  # nobody twice
    assert len(fake.counts()) == 120 - 5  # the 502 batch was not taken, and is not sent again either


def test_refused_key_pauses_the_mailout_and_says_why(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    fake.api_key = "SG.rotated"
    result = launch(rt, clock)
    run_all(rt, clock)
    stopped = status(rt, result.mailout_id)
    assert stopped.status == "paused"
    assert "refused the API key" in MailerError.from_json(stopped.status_reason or "").render()
    assert stopped.counts["queued"] == 120
    assert fake.counts() == {}


def test_no_provider_call_after_cancel(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock)
    batches = queue_of(rt).take()
    sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batches[0], clock)
    requests = fake.requests
    cancelled = mailouts.cancel_mailout(rt.db, result.mailout_id, clock)
    for batch in batches[1:]:
        sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batch, clock)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    assert fake.requests == requests
    final = status(rt, result.mailout_id)
    assert (final.status, final.counts["sent"], final.counts["cancelled"], cancelled) == (
        "cancelled",
        25,
        95,
        95,
    )
    with pytest.raises(MailoutError, match="cancelled"):
        launch(rt, clock)


def test_sweeper_settles_what_a_dead_worker_left(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock)
    batches = queue_of(rt).take()
    first, second = batches[0], batches[2]  # 25 messages each
    with rt.db.session() as session:  # a worker claimed two batches, called the provider for one, then died
        repo.claim_messages(session, first + second, clock())
        repo.mark_provider_called(session, second, clock())
    clock.advance(minutes=5)
    assert mailouts.sweep(rt.db, rt.backend, clock).requeued == 0  # the lease has not run out
    clock.advance(minutes=20)
    report = mailouts.sweep(rt.db, rt.backend, clock)
    assert (report.requeued, report.unknown) == (25, 25)
    run_all(rt, clock)
    final = status(rt, result.mailout_id)
    assert (final.counts["sent"], final.counts["unknown"], final.status) == (95, 25, "finished")
    assert max(fake.counts().values()) == 1


def test_lost_tasks_are_queued_again(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock)
    queue_of(rt).take()  # Redis restarted without persistence: the tasks are gone
    clock.advance(minutes=1)
    mailouts.sweep(rt.db, rt.backend, clock)
    assert queue_of(rt).batches == []  # too early to call them lost
    clock.advance(minutes=15)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    assert len(fake.counts()) == 120
    assert status(rt, result.mailout_id).status == "finished"


def test_scheduled_mailout_starts_when_due(rt: Runtime, fake: FakeSendGrid) -> None:
    clock = Clock()
    result = launch(rt, clock, at=clock.now + dt.timedelta(hours=1))
    assert (result.status, result.queued_batches) == ("scheduled", 0)
    assert status(rt, result.mailout_id).counts["queued"] == 120
    mailouts.sweep(rt.db, rt.backend, clock)
    assert queue_of(rt).batches == []
    clock.advance(hours=1)
    report = mailouts.sweep(rt.db, rt.backend, clock)
    assert report.started == [result.mailout_id]
    run_all(rt, clock)
    assert len(fake.counts()) == 120


def test_dry_run_counts_and_creates_nothing(rt: Runtime) -> None:
    plan = mailouts.plan_mailout(rt.db, SLUG, {"locale": ["ar", "kmr"]}, {})
    assert (plan.recipients, plan.total, plan.existing_mailout) == ({"ar": 30, "kmr": 30}, 60, None)
    with rt.db.session() as session:
        assert repo.find_mailout(session, 1, mailouts.segment_key({"locale": ["ar", "kmr"]})) is None


def test_two_launches_at_once_one_wins(rt: Runtime) -> None:
    results: list[mailouts.LaunchResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        try:
            barrier.wait()
            results.append(mailouts.launch_mailout(rt.db, Queue(), SLUG, {}, {}, batch_size=25))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].mailout_id == results[1].mailout_id
    assert sum(r.new_messages for r in results) == 120


def poison_one_supporter(rt: Runtime, address: str = "علي@example.net") -> str:
    """An address the ingress checks refuse today, as an older version stored it: composing its alert raises."""
    with rt.db.session() as session:
        supporter = next(iter(repo.get_supporters(session, [1]).values()))
        supporter.email, supporter.email_index = address, rt.vault.address_index(address)
        return supporter.locale


def test_a_message_that_cannot_be_composed_fails_alone_after_its_attempts(
    rt: Runtime, fake: FakeSendGrid
) -> None:
    """W4: the same failure on every attempt; the row gives up with its reason, its batch-mates go out."""
    clock = Clock()
    poison_one_supporter(rt)
    result = launch(rt, clock)
    run_all(rt, clock)
    first = status(rt, result.mailout_id)
    assert (first.counts["sent"], first.counts["queued"], first.counts["sending"]) == (119, 1, 0)
    for _ in range(repo.MAX_PREPARE_ATTEMPTS):
        clock.advance(hours=3)
        report = mailouts.sweep(rt.db, rt.backend, clock)
        assert report.requeued == 0  # nothing stuck in 'sending': each failure was recorded
        run_all(rt, clock)
    final = status(rt, result.mailout_id)
    assert (final.status, final.counts["sent"], final.counts["failed"]) == ("finished", 119, 1)
    with rt.db.session() as session:
        (poisoned,) = [m for m in repo.get_messages(session, list(range(1, 121))) if m.status == "failed"]
        assert poisoned.attempts == repo.MAX_PREPARE_ATTEMPTS
        assert "cannot be composed" in (poisoned.error or "")
    assert set(fake.counts().values()) == {1}
    assert len(fake.counts()) == 119


def test_a_worker_that_dies_on_a_message_every_time_gives_up_on_it(rt: Runtime, fake: FakeSendGrid) -> None:
    """W4 as a crash: the sweeper counts each dead claim; at the cap the row is failed, not requeued forever."""
    clock = Clock()
    result = launch(rt, clock)
    (victim, *_) = queue_of(rt).take()[0]
    for attempt in range(1, repo.MAX_PREPARE_ATTEMPTS + 1):
        with rt.db.session() as session:  # claimed, then the worker was killed before the provider call
            assert repo.claim_messages(session, [victim], clock()) == [victim]
        clock.advance(minutes=20)
        report = mailouts.sweep(rt.db, rt.backend, clock)
        expected = (0, 1) if attempt == repo.MAX_PREPARE_ATTEMPTS else (1, 0)
        assert (report.requeued, report.failed) == expected
        queue_of(rt).take()
    with rt.db.session() as session:
        (row,) = repo.get_messages(session, [victim])
        assert (row.status, row.attempts) == ("failed", repo.MAX_PREPARE_ATTEMPTS)
    clock.advance(minutes=20)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    final = status(rt, result.mailout_id)
    assert (final.status, final.counts["sent"], final.counts["failed"]) == ("finished", 119, 1)


def test_a_reload_during_a_mailout_changes_nothing_it_sends(
    rt: Runtime, fake: FakeSendGrid, tmp_path: Path
) -> None:
    """A mailout sends its alert as it was at launch, even when the campaign loses a language meanwhile."""
    clock = Clock()
    result = launch(rt, clock)
    batches = queue_of(rt).take()
    sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batches[0], clock)
    subjects_before = {d.subject for d in fake.delivered}
    folder = tmp_path / "campaign"
    shutil.copytree(demo_dir() / "campaigns" / SLUG, folder)
    for path in folder.glob("alert.*.md"):
        path.write_text(
            path.read_text(encoding="utf-8").replace('subject: "', 'subject: "CHANGED ', 1), "utf-8"
        )
    (folder / "alert.kmr.md").unlink()
    (folder / "letter.kmr.md").unlink()
    manifest = yaml.safe_load((folder / "campaign.yaml").read_text(encoding="utf-8"))
    manifest["locales"] = [c for c in manifest["locales"] if c != "kmr"]
    manifest["title"].pop("kmr")
    manifest["translations"].pop("kmr")
    (folder / "campaign.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    campaigns.load_campaign(rt.db, folder)
    for batch in batches[1:]:
        sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, batch, clock)
    final = status(rt, result.mailout_id)
    assert (final.status, final.counts["sent"]) == ("finished", 120)
    assert not any("CHANGED" in d.subject for d in fake.delivered)
    assert len({d.subject for d in fake.delivered}) == 4  # one subject per language, as launched
    assert subjects_before <= {d.subject for d in fake.delivered}


def test_accepted_without_any_event_is_unconfirmed_never_delivered(rt: Runtime, fake: FakeSendGrid) -> None:
    """P10: SendGrid took every message (202) and no webhook ever came."""
    clock = Clock()
    result = launch(rt, clock)
    run_all(rt, clock)
    soon = events.mailout_report(rt.db, result.mailout_id, now=clock.now + dt.timedelta(hours=1))
    assert (soon["total"]["sent"], soon["total"]["unconfirmed"], soon["total"]["delivered"]) == (120, 0, 0)
    later = events.mailout_report(rt.db, result.mailout_id, now=clock.now + dt.timedelta(hours=25))
    assert (later["total"]["sent"], later["total"]["unconfirmed"], later["total"]["delivered"]) == (
        120,
        120,
        0,
    )
    assert later["locales"]["ar"]["unconfirmed"] == 30


def test_an_outage_that_never_ends_gives_up_with_the_reason(rt: Runtime, fake: FakeSendGrid) -> None:
    """P2: 503 on every attempt: backoff, then 'failed' after the cap with SendGrid's answer; nothing sent."""
    clock = Clock()
    fake.inject(*[Fault(status=503) for _ in range(8 * 8)])
    result = launch(rt, clock)
    for _ in range(sending.MAX_ATTEMPTS):
        run_all(rt, clock)
        clock.advance(hours=2)  # past any backoff
        mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    final = status(rt, result.mailout_id)
    assert (final.status, final.counts["failed"], final.counts["sent"]) == ("finished", 120, 0)
    with rt.db.session() as session:
        (row, *_) = repo.get_messages(session, [1])
        assert row.attempts == sending.MAX_ATTEMPTS
        assert "gave up after 8 attempts: SendGrid HTTP 503" in (row.error or "")
    assert fake.counts() == {}


def test_a_batch_delivered_again_while_it_still_runs_sends_once(rt: Runtime, fake: FakeSendGrid) -> None:
    """W9: a slow provider outlives the broker's visibility timeout; the redelivered task finds every row
    claimed under an unexpired lease and does nothing."""
    clock = Clock()
    fake.inject(Fault(status=202, delay=1.0, accept=True))
    launch(rt, clock)
    (first, *_) = queue_of(rt).take()
    outcomes: list[sending.BatchResult] = []

    def deliver() -> None:
        outcomes.append(
            sending.send_batch(rt.db, rt.transport, rt.composers, rt.compose_context, first, clock)
        )

    slow = threading.Thread(target=deliver)
    slow.start()
    deadline = time.monotonic() + 30
    while fake.requests == 0 and time.monotonic() < deadline:  # the first delivery is with the provider
        time.sleep(0.01)
    deliver()  # the same task, delivered again
    slow.join()
    assert sorted(o.claimed for o in outcomes) == [0, 25]
    assert set(fake.counts().values()) == {1}
    assert len(fake.counts()) == 25


def test_a_rate_limit_holds_every_worker_until_the_reset(rt: Runtime, fake: FakeSendGrid) -> None:
    """P1: SendGrid answers 429 with X-RateLimit-Reset; no worker calls it again before the reset, the
    mailout shows it is throttled, and afterwards everyone gets the alert once."""
    clock = Clock()
    fake.inject(Fault(status=429, headers={"X-RateLimit-Reset": str(int(time.time()) + 600)}))
    result = launch(rt, clock)
    run_all(rt, clock)  # eight batches: the first is refused, the seven others wait without calling
    assert fake.requests == 1
    throttled = mailouts.mailout_status(rt.db, result.mailout_id, clock)
    assert throttled.counts["queued"] == 120
    assert throttled.throttled_until is not None
    assert (
        clock.now + dt.timedelta(minutes=9)
        < throttled.throttled_until
        <= clock.now + dt.timedelta(minutes=11)
    )
    with rt.db.session() as session:  # waiting is not an attempt
        attempts = [m.attempts for m in repo.get_messages(session, list(range(1, 121)))]
        assert (attempts.count(1), attempts.count(0)) == (25, 95)  # only the refused batch tried
    clock.advance(minutes=5)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    assert fake.requests == 1  # still before the reset
    clock.advance(minutes=30)
    mailouts.sweep(rt.db, rt.backend, clock)
    run_all(rt, clock)
    final = mailouts.mailout_status(rt.db, result.mailout_id, clock)
    assert (final.status, final.counts["sent"], final.throttled_until) == ("finished", 120, None)
    assert set(fake.counts().values()) == {1}
