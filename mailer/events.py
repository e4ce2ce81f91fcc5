"""Deliverability: SendGrid's signed event webhook, suppressions with their reasons, unsubscribes.

Events arrive in batches that SendGrid signs, retries and sometimes duplicates (retries have been seen to
change ``sg_event_id``). Each is verified over the raw body, stored once (unique on a hash of what the event
says, never on ``sg_event_id``), kept raw for audit, and applied through one table of names and one of
precedence: a bounce is not undone by a later "delivered". Events name our ledger row through the
``custom_args`` we sent; events for messages we never sent are kept and change nothing.

Applying is its own step with its own record (``applied_at``, claimed with a conditional UPDATE in the
transaction of the effects): the webhook queues it, and the periodic sweep applies whatever a lost task
left behind, so a Redis restart never loses a bounce or a complaint, and no event is applied twice.
"""

from __future__ import annotations

import binascii
import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.errors import N_, ConfigError, MailerError
from mailer.locales import LOCALE_CODES
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Message, Supporter
from mailer.tokens import InvalidToken, TokenSigner
from mailer.transports.sendgrid import LEDGER_ARG
from mailer.vault import Vault

Clock = Callable[[], dt.datetime]

#: SendGrid's event names, and ours.
EVENT_NAMES = {
    "processed": "processed",
    "deferred": "deferred",
    "delivered": "delivered",
    "dropped": "dropped",
    "bounce": "bounced",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "group_unsubscribed",
    "group_resubscribe": "group_resubscribed",
    "open": "opened",
    "click": "clicked",
}
#: Delivery states by strength: a message's state only ever moves up.
DELIVERY_RANK = {"processed": 1, "deferred": 2, "delivered": 3, "dropped": 4, "bounced": 4, "complained": 5}
#: Events that stop further mail to the address, and the reason recorded.
SUPPRESSING = {
    "bounced": "hard_bounce",
    "complained": "complaint",
    "unsubscribed": "unsubscribe",
    "group_unsubscribed": "group_unsubscribe",
}
#: SendGrid drops mail to addresses on its own suppression lists and says which in ``reason``; those
#: addresses are suppressed here too. Other drops (content, size, a malformed request) say nothing about
#: the address and suppress nothing.
DROP_REASONS = {
    "bounced address": "hard_bounce",
    "unsubscribed address": "unsubscribe",
    "spam reporting address": "complaint",
    "invalid": "hard_bounce",
}
SUPPRESSION_REASONS = ("unsubscribe", "hard_bounce", "complaint", "group_unsubscribe", "manual")
SCOPES = ("supporter", "target")
COMPLAINT_RATE_LIMIT = 0.001  # Gmail and Yahoo expect bulk senders under 0.3%; we stop at 0.1%
MIN_COMPLAINTS_TO_PAUSE = 3
#: SendGrid retries its webhook for 24 hours: a message accepted longer ago with no event is unconfirmed.
UNCONFIRMED_AFTER = dt.timedelta(hours=24)
MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
#: The sweep leaves events this young to the task the webhook queued, so the two rarely meet.
APPLY_GRACE = dt.timedelta(seconds=60)
#: Events applied per transaction by the sweep.
SWEEP_EVENTS = 1000


class WebhookRejected(MailerError):
    """The request is not a genuine, fresh SendGrid event batch: answer 403 and store nothing."""


class WebhookVerifier:
    """Checks the ECDSA signature over timestamp + raw body, and the timestamp's age."""

    def __init__(self, public_key: str, max_age: int) -> None:
        # Only the web process verifies: the package is not loaded into every worker (20 MB).
        from sendgrid.helpers.eventwebhook import EventWebhook

        try:
            self._webhook = EventWebhook(public_key)
        except ValueError as err:
            raise ConfigError(N_("MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid public key")) from err
        self.max_age = max_age

    def verify(
        self, raw: bytes, signature: str | None, timestamp: str | None, now: dt.datetime
    ) -> list[dict[str, Any]]:
        """The events of a verified batch; :class:`WebhookRejected` otherwise."""
        if not signature or not timestamp:
            raise WebhookRejected(N_("the signature headers are missing"))
        try:
            # The signature covers the raw bytes exactly: decode, never re-serialise.
            valid = self._webhook.verify_signature(raw.decode("utf-8"), signature, timestamp)
        except (UnicodeDecodeError, binascii.Error, ValueError, InvalidSignature):
            valid = False
        if not valid:
            raise WebhookRejected(N_("the signature does not match"))
        if self.max_age:
            try:
                age = now.timestamp() - int(timestamp)
            except ValueError as err:
                raise WebhookRejected(N_("the timestamp is not a number")) from err
            if abs(age) > self.max_age:
                raise WebhookRejected(N_("the request is too old"))
        try:
            events = json.loads(raw)
        except ValueError as err:
            raise WebhookRejected(N_("the body is not JSON")) from err
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise WebhookRejected(N_("the body is not a list of events"))
        return events


#: The fields that say what happened; ``sg_event_id`` is left out on purpose (retries have changed it).
DEDUPE_FIELDS = ("sg_message_id", "event", "timestamp", "email", "url", "asm_group_id", LEDGER_ARG)


def dedupe_key(vault: Vault, event: dict[str, Any]) -> str:
    """What the event says (message, type, time, address, link, our ledger row), as a blind index: a
    retry that changed ``sg_event_id`` gets the same key, and nobody without the key can test a guess."""
    parts = {name: "" if event.get(name) is None else str(event[name]) for name in DEDUPE_FIELDS}
    parts["email"] = parts["email"].strip().lower()
    basis = json.dumps(parts, sort_keys=True)  # JSON, so that no value can pass for a separator
    return "h:" + vault.index(basis, "event")


#: What a provider's event keeps after the retention period: what happened, when, to which message. The
#: address, IP, user agent, link, and the provider's free text (which may quote the address) go.
REPORTED_FIELDS = (
    "event",
    "timestamp",
    "type",
    "bounce_classification",
    "sg_event_id",
    "sg_message_id",
    "category",
    "asm_group_id",
    LEDGER_ARG,
)


def scrubbed(payload: dict[str, Any]) -> dict[str, Any]:
    return {name: payload[name] for name in REPORTED_FIELDS if name in payload}


def _ledger_id(event: dict[str, Any]) -> int | None:
    try:
        return int(event.get(LEDGER_ARG) or 0) or None
    except (TypeError, ValueError):
        return None


def store_events(db: Database, events: Sequence[dict[str, Any]], now: dt.datetime) -> list[int]:
    """Keep each event once, raw; the ids of the new ones (a replayed batch yields none)."""
    rows: list[dict[str, Any]] = []
    for event in events:
        name = EVENT_NAMES.get(str(event.get("event")), str(event.get("event"))[:30])
        try:
            occurred = dt.datetime.fromtimestamp(int(event.get("timestamp") or 0), dt.UTC)
        except (TypeError, ValueError, OverflowError):
            occurred = now
        rows.append(
            {
                "provider": "sendgrid",
                "dedupe_key": dedupe_key(db.vault, event),
                "message_id": _ledger_id(event),
                "event_type": name,
                "occurred_at": occurred,
                "received_at": now,
                "suppress_reason": suppression_reason(name, event),
                "payload": event,
            }
        )
    with db.session() as session:
        known = repo.existing_message_ids(session, [r["message_id"] for r in rows if r["message_id"]])
        for row in rows:  # events for messages we never sent are kept, unattached
            if row["message_id"] not in known:
                row["message_id"] = None
        return repo.add_events(session, rows)


@dataclass
class Applied:
    events: int = 0
    state_changes: int = 0
    resolved_unknown: int = 0
    suppressions: int = 0
    paused_mailouts: list[int] = field(default_factory=list)

    def add(self, other: Applied) -> None:
        self.events += other.events
        self.state_changes += other.state_changes
        self.resolved_unknown += other.resolved_unknown
        self.suppressions += other.suppressions
        self.paused_mailouts.extend(other.paused_mailouts)


def apply_events(db: Database, event_ids: Sequence[int], now: dt.datetime) -> Applied:
    """Apply stored events in the order they happened: delivery state, unknown rows, suppressions.

    Events are claimed (``applied_at``) in the transaction of their effects: an event applied before, or
    by a racing task, is skipped; a failure rolls back both, and the sweep tries again later.
    """
    applied = Applied()
    touched: set[int] = set()
    with db.session() as session:
        claimed = repo.events_in_order(session, repo.claim_events(session, event_ids, now))
        messages = repo.messages_by_id(session, {e.message_id for e in claimed if e.message_id})
        for event in claimed:
            applied.events += 1
            message = messages.get(event.message_id or 0)
            if message is None:
                continue  # kept for audit; it changes nothing
            touched.add(message.mailout_id or 0)
            rank = DELIVERY_RANK.get(event.event_type)
            if rank is not None and rank > DELIVERY_RANK.get(message.delivery or "", 0):
                message.delivery, message.delivery_at = event.event_type, event.occurred_at
                applied.state_changes += 1
            if message.status == "unknown" and rank is not None:
                message.status = "sent"  # the provider had it after all
                applied.resolved_unknown += 1
            reason = event.suppress_reason
            if reason:
                applied.suppressions += repo.suppress_for_message(
                    session, message, reason, f"sendgrid:{event.id}"
                )
        for mailout_id in touched - {0}:
            if _complaint_rate_too_high(session, mailout_id) and repo.pause_mailout(
                session,
                mailout_id,
                MailerError(N_("the complaint rate passed 0.1%% of delivered messages")).to_json(),
            ):
                applied.paused_mailouts.append(mailout_id)
    return applied


def apply_unapplied_events(
    db: Database, now: dt.datetime, grace: dt.timedelta = APPLY_GRACE, chunk: int = SWEEP_EVENTS
) -> Applied:
    """Apply the events whose task never ran (lost with a Redis restart) or failed: those stored more than
    ``grace`` ago and still unapplied, a chunk per transaction. Safe beside the task and another sweep."""
    total = Applied()
    after_id = 0
    while True:
        with db.session() as session:
            ids = repo.unapplied_event_ids(session, now - grace, after_id, chunk)
        if not ids:
            return total
        total.add(apply_events(db, ids, now))
        after_id = ids[-1]


def suppression_reason(event_type: str, payload: dict[str, Any]) -> str | None:
    """Why an event stops mail to its address, or None when it does not."""
    if event_type == "bounced" and str(payload.get("type", "bounce")) != "bounce":
        return None  # a "blocked" bounce is temporary: no suppression
    if event_type == "dropped":
        return DROP_REASONS.get(str(payload.get("reason", "")).strip().lower())
    return SUPPRESSING.get(event_type)


def _complaint_rate_too_high(session: Session, mailout_id: int) -> bool:
    """Over 0.1% of what was delivered, and at least a few complaints: one reader's click on "spam" in a
    small mailout is no reason to stop it."""
    delivered, complained = repo.delivered_and_complained(session, mailout_id)
    if complained < MIN_COMPLAINTS_TO_PAUSE:
        return False
    return delivered == 0 or complained / delivered > COMPLAINT_RATE_LIMIT


# Unsubscribing


@dataclass(frozen=True)
class UnsubscribeLink:
    """What an unsubscribe token names, if it is genuine."""

    supporter_id: int
    message_id: int | None
    locale: str


def read_unsubscribe_token(db: Database, signer: TokenSigner, token: str) -> UnsubscribeLink | None:
    """The supporter behind a token; None for a forged, tampered or unknown one (never an error)."""
    try:
        payload = signer.verify("unsubscribe", token)
        supporter_id = int(payload["s"])
        message_id = int(payload["m"]) if payload.get("m") else None
    except (InvalidToken, KeyError, TypeError, ValueError):
        return None
    with db.session() as session:
        locale = session.scalar(select(Supporter.locale).where(Supporter.id == supporter_id))
        return UnsubscribeLink(supporter_id, message_id, locale) if locale else None


def unsubscribe(db: Database, link: UnsubscribeLink, source: str, now: dt.datetime) -> None:
    """Stop every later mailout to this supporter (idempotent), and note it against the message."""
    with db.session() as session:
        unsubscribe_supporter(session, link.supporter_id, link.message_id, source, now)


def unsubscribe_supporter(
    session: Session, supporter_id: int, message_id: int | None, source: str, now: dt.datetime
) -> int:
    """:func:`unsubscribe` in a transaction of the caller's; 1 when the suppression is new."""
    # By blind index: the unsubscribe page may run where only the public key is.
    index = session.scalar(select(Supporter.email_index).where(Supporter.id == supporter_id))
    if index is None:
        return 0
    session.execute(update(Supporter).where(Supporter.id == supporter_id).values(subscribed=False))
    added = repo.add_suppression(session, index, "supporter", "unsubscribe", source)
    if message_id and session.scalar(select(Message.id).where(Message.id == message_id)):
        repo.add_events(
            session,
            [
                {
                    "provider": "mailer",
                    "dedupe_key": f"unsubscribe:{message_id}",
                    "message_id": message_id,
                    "event_type": "unsubscribed",
                    "occurred_at": now,
                    "received_at": now,
                    "applied_at": now,  # its effect is the suppression above, in this transaction
                    "payload": {"source": source},
                }
            ],
        )
    return added


# Suppressions for coordinators


def add_suppression(db: Database, email: str, scope: str, reason: str = "manual") -> bool:
    if scope not in SCOPES:
        raise MailerError(N_("scope must be one of %(choices)s"), choices=", ".join(SCOPES))
    if reason not in SUPPRESSION_REASONS:
        raise MailerError(N_("reason must be one of %(choices)s"), choices=", ".join(SUPPRESSION_REASONS))
    index = db.vault.address_index(email)
    with db.session() as session:
        supporter = repo.supporter_by_index(session, index) if scope == "supporter" else None
        # The address is kept (encrypted) with the suppression only when no supporter holds it already.
        kept = None if supporter is not None else email.strip().lower()
        added = repo.add_suppression(session, index, scope, reason, "manual", email=kept)
        if supporter is not None:
            supporter.subscribed = False
        return bool(added)


def remove_suppression(db: Database, email: str, scope: str, reason: str | None = None) -> int:
    with db.session() as session:
        return repo.remove_suppressions(session, db.vault.address_index(email), scope, reason)


#: How an erased person's suppression is listed: only its blind index remains.
ERASED = "(erased)"


def list_suppressions(db: Database) -> list[dict[str, Any]]:
    """Every suppression with its address: kept with it, or the supporter's or official's own, or
    ERASED when only the blind index is left."""
    with db.session() as session:
        suppressions = repo.all_suppressions(session)
        supporters = repo.supporters_by_index(
            session, {s.email_index for s in suppressions if s.email is None and s.scope == "supporter"}
        )
        officials = {db.vault.address_index(t.email): t.email for t in repo.list_targets(session)}
        rows = []
        for s in suppressions:
            known = supporters.get(s.email_index)
            email = s.email or (known.email if known else None) or officials.get(s.email_index) or ERASED
            rows.append(
                {
                    "email": email,
                    "scope": s.scope,
                    "reason": s.reason,
                    "source": s.source,
                    "created_at": s.created_at.isoformat(),
                }
            )
        return rows


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet will show, not run: formulas are prefixed with an apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_suppressions_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "scope", "reason", "source", "created_at"])
    for row in rows:
        writer.writerow(
            [spreadsheet_safe(str(row[k])) for k in ("email", "scope", "reason", "source", "created_at")]
        )
    return out.getvalue()


# Results


DELIVERY_COLUMNS = (
    "queued",
    "sent",
    "unconfirmed",
    "delivered",
    "deferred",
    "bounced",
    "dropped",
    "complained",
    "unsubscribed",
    "failed",
    "unknown",
)


def mailout_report(db: Database, mailout_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Per locale: the ledger's states beside what the provider reported, for one mailout. A message the
    provider accepted long ago without a word since is "unconfirmed", never counted as delivered."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - UNCONFIRMED_AFTER
    with db.session() as session:
        mailout = repo.get_mailout(session, mailout_id)
        ledger = repo.message_counts(session, mailout_id)
        delivery = repo.delivery_counts(session, mailout_id)
        unconfirmed = repo.unconfirmed_counts(session, mailout_id, cutoff)
        unsubscribed = repo.unsubscribed_counts(session, mailout_id)
        status = mailout.status
    per_locale: dict[str, dict[str, int]] = {}
    for code in sorted(
        set(ledger) | set(delivery), key=lambda c: LOCALE_CODES.index(c) if c in LOCALE_CODES else 99
    ):
        states, reported = ledger.get(code, {}), delivery.get(code, {})
        per_locale[code] = {
            "queued": states.get("queued", 0) + states.get("sending", 0),
            "sent": states.get("sent", 0),
            "unconfirmed": unconfirmed.get(code, 0),
            "delivered": reported.get("delivered", 0),
            "deferred": reported.get("deferred", 0),
            "bounced": reported.get("bounced", 0),
            "dropped": reported.get("dropped", 0),  # SendGrid never tried: not a bounce
            "complained": reported.get("complained", 0),
            "unsubscribed": unsubscribed.get(code, 0),
            "failed": states.get("failed", 0),
            "unknown": states.get("unknown", 0),
        }
    total = {column: sum(row[column] for row in per_locale.values()) for column in DELIVERY_COLUMNS}
    return {"id": mailout_id, "status": status, "locales": per_locale, "total": total}


def campaign_report(db: Database, slug: str) -> dict[str, Any]:
    """Every mailout of a campaign, and its letters per official."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        mailout_ids = repo.mailouts_of_campaign(session, campaign.id)
        per_target = repo.letters_per_target(session, campaign.id)
    return {
        "campaign": slug,
        "mailouts": [mailout_report(db, mailout_id) for mailout_id in mailout_ids],
        "letters": {
            slug_: {
                "queued": c.get("queued", 0) + c.get("sending", 0),
                "sent": c.get("sent", 0),
                "failed": c.get("failed", 0) + c.get("suppressed", 0),
                "unknown": c.get("unknown", 0),
            }
            for slug_, c in sorted(per_target.items())
        },
    }


#: What a mailout's timeline draws, cumulatively: handed to the provider, what the provider reported, and
#: what failed or stayed unknown.
TIMELINE_SERIES = ("sent", "delivered", "deferred", "bounced", "dropped", "complained", "failed", "unknown")


def mailout_timeline(
    db: Database, mailout_id: int, step: dt.timedelta = dt.timedelta(hours=1)
) -> dict[str, Any]:
    """Cumulative counts per time step (UTC, seconds since the epoch) since the first message left:
    ``{"times": [...], "series": {"sent": [...], "delivered": [...], ...}}``."""
    with db.session() as session:
        moments = repo.message_moments(session, mailout_id)
    marks: list[tuple[dt.datetime, str]] = []
    for sent_at, delivery, delivery_at, status, changed_at in moments:
        if sent_at is not None:
            marks.append((sent_at, "sent"))
        if delivery in TIMELINE_SERIES and delivery_at is not None:
            marks.append((delivery_at, delivery))
        if status in ("failed", "unknown"):  # never handed over, or not known to have been
            marks.append((changed_at, status))
    if not marks:
        return {"times": [], "series": {name: [] for name in TIMELINE_SERIES}}
    marks.sort()
    seconds = int(step.total_seconds())
    first = int(marks[0][0].timestamp()) // seconds * seconds - seconds  # starts from nothing sent
    last = int(marks[-1][0].timestamp()) // seconds * seconds
    times = list(range(first, last + seconds, seconds))[:2000]  # a long tail is cut, never the memory
    series = {name: [0] * len(times) for name in TIMELINE_SERIES}
    for moment, name in marks:
        slot = min((int(moment.timestamp()) - first) // seconds, len(times) - 1)
        series[name][slot] += 1
    for values in series.values():
        for i in range(1, len(values)):
            values[i] += values[i - 1]
    return {"times": times, "series": series}
