"""Mailouts: launching a campaign's alert to a segment, sending batches exactly once, and progress.

The ledger is the truth. Launch writes one message row per supporter (UNIQUE idempotency key, so a second
launch adds nothing) and only then queues batches of ids. A batch claims its rows with a conditional update
and commits before the transport is called, so a redelivered task finds nothing left to claim.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from mailer.errors import (
    N_,
    LocaleError,
    MailoutError,
    PermanentSendError,
    RenderError,
    TransientSendError,
)
from mailer.governorates import find_governorate, governorate_name
from mailer.locales import LOCALE_CODES, get_locale
from mailer.rendering import AlertContent, PreparedEmail, Renderer
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Campaign, Mailout, Message, Supporter
from mailer.tasking import BULK_QUEUE, TaskBackend
from mailer.tokens import TokenSigner
from mailer.transports import OutboundEmail, Transport

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
MESSAGE_STATES = ("queued", "sending", "sent", "failed", "unknown", "suppressed")
MAILOUT_STATES = ("draft", "scheduled", "running", "paused", "finished", "cancelled")
SEGMENT_KEYS = ("locale", "governorate")
PAGE_SIZE = 1000
MAX_ATTEMPTS = 8


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Launching


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


@dataclass(frozen=True)
class LaunchResult:
    mailout_id: int
    created: bool
    new_messages: int
    queued_batches: int
    content_locales: dict[str, str]


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


def launch_mailout(
    db: Database,
    backend: TaskBackend,
    slug: str,
    segment: Mapping[str, Sequence[str]],
    fallbacks: Mapping[str, str],
    clock: Clock = utc_now,
    batch_size: int = 500,
) -> LaunchResult:
    """Create (or find) the mailout of this campaign and segment, add the missing ledger rows, queue batches."""
    segment_key = json.dumps(segment, sort_keys=True, separators=(",", ":"))
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        present = repo.content_kinds(session, campaign.id)
        needed = repo.segment_locales(session, segment)
        plan = _content_plan(campaign, present, [c for c in LOCALE_CODES if c in needed], fallbacks)
        mailout = repo.find_mailout(session, campaign.id, segment_key)
        created = False
        if mailout is None:
            mailout = repo.create_mailout(
                session,
                Mailout(
                    campaign_id=campaign.id,
                    segment=dict(segment),
                    segment_key=segment_key,
                    fallbacks=dict(fallbacks),
                    status="draft",
                    created_at=clock(),
                ),
            )
            created = mailout is not None
            mailout = mailout or repo.find_mailout(session, campaign.id, segment_key)
        assert mailout is not None
        if mailout.status == "cancelled":
            raise MailoutError(N_("mailout %(id)d of this campaign and segment was cancelled"), id=mailout.id)
        mailout_id = mailout.id

    new_messages = 0
    after_id = 0
    while True:  # keyset pages: memory stays flat however many supporters there are
        with db.session() as session:
            page = repo.segment_supporters_page(session, segment, after_id, PAGE_SIZE)
            if not page:
                break
            rows = [
                {
                    "idempotency_key": f"alert:{mailout_id}:{supporter_id}",
                    "kind": "alert",
                    "mailout_id": mailout_id,
                    "supporter_id": supporter_id,
                    "locale": locale,
                    "content_locale": plan.get(locale, locale),
                    "status": "queued",
                    "attempts": 0,
                    "created_at": clock(),
                    "updated_at": clock(),
                }
                for supporter_id, locale, _tags in page
                if locale in plan
            ]
            new_messages += repo.add_messages(session, rows)
            after_id = page[-1][0]

    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        if mailout.status in ("draft", "finished") and (new_messages or mailout.status == "draft"):
            mailout.status = "running"
            mailout.started_at = mailout.started_at or clock()
            mailout.finished_at = None
        ready = repo.queued_message_ids(session, mailout_id, clock()) if mailout.status == "running" else {}
        if mailout.status == "running" and not ready:
            repo.finish_mailout_if_done(session, mailout_id, clock())

    batches = 0
    for ids in ready.values():  # one locale per batch: the alert is rendered once per batch
        for start in range(0, len(ids), batch_size):
            backend.enqueue_send_batch(ids[start : start + batch_size], queue=BULK_QUEUE)
            batches += 1
    return LaunchResult(mailout_id, created, new_messages, batches, plan)


# Sending


@dataclass(frozen=True)
class SenderIdentity:
    """Who alerts come from, and where links point."""

    from_email: str
    from_name: str
    base_url: str


@dataclass
class BatchResult:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + 1


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter, so that retries of many messages do not arrive together."""
    base = min(3600, 60 * 2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=base + random.uniform(0, base / 4))  # noqa: S311 - jitter, not security


@dataclass
class _Batch:
    """The claimed rows of a batch and everything needed to send them, read in one transaction."""

    messages: list[Message]
    supporters: dict[int, Supporter]
    suppressed: set[str]
    campaigns: dict[int, Campaign]  # by mailout id
    stopped: set[int]  # mailouts paused or cancelled since the batch was queued
    prepared: dict[tuple[int, str], PreparedEmail]  # by (mailout id, content locale)


def _load_batch(session: Session, claimed: Sequence[int], renderer: Renderer, today: dt.date) -> _Batch:
    messages = repo.get_messages(session, claimed)
    supporters = repo.get_supporters(session, [m.supporter_id for m in messages if m.supporter_id])
    suppressed = repo.suppressed_keys(session, [s.email_key for s in supporters.values()], "supporter")
    mailouts = [repo.get_mailout(session, i) for i in {m.mailout_id for m in messages} if i]
    campaigns = {mo.id: repo.get_campaign_by_id(session, mo.campaign_id) for mo in mailouts}
    stopped = {mo.id for mo in mailouts if mo.status != "running"}
    prepared: dict[tuple[int, str], PreparedEmail] = {}
    for mailout_id, code in {(m.mailout_id or 0, m.content_locale) for m in messages}:
        if mailout_id in stopped:
            continue
        campaign = campaigns[mailout_id]
        content = repo.get_content(session, campaign.id, "alert", code)
        title = campaign.title.get(code, campaign.title[campaign.default_locale])
        alert = AlertContent(title, content.subject, content.preheader, content.body)
        prepared[(mailout_id, code)] = renderer.render_alert(alert, code, today)
    return _Batch(messages, supporters, suppressed, campaigns, stopped, prepared)


@dataclass(frozen=True)
class _Outcome:
    status: str
    values: dict[str, Any] = field(default_factory=dict)


def _deliver(transport: Transport, email: OutboundEmail, attempts: int, now: dt.datetime) -> _Outcome:
    """Hand one message to the transport and say what the ledger should record."""
    try:
        provider_id = transport.send(email)
    except TransientSendError as err:
        if attempts >= MAX_ATTEMPTS:
            return _Outcome("failed", {"error": f"gave up after {attempts} attempts: {err}"})
        return _Outcome("queued", {"error": str(err), "not_before": now + retry_delay(attempts)})
    except PermanentSendError as err:
        return _Outcome("failed", {"error": str(err)})
    return _Outcome("sent", {"provider_message_id": provider_id, "sent_at": now, "error": None})


def send_batch(
    db: Database,
    transport: Transport,
    renderer: Renderer,
    signer: TokenSigner,
    sender: SenderIdentity,
    message_ids: Sequence[int],
    clock: Clock = utc_now,
) -> BatchResult:
    """Send the alert messages of a batch that this call can claim; each outcome is committed at once."""
    result = BatchResult()
    with db.session() as session:
        claimed = repo.claim_messages(session, message_ids, clock())
    result.claimed = len(claimed)
    if not claimed:
        return result
    with db.session() as session:
        batch = _load_batch(session, claimed, renderer, clock().date())
    try:
        for index, message in enumerate(batch.messages):
            try:
                outcome = _send_message(batch, message, transport, signer, sender, clock())
            except Exception:
                # Whether it left is unknowable: never resend it automatically. The rest were not tried.
                _record(
                    db, message.id, _Outcome("unknown", {"error": "unexpected error in the transport"}), clock
                )
                for untouched in batch.messages[index + 1 :]:
                    _record(db, untouched.id, _Outcome("queued"), clock)
                raise
            _record(db, message.id, outcome, clock)
            result.count(outcome.status)
    finally:
        transport.close()
        with db.session() as session:
            for mailout_id in batch.campaigns:
                repo.finish_mailout_if_done(session, mailout_id, clock())
    return result


def _send_message(
    batch: _Batch,
    message: Message,
    transport: Transport,
    signer: TokenSigner,
    sender: SenderIdentity,
    now: dt.datetime,
) -> _Outcome:
    mailout_id = message.mailout_id or 0
    if mailout_id in batch.stopped:
        return _Outcome("queued")  # paused or cancelled meanwhile: hand it back untouched
    supporter = batch.supporters.get(message.supporter_id or 0)
    if supporter is None or supporter.email_key in batch.suppressed:
        return _Outcome("suppressed", {"error": "suppressed at send time"})
    prepared = batch.prepared[(mailout_id, message.content_locale)]
    try:
        email = _personal_alert(
            prepared, message, supporter, batch.campaigns[mailout_id], signer, sender, now
        )
    except RenderError as err:
        return _Outcome("failed", {"error": str(err)})
    return _deliver(transport, email, message.attempts, now)


def _record(db: Database, message_id: int, outcome: _Outcome, clock: Clock) -> None:
    with db.session() as session:
        repo.finish_message(session, message_id, outcome.status, clock(), **outcome.values)


def _personal_alert(
    prepared: PreparedEmail,
    message: Message,
    supporter: Supporter,
    campaign: Campaign,
    signer: TokenSigner,
    sender: SenderIdentity,
    now: dt.datetime,
) -> OutboundEmail:
    code = prepared.locale.code
    unsubscribe_token = signer.sign("unsubscribe", {"s": supporter.id, "m": message.id})
    action_token = signer.sign("action", {"s": supporter.id, "c": campaign.id})
    unsubscribe_url = f"{sender.base_url}/u/{unsubscribe_token}"
    values = {
        "first_name": supporter.name.split()[0],
        "name": supporter.name,
        "governorate": governorate_name(supporter.governorate, code) if supporter.governorate else "",
        "action_url": f"{sender.base_url}/{code}/{campaign.slug}?t={action_token}",
        "unsubscribe_url": unsubscribe_url,
    }
    rendered = prepared.personalise(values)
    domain = sender.from_email.rpartition("@")[2]
    mailto = f"mailto:{sender.from_email}?subject={quote('unsubscribe ' + unsubscribe_token)}"
    return OutboundEmail(
        ledger_id=message.id,
        kind=message.kind,
        message_id=f"<{message.kind}.{message.id}.{secrets.token_hex(6)}@{domain}>",
        sender=Address(display_name=sender.from_name, addr_spec=sender.from_email),
        recipient=Address(display_name=supporter.name, addr_spec=supporter.email),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        locale=code,
        date=now,
        headers={
            # RFC 8058 one-click unsubscribe, which Gmail and Yahoo require of bulk senders.
            "List-Unsubscribe": f"<{unsubscribe_url}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"<{campaign.slug}.{domain}>",
        },
    )


# Progress


@dataclass(frozen=True)
class MailoutStatus:
    id: int
    campaign: str
    status: str
    segment: dict[str, list[str]]
    total: int
    counts: dict[str, int]
    by_locale: dict[str, dict[str, int]]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def done(self) -> int:
        return self.total - self.counts.get("queued", 0) - self.counts.get("sending", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign": self.campaign,
            "status": self.status,
            "segment": self.segment,
            "total": self.total,
            "counts": self.counts,
            "by_locale": self.by_locale,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def mailout_status(db: Database, mailout_id: int) -> MailoutStatus:
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        campaign = repo.get_campaign_by_id(session, mailout.campaign_id)
        by_locale = repo.message_counts(session, mailout_id)
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
        segment=mailout.segment,
        total=sum(counts.values()),
        counts=counts,
        by_locale=ordered,
        created_at=mailout.created_at,
        started_at=mailout.started_at,
        finished_at=mailout.finished_at,
    )


def sample_provider_ids(db: Database, mailout_id: int) -> dict[str, str]:
    """One sent message's provider id per locale (for the outbox: its file name)."""
    with db.session() as session:
        return repo.sample_provider_ids(session, mailout_id)
