"""Mailouts: launching a campaign's alert to a segment, coordinator controls, dispatch and progress.

The ledger is the truth. Launch writes one message row per supporter (UNIQUE idempotency key, so a second
launch adds nothing), in keyset pages with a checkpoint on the mailout, and only after the commit queues
batches of ids (one locale per batch). The dispatcher queues what is due (scheduled starts, retries whose
time has come, tasks lost with a Redis restart); the sweeper settles rows that a dead worker left behind.
Sending itself is in :mod:`mailer.sending`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mailer.errors import N_, LocaleError, MailerError, MailoutError
from mailer.fields import normal_tag
from mailer.governorates import find_governorate
from mailer.locales import LOCALE_CODES, get_locale
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Campaign, Mailout
from mailer.tasking import BULK_QUEUE, QueueUnavailable, TaskBackend

Clock = Callable[[], dt.datetime]
MESSAGE_STATES = ("queued", "sending", "sent", "failed", "unknown", "suppressed", "cancelled")
MAILOUT_STATES = ("draft", "scheduled", "running", "paused", "finished", "cancelled")
SEGMENT_KEYS = ("locale", "governorate", "tag")
PAGE_SIZE = 5000
#: A launch that adds this many ledger rows refreshes the database's statistics of the ledger.
ANALYZE_AFTER = 10_000
#: Ledger rows per task: SendGrid's 1000 personalizations per request, so a batch is one request.
BATCH_SIZE = 1000


@dataclass(frozen=True)
class Timing:
    """How long the ledger waits: see MAILER_CLAIM_LEASE_SECONDS and MAILER_REDISPATCH_SECONDS."""

    #: A claim older than this belongs to a dead worker (a batch takes seconds; Redis redelivers after an hour).
    claim_lease: dt.timedelta = dt.timedelta(minutes=15)
    #: A queued task not picked up within this time is presumed lost (a Redis restart) and queued again.
    redispatch_after: dt.timedelta = dt.timedelta(minutes=10)


DEFAULT_TIMING = Timing()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def segment_key(segment: Mapping[str, Sequence[str]]) -> str:
    return json.dumps(segment, sort_keys=True, separators=(",", ":"))


def parse_segment(options: Sequence[str]) -> dict[str, list[str]]:
    """``["locale=ar", "governorate=Basra"]`` to a normalised segment; repeated keys widen, keys narrow."""
    segment: dict[str, list[str]] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise MailoutError(
                N_("--segment '%(option)s': write KEY=VALUE, such as locale=ar or governorate=Basra"),
                option=option,
            )
        if key not in SEGMENT_KEYS:
            raise MailoutError(
                N_("--segment '%(option)s': unknown key '%(key)s' (known: %(known)s)"),
                option=option,
                key=key,
                known=", ".join(SEGMENT_KEYS),
            )
        if key == "locale":
            try:
                value = get_locale(value).code
            except LocaleError as err:
                raise MailoutError(
                    N_("--segment '%(option)s': %(reason)s"), option=option, reason=err
                ) from err
        elif key == "tag":
            tag = normal_tag(value)
            if tag is None:
                raise MailoutError(
                    N_("--segment '%(option)s': a tag holds only letters, digits, - and _"), option=option
                )
            value = tag
        else:
            found = find_governorate(value)
            if found is None:
                raise MailoutError(
                    N_("--segment '%(option)s': unknown governorate '%(value)s'"), option=option, value=value
                )
            value = found
        if value not in segment.setdefault(key, []):
            segment[key].append(value)
    return {key: sorted(values) for key, values in sorted(segment.items())}


def parse_fallbacks(options: Sequence[str]) -> dict[str, str]:
    """``["ckb=en"]``: send supporters of the first locale the content of the second. Never implied."""
    fallbacks: dict[str, str] = {}
    for option in options:
        source, sep, target = option.partition("=")
        try:
            if not sep:
                raise LocaleError(N_("write FROM=TO, such as ckb=en"))
            fallbacks[get_locale(source).code] = get_locale(target).code
        except LocaleError as err:
            raise MailoutError(N_("--fallback '%(option)s': %(reason)s"), option=option, reason=err) from err
    return fallbacks


def _content_plan(
    campaign: Campaign, present: set[tuple[str, str]], needed: Sequence[str], fallbacks: Mapping[str, str]
) -> dict[str, str]:
    """Which content locale each supporter locale receives; refuses when one has none."""

    def usable(code: str) -> bool:
        return code in campaign.locales and ("alert", code) in present and code in campaign.title

    plan: dict[str, str] = {}
    missing: list[str] = []
    for code in needed:
        if code in fallbacks:
            target = fallbacks[code]
            if not usable(target):
                raise MailoutError(
                    N_("--fallback %(source)s=%(target)s: the campaign has no complete alert in %(target)s"),
                    source=code,
                    target=target,
                )
            plan[code] = target
        elif usable(code):
            plan[code] = code
        else:
            missing.append(code)
    if missing:
        hint = " ".join(f"--fallback {code}={campaign.default_locale}" for code in missing)
        raise MailoutError(
            N_(
                "campaign %(slug)s has no complete alert in %(codes)s, and the segment has supporters who "
                "read it; add the translation, or say what to send them instead: %(hint)s"
            ),
            slug=campaign.slug,
            codes=", ".join(missing),
            hint=hint,
        )
    return plan


@dataclass(frozen=True)
class LaunchResult:
    mailout_id: int
    created: bool
    new_messages: int
    queued_batches: int
    content_locales: dict[str, str]
    status: str


@dataclass(frozen=True)
class LaunchPlan:
    """What a launch would do, for --dry-run: recipients per supporter locale and the content each gets."""

    campaign: str
    segment: dict[str, list[str]]
    recipients: dict[str, int]
    content_locales: dict[str, str]
    existing_mailout: int | None
    already_in_ledger: int
    # The languages this launch sends in whose translation nobody has reviewed yet (said before launching).
    draft_locales: tuple[str, ...] = ()
    # Names the manifest marks not yet confirmed by the campaign (the spelling of a person's name, say).
    unreviewed_names: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "segment": self.segment,
            "recipients": self.recipients,
            "total": self.total,
            "content_locales": self.content_locales,
            "existing_mailout": self.existing_mailout,
            "already_in_ledger": self.already_in_ledger,
            "draft_locales": list(self.draft_locales),
            "unreviewed_names": list(self.unreviewed_names),
        }


def plan_mailout(
    db: Database, slug: str, segment: Mapping[str, Sequence[str]], fallbacks: Mapping[str, str]
) -> LaunchPlan:
    """Counts per locale for a launch, and the refusal a launch would give; nothing is written."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        counts = repo.count_segment_by_locale(session, segment)
        plan = _content_plan(
            campaign,
            repo.content_kinds(session, campaign.id),
            [c for c in LOCALE_CODES if c in counts],
            fallbacks,
        )
        existing = repo.find_mailout(session, campaign.id, segment_key(segment))
        drafts = draft_locales(campaign, plan.values())
        names = campaign.manifest.get("names") or {}
        unreviewed = tuple(sorted(key for key, entry in names.items() if not entry.get("reviewed")))
        in_ledger = (
            sum(
                repo.message_counts(session, existing.id).get(c, {}).get(s, 0)
                for c in counts
                for s in MESSAGE_STATES
            )
            if existing
            else 0
        )
    return LaunchPlan(
        slug,
        {k: list(v) for k, v in segment.items()},
        counts,
        plan,
        existing.id if existing else None,
        in_ledger,
        drafts,
        unreviewed,
    )


def draft_locales(campaign: Campaign, sent_in: Iterable[str]) -> tuple[str, ...]:
    """The languages among those sent in that the campaign marks draft (machine-drafted, not reviewed)."""
    used = set(sent_in)
    return tuple(c for c in LOCALE_CODES if c in used and campaign.translation_status.get(c) == "draft")


def launch_mailout(
    db: Database,
    backend: TaskBackend,
    slug: str,
    segment: Mapping[str, Sequence[str]],
    fallbacks: Mapping[str, str],
    clock: Clock = utc_now,
    batch_size: int = BATCH_SIZE,
    at: dt.datetime | None = None,
) -> LaunchResult:
    """Create (or find) the mailout of this campaign and segment, write its ledger rows, queue what is due.

    The ledger is written page by page in the database, and each page's batches are queued as soon as it
    commits: the first alerts leave while the last rows are written. Two launches of the same mailout at
    once: the UNIQUE (campaign, segment) key lets exactly one create it; the other finds it and adds nothing
    that is already there.
    """
    key = segment_key(segment)
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        present = repo.content_kinds(session, campaign.id)
        # The same count as the dry run's: whoever would get a message, and nobody suppressed.
        needed = repo.count_segment_by_locale(session, segment)
        plan = _content_plan(campaign, present, [c for c in LOCALE_CODES if c in needed], fallbacks)
        mailout = repo.find_mailout(session, campaign.id, key)
        created = False
        if mailout is None:
            fresh = Mailout(
                campaign_id=campaign.id,
                segment=dict(segment),
                segment_key=key,
                fallbacks=dict(fallbacks),
                status="draft",
                created_at=clock(),
                checkpoint=0,
            )
            mailout = repo.create_mailout(session, fresh)
            created = mailout is not None
            mailout = mailout or repo.find_mailout(session, campaign.id, key)
        if mailout is None:  # pragma: no cover - the unique key guarantees one exists
            raise MailoutError(N_("the mailout could not be created"))
        if mailout.status == "cancelled":
            raise MailoutError(N_("mailout %(id)d of this campaign and segment was cancelled"), id=mailout.id)
        mailout_id = mailout.id
        repo.snapshot_alerts(session, mailout_id, campaign, plan.values())
        if at is not None and mailout.status == "draft":
            mailout.status, mailout.scheduled_at = "scheduled", at
        finished_at = mailout.finished_at if mailout.status == "finished" else None
        if mailout.status in ("draft", "finished"):  # a relaunch finds supporters added since
            mailout.status = "running"
            mailout.started_at = mailout.started_at or clock()
            mailout.finished_at = None
        # A new mailout listed while running has every row queued as it was written: nothing to catch up.
        complete = created and mailout.status == "running"

    new_messages, batches = enumerate_recipients(
        db, mailout_id, plan, clock, restart=True, backend=backend, batch_size=batch_size
    )

    if new_messages >= ANALYZE_AFTER:
        with db.session() as session:
            repo.refresh_ledger_statistics(session)
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        if finished_at is not None and not new_messages and mailout.status == "running":
            mailout.status, mailout.finished_at = "finished", finished_at  # nothing new: as it was
        status = mailout.status
    if status == "running" and not complete:  # retries, and rows a launch cut short left undispatched
        batches += dispatch_mailout(db, backend, mailout_id, clock, batch_size)
    with db.session() as session:
        repo.finish_mailout_if_done(session, mailout_id, clock())
        status = repo.get_mailout(session, mailout_id).status
    return LaunchResult(mailout_id, created, new_messages, batches, plan, status)


def _snapshot_plan(session: Session, mailout: Mailout) -> dict[str, str]:
    """The content plan of a launched mailout, from its snapshots: a campaign reloaded since (even
    without a language) changes nothing; readers of a language it never had get nothing from it."""
    taken = repo.snapshot_locales(session, mailout.id)
    plan = {code: mailout.fallbacks.get(code, code) for code in LOCALE_CODES}
    return {code: content for code, content in plan.items() if content in taken}


def enumerate_recipients(
    db: Database,
    mailout_id: int,
    plan: Mapping[str, str],
    clock: Clock,
    restart: bool,
    backend: TaskBackend | None = None,
    batch_size: int = BATCH_SIZE,
) -> tuple[int, int]:
    """Write the ledger rows of a mailout, one keyset page per transaction, moving the checkpoint; when
    the mailout runs and a backend is given, queue each page's rows as soon as the page commits. The
    number of rows written and of batches queued.

    ``restart`` rereads the segment from the start, which finds supporters added since (rows that exist are
    skipped by their unique key); otherwise the work goes on from the checkpoint. While pages are written
    the mailout is marked as listing, so that the workers that finish its first pages never call it done.
    A broker that refuses a batch stops the queueing, not the listing: every row is written, the refusal
    is raised at the end, and the sweep queues what waits.
    """
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        segment, after_id = dict(mailout.segment), (0 if restart else mailout.checkpoint)
        dispatch = backend is not None and mailout.status == "running"
        repo.set_listing(session, mailout_id, True)
    added = batches = 0
    waiting: dict[str, list[int]] = {}  # rows written and stamped, not yet in a full batch
    refused: QueueUnavailable | None = None
    try:
        while True:  # memory stays flat however many supporters there are
            with db.session() as session:
                end, short, rows = repo.list_mailout_page(
                    session, mailout_id, segment, plan, after_id, PAGE_SIZE, clock(), dispatch and not refused
                )
            last = end is None or short
            added += len(rows)
            after_id = end or after_id
            if dispatch and backend is not None and refused is None:
                for message_id, content, _ in rows:
                    waiting.setdefault(content, []).append(message_id)
                try:  # full batches as soon as they fill; the remainders once the ledger is written
                    batches += _queue(backend, waiting, batch_size, remainders=last)
                except QueueUnavailable as err:
                    refused = err
            if last:
                break
    finally:
        with db.session() as session:
            repo.set_listing(session, mailout_id, False)
    if refused is not None:
        raise refused
    return added, batches


def _queue(
    backend: TaskBackend, waiting: dict[str, list[int]], batch_size: int, remainders: bool = True
) -> int:
    """Queue waiting ledger rows in batches of one content (one provider request each), taking them out
    of ``waiting``; a batch short of ``batch_size`` only with ``remainders``. The number of batches."""
    batches = 0
    for content in sorted(waiting):
        ids = waiting[content]
        while len(ids) >= batch_size or (ids and remainders):
            batch, ids = ids[:batch_size], ids[batch_size:]
            waiting[content] = ids  # what a refusal leaves waiting is stamped: the sweep queues it
            backend.enqueue_send_batch(batch, queue=BULK_QUEUE)
            batches += 1
    return batches


# Dispatch and sweep


def dispatch_mailout(
    db: Database,
    backend: TaskBackend,
    mailout_id: int,
    clock: Clock,
    batch_size: int,
    timing: Timing = DEFAULT_TIMING,
) -> int:
    """Queue the due messages of one running mailout in batches of one content; the number of batches."""
    now = clock()
    with db.session() as session:
        due = repo.mark_dispatched(session, mailout_id, now, now - timing.redispatch_after)
    # Queued only after the commit above, in batches of one content.
    return _queue(backend, {content: list(ids) for content, ids in due.items()}, batch_size)


@dataclass(frozen=True)
class SweepReport:
    started: list[int]
    requeued: int
    unknown: int
    failed: int
    batches: int
    finished: list[int]


def sweep(
    db: Database,
    backend: TaskBackend,
    clock: Clock = utc_now,
    batch_size: int = BATCH_SIZE,
    timing: Timing = DEFAULT_TIMING,
) -> SweepReport:
    """The periodic pass: settle expired claims, start scheduled mailouts, queue what is due."""
    now = clock()
    with db.session() as session:
        requeued, unknown, failed = repo.sweep_expired_claims(session, now - timing.claim_lease, now)
        scheduled = [
            m.id
            for m in repo.mailouts_with_status(session, ["scheduled"])
            if m.scheduled_at and m.scheduled_at <= now
        ]
        started = [i for i in scheduled if repo.set_mailout_status(session, i, ["scheduled"], "running")]
        for mailout_id in started:
            repo.get_mailout(session, mailout_id).started_at = now
        running = [m.id for m in repo.mailouts_with_status(session, ["running"])]
    batches = sum(dispatch_mailout(db, backend, i, clock, batch_size, timing) for i in running)
    finished = []
    with db.session() as session:
        for mailout_id in running:
            if repo.finish_mailout_if_done(session, mailout_id, clock()):
                finished.append(mailout_id)
    return SweepReport(started, requeued, unknown, failed, batches, finished)


# Coordinator controls


def pause_mailout(db: Database, mailout_id: int) -> None:
    """Stop handing messages over; the ones already with the provider finish."""
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        if mailout.status == "paused":
            return
        if not repo.set_mailout_status(session, mailout_id, ["running", "scheduled"], "paused"):
            raise MailoutError(
                N_("mailout %(id)d is %(status)s and cannot be paused"), id=mailout_id, status=mailout.status
            )


def resume_mailout(
    db: Database, backend: TaskBackend, mailout_id: int, clock: Clock = utc_now, batch_size: int = BATCH_SIZE
) -> int:
    """Continue a paused mailout where it stopped; the number of batches queued."""
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        if mailout.status == "running":
            return 0
        if mailout.status != "paused":
            raise MailoutError(
                N_("mailout %(id)d is %(status)s, not paused"), id=mailout_id, status=mailout.status
            )
        if mailout.scheduled_at is not None and mailout.scheduled_at > clock() and mailout.started_at is None:
            repo.set_mailout_status(session, mailout_id, ["paused"], "scheduled")  # its time has not come
            return 0
        repo.set_mailout_status(session, mailout_id, ["paused"], "running")
        # Tasks queued before the pause found nothing to claim and are gone: queue every waiting row again.
        repo.forget_dispatch(session, mailout_id)
        plan = _snapshot_plan(session, mailout)
    _, batches = enumerate_recipients(  # a launch cut short goes on
        db, mailout_id, plan, clock, restart=False, backend=backend, batch_size=batch_size
    )
    batches += dispatch_mailout(db, backend, mailout_id, clock, batch_size)
    with db.session() as session:
        repo.finish_mailout_if_done(session, mailout_id, clock())
    return batches


def cancel_mailout(db: Database, mailout_id: int, clock: Clock = utc_now, wait_seconds: float = 60.0) -> int:
    """Cancel for good: no provider call starts after this returns. The number of messages cancelled.

    Each provider call is preceded by a check, committed, that the mailout still runs; calls that passed
    that check before the cancel are waited for, so that when this returns nothing more goes out.
    """
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        if mailout.status in ("finished", "cancelled"):
            raise MailoutError(
                N_("mailout %(id)d is already %(status)s"), id=mailout_id, status=mailout.status
            )
        repo.set_mailout_status(session, mailout_id, ["draft", "scheduled", "running", "paused"], "cancelled")
    deadline = time.monotonic() + wait_seconds
    while True:
        with db.session() as session:
            in_flight = repo.in_flight_count(session, mailout_id)
        if not in_flight or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    with db.session() as session:
        return repo.cancel_queued_messages(session, mailout_id, clock())


@dataclass(frozen=True)
class MailoutStatus:
    id: int
    campaign: str
    status: str
    status_reason: str | None
    scheduled_at: dt.datetime | None
    segment: dict[str, list[str]]
    total: int
    counts: dict[str, int]
    by_locale: dict[str, dict[str, int]]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: The provider asked every worker to wait (HTTP 429) until then: the mailout is throttled, not stuck.
    throttled_until: dt.datetime | None = None

    @property
    def done(self) -> int:
        return self.total - self.counts.get("queued", 0) - self.counts.get("sending", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign": self.campaign,
            "status": self.status,
            "status_reason": MailerError.from_json(self.status_reason).render()
            if self.status_reason
            else None,
            "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None,
            "segment": self.segment,
            "total": self.total,
            "counts": self.counts,
            "by_locale": self.by_locale,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "throttled_until": self.throttled_until.isoformat() if self.throttled_until else None,
        }


def mailout_status(db: Database, mailout_id: int, clock: Clock = utc_now) -> MailoutStatus:
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        campaign = repo.get_campaign_by_id(session, mailout.campaign_id)
        by_locale = repo.message_counts(session, mailout_id)
        throttled = repo.provider_paused_until(session, clock()) if mailout.status == "running" else None
    counts = dict.fromkeys(MESSAGE_STATES, 0)
    for states in by_locale.values():
        for state, number in states.items():
            counts[state] = counts.get(state, 0) + number
    ordered = {
        code: {s: by_locale[code].get(s, 0) for s in MESSAGE_STATES}
        for code in LOCALE_CODES
        if code in by_locale
    }
    return MailoutStatus(
        id=mailout.id,
        campaign=campaign.slug,
        status=mailout.status,
        status_reason=mailout.status_reason,
        scheduled_at=mailout.scheduled_at,
        segment=mailout.segment,
        total=sum(counts.values()),
        counts=counts,
        by_locale=ordered,
        created_at=mailout.created_at,
        started_at=mailout.started_at,
        finished_at=mailout.finished_at,
        throttled_until=throttled,
    )


def sample_provider_ids(db: Database, mailout_id: int) -> dict[str, str]:
    """One sent message's provider id per locale (for the outbox: its file name)."""
    with db.session() as session:
        return repo.sample_provider_ids(session, mailout_id)


def recent_mailouts(db: Database, limit: int = 50, clock: Clock = utc_now) -> list[MailoutStatus]:
    """The newest mailouts first, each with its counts."""
    with db.session() as session:
        ids = repo.recent_mailouts(session, limit)
    return [mailout_status(db, mailout_id, clock) for mailout_id in ids]
