"""The ledger's send step: claim rows, hand them to a transport in chunks, record every outcome.

Exactly once, given at-least-once task delivery and a provider without idempotency keys:

1. claim: ``queued`` -> ``sending`` with a conditional update, committed; rows another worker (or an
   earlier delivery of the same task) claimed are skipped;
2. before each provider call, mark the chunk ``provider_called_at`` (again conditional on the mailout
   still running), committed; a cancel committed before this point stops the call;
3. record each delivery: ``sent``; ``queued`` again with a later ``not_before`` (transient); ``failed``
   (permanent); ``unknown`` (the provider may have it: never re-sent automatically).

A worker that dies leaves rows ``sending``; the sweeper re-queues those whose provider was never called
and marks the others ``unknown``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from mailer.governorates import governorate_name
from mailer.rendering import AlertContent, PreparedEmail, Renderer
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Campaign
from mailer.store.repository import AlertRecipient, Claimed
from mailer.tokens import AddressTags, TokenSigner
from mailer.transports import BulkEmail, Delivery, Mailbox, Recipient, Transport, TransportHalted
from mailer.transports.base import ascii_addr_spec

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
MAX_ATTEMPTS = 8


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SenderIdentity:
    """Who alerts come from, and where links point."""

    from_email: str
    from_name: str
    base_url: str

    def privacy_url(self, code: str) -> str:
        """The public privacy notice in a language: every email to a supporter links to it from its footer."""
        return f"{self.base_url}/{code}/privacy"


@dataclass
class BatchResult:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, status: str, number: int = 1) -> None:
        if number:
            self.outcomes[status] = self.outcomes.get(status, 0) + number


def retry_delay(attempts: int, provider_wait: float | None = None, first: float = 30.0) -> dt.timedelta:
    """Exponential backoff with jitter from ``first`` seconds, never sooner than the provider asked."""
    base = min(3600.0, first * 2 ** max(0, attempts - 1))
    delay = base + random.uniform(0, base / 4)  # noqa: S311 - jitter, not security
    return dt.timedelta(seconds=max(delay, provider_wait or 0.0))


@dataclass(frozen=True)
class ComposeContext:
    """What composers need besides the rows: rendering, signing, the sender, the time, the chunk size."""

    renderer: Renderer
    signer: TokenSigner
    sender: SenderIdentity
    now: dt.datetime
    chunk_size: int
    # Signed tags in the inbound address, when one is configured: replies, bounces and emailed
    # unsubscribes then come back to it (mailer.inbound); without one, nothing advertises an address.
    tags: AddressTags | None = None


@dataclass(frozen=True)
class Parcel:
    """Ledger rows that go out in one provider call, and the email carrying them (recipients in row order)."""

    message_ids: list[int]
    mailout_id: int | None
    email: BulkEmail

    def only(self, ids: set[int]) -> Parcel:
        """The same parcel for some of its rows."""
        keep = [i for i in self.message_ids if i in ids]
        recipients = [r for r in self.email.recipients if r.ledger_id in ids]
        return Parcel(keep, self.mailout_id, dataclasses.replace(self.email, recipients=recipients))


@dataclass
class Composed:
    """What a composer made of a kind's rows: parcels to send, rows not to send with why, and rows whose
    composing raised (tried again later, up to a cap, then failed: one bad row never holds the rest)."""

    parcels: list[Parcel] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    broken: list[tuple[int, str]] = field(default_factory=list)

    def add(self, other: Composed) -> None:
        self.parcels += other.parcels
        self.skipped += other.skipped
        self.broken += other.broken


#: Builds the parcels for the claimed rows of one kind (alert, letter, confirm, copy), inside one transaction.
Composer = Callable[[Session, list[Claimed], ComposeContext], Composed]


def compose_alerts(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """Alerts: rendered once per (mailout, content locale) for the whole batch, whatever the transport's
    chunk size, personalised per recipient, chunked."""
    composed = Composed()
    supporters = repo.alert_recipients(session, [m.supporter_id for m in messages if m.supporter_id])
    sendable = []
    for message in messages:
        supporter = supporters.get(message.supporter_id or 0)
        if supporter is None or supporter.suppressed:
            composed.skipped.append((message.id, "suppressed at send time"))
        else:
            sendable.append(message)
    for (mailout_id, code), rows in _runs(sendable):
        mailout = repo.get_mailout(session, mailout_id)
        campaign = repo.get_campaign_by_id(session, mailout.campaign_id)
        content = repo.mailout_alert(session, mailout, code)  # as it was at launch
        prepared = context.renderer.render_alert(
            AlertContent(content.title, content.subject, content.preheader, content.body),
            code,
            context.now.date(),
            privacy_url=context.sender.privacy_url(code),
        )
        links = _AlertLinks(context.signer, context.sender, campaign.slug, code, context.tags)
        recipients = []
        for message in rows:
            try:
                recipients.append(links.recipient(message, supporters[message.supporter_id or 0]))
            except Exception as err:  # one recipient's bad data never holds back the others
                composed.broken.append(_broken(message.id, err))
        for start in range(0, len(recipients), context.chunk_size):
            chunk = recipients[start : start + context.chunk_size]
            email = _bulk_alert(prepared, chunk, campaign, context.sender, context.now)
            composed.parcels.append(Parcel([r.ledger_id for r in chunk], mailout.id, email))
    return composed


def _broken(message_id: int, err: Exception) -> tuple[int, str]:
    """A row that cannot be composed, and why: the reason may quote an address, so it goes to the ledger
    row (encrypted) and the log names the row only."""
    log.error(
        "message %d cannot be composed (%s): see `mailer mailout status`", message_id, type(err).__name__
    )
    return message_id, f"cannot be composed: {type(err).__name__}: {err}"[:500]


def send_batch(
    db: Database,
    transport: Transport,
    composers: Mapping[str, Composer],
    context: ComposeContext,
    message_ids: Sequence[int],
    clock: Clock = utc_now,
    retry_base: float = 30.0,
) -> BatchResult:
    """Send the ledger rows of a batch that this call can claim, one provider call per parcel."""
    result = BatchResult()
    claimed_at = clock()  # the claim's stamp: every later write of this call is conditional on it
    with db.session() as session:
        messages = repo.claim_rows(session, message_ids, claimed_at)
    result.claimed = len(messages)
    if not messages:
        return result
    # Committed before composing: a row that kills its worker while being composed counts its attempts.
    context = dataclasses.replace(context, now=clock(), chunk_size=transport.chunk_size)
    attempts = {m.id: m.attempts for m in messages}
    with db.session() as session:
        composed = Composed()
        for kind, group in itertools.groupby(sorted(messages, key=lambda m: m.kind), key=lambda m: m.kind):
            rows = list(group)
            if kind not in composers:
                composed.skipped += [(m.id, f"nothing composes messages of kind {kind}") for m in rows]
                continue
            composed.add(_compose_isolated(session, composers[kind], rows, context))
    mailout_ids = {m.mailout_id for m in messages if m.mailout_id}
    _BatchRun(db, transport, clock, retry_base, composed, mailout_ids, result, attempts, claimed_at).run()
    return result


def _compose_isolated(
    session: Session, composer: Composer, rows: list[Claimed], context: ComposeContext
) -> Composed:
    """Compose a kind's rows together; when that raises, each row alone, so that the row that cannot be
    composed (a broken address, content gone) is set apart and its batch-mates go out."""
    try:
        with session.begin_nested():
            return composer(session, rows, context)
    except Exception:  # any failure of one row must not stop the others
        log.warning("composing %d %s messages failed; composing them one by one", len(rows), rows[0].kind)
    composed = Composed()
    for row in rows:
        try:
            with session.begin_nested():
                composed.add(composer(session, [row], context))
        except Exception as err:
            composed.broken.append(_broken(row.id, err))
    return composed


@dataclass
class _BatchRun:
    db: Database
    transport: Transport
    clock: Clock
    retry_base: float
    composed: Composed
    mailout_ids: set[int]
    result: BatchResult
    attempts: dict[int, int]
    #: The claim's stamp. A sweeper (its clock ahead, or this run slower than the lease) may take the rows
    #: back and another worker claim them again: this run's later writes then miss them, so two workers
    #: never both call the provider for one row.
    claimed_at: dt.datetime | None = None
    #: Claimed rows whose provider call has not begun: what an interruption gives back to the queue.
    pending: list[int] = field(default_factory=list)
    #: Whether the batch's mailouts were checked for their end with the last outcome recorded.
    finish_checked: bool = False

    def run(self) -> None:
        db, clock = self.db, self.clock
        self.pending = [i for parcel in self.composed.parcels for i in parcel.message_ids]
        try:
            self._record([(i, "suppressed", {"error": reason}) for i, reason in self.composed.skipped])
            now = clock()
            self._record([(i, *self._retry_or_fail(i, reason, now)) for i, reason in self.composed.broken])
            for number, parcel in enumerate(self.composed.parcels, 1):
                self._send(parcel, last=number == len(self.composed.parcels))
        except TransportHalted as halt:
            # The provider refused us: nothing more can leave until a person acts.
            with db.session() as session:
                repo.release_messages(session, self.pending, clock(), self.claimed_at)
                for mailout_id in self.mailout_ids:
                    repo.pause_mailout(session, mailout_id, halt.to_json())
            self.result.count("released", len(self.pending))
            log.error("transport %s halted: %s; mailouts paused", self.transport.name, halt)
        except BaseException:
            # Never tried: give them back. Not the rows of a provider call under way (a SIGTERM or a lost
            # broker stops the task; the database fails while the answer is recorded): the provider may
            # have them, so they stay 'sending' and the sweeper marks them 'unknown'.
            with db.session() as session:
                repo.release_messages(session, self.pending, clock(), self.claimed_at)
            raise
        finally:
            self.transport.close()
            if not self.finish_checked:
                with db.session() as session:
                    for mailout_id in self.mailout_ids:
                        repo.finish_mailout_if_done(session, mailout_id, clock())

    def _send(self, parcel: Parcel, last: bool = False) -> None:
        now = self.clock()
        with self.db.session() as session:  # the last word before the provider: may it be called now?
            until = repo.provider_paused_until(session, now, self.transport.name)
            if until is None:  # and is the mailout still running?
                called = set(repo.mark_provider_called(session, parcel.message_ids, now, self.claimed_at))
                stopped = [i for i in parcel.message_ids if i not in called]
                repo.release_messages(session, stopped, now, self.claimed_at)
            else:  # the provider asked every worker to wait (429): back untried, due when the wait is over
                repo.release_messages(session, parcel.message_ids, now, self.claimed_at, not_before=until)
        done = set(parcel.message_ids)  # committed: from here on, the provider's or given back
        self.pending = [i for i in self.pending if i not in done]
        if until is not None:
            self.result.count("throttled", len(parcel.message_ids))
            return
        self.result.count("released", len(stopped))
        if not called:
            return
        parcel = parcel.only(called) if stopped else parcel
        try:
            deliveries = self.transport.send(parcel.email)
        except TransportHalted:
            with self.db.session() as session:  # refused before anything was accepted: nothing of it left
                repo.release_messages(session, parcel.message_ids, self.clock(), self.claimed_at)
            self.result.count("released", len(parcel.message_ids))
            raise
        except Exception as err:  # the provider may have it: never again automatically
            # Never the exception's text here (an SMTP refusal lists the addresses): it goes to the rows.
            log.error(
                "the %s transport failed on messages %s (%s)",
                self.transport.name,
                parcel.message_ids,
                type(err).__name__,
            )
            error = f"unexpected error in the transport: {type(err).__name__}: {err}"[:500]
            self._record([(i, "unknown", {"error": error}) for i in parcel.message_ids])
            return
        now = self.clock()
        outcomes: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        answered: list[tuple[int, str, dict[str, Any]]] = []
        for d in deliveries:  # a request's recipients share one answer: its values worked out once
            attempts = self.attempts.get(d.ledger_id, 1)
            key = (d.status, d.provider_id, d.error, d.retry_after, attempts)
            outcome = outcomes.get(key) or outcomes.setdefault(key, self._ledger_values(d, attempts, now))
            answered.append((d.ledger_id, *outcome))
        self._record(answered, finish=last)
        waits = [d.retry_after for d in deliveries if d.status == "transient" and d.retry_after]
        if waits:  # the provider's rate limit holds for every worker: one pause for all of them
            with self.db.session() as session:
                repo.pause_provider(session, self.transport.name, now + dt.timedelta(seconds=max(waits)))
        bounced = [d for d in deliveries if d.status == "permanent" and d.hard_bounce]
        if bounced:  # the relay said the address does not exist: as a bounce event would
            with self.db.session() as session:
                rows = repo.get_messages(session, [d.ledger_id for d in bounced])
                errors = {d.ledger_id: d.error for d in bounced}
                for message in rows:
                    source = f"{self.transport.name}: {errors[message.id]}"
                    repo.suppress_for_message(session, message, "hard_bounce", source)

    def _retry_or_fail(self, message_id: int, reason: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
        """A row whose composing raised: again later (the claim counted an attempt), failed at the cap."""
        attempts = self.attempts.get(message_id, 1)
        if attempts >= repo.MAX_PREPARE_ATTEMPTS:
            return "failed", {"error": f"gave up after {attempts} attempts: {reason}"}
        not_before = now + retry_delay(attempts, None, self.retry_base)
        return "queued", {"error": reason, "not_before": not_before, "dispatched_at": None}

    def _record(self, rows: Sequence[tuple[int, str, dict[str, Any]]], finish: bool = False) -> None:
        """Write the outcomes of a parcel in one transaction, one statement per outcome (a provider answers a
        whole request alike); after the batch's last parcel, whether its mailouts are done.

        The end is checked after the outcomes commit, never in their transaction: of two workers that record
        a mailout's last rows at once, the later commit's check then sees both. Checked inside, on
        PostgreSQL each check could see the other's rows still 'sending', and nobody finished the mailout."""
        if not rows:
            return
        now = self.clock()
        groups: dict[tuple[str, str], tuple[str, dict[str, Any], list[int]]] = {}
        keys: dict[int, str] = {}  # rows of one answer share one dictionary of values: one repr for them
        for message_id, status, values in rows:  # a provider answers a whole request alike: one UPDATE
            key = (status, keys.get(id(values)) or keys.setdefault(id(values), repr(sorted(values.items()))))
            groups.setdefault(key, (status, values, []))[2].append(message_id)
        for status, _values, ids in groups.values():
            self.result.count("retry" if status == "queued" else status, len(ids))
        with self.db.session() as session:
            for status, values, ids in groups.values():
                repo.finish_messages(session, ids, status, now, self.claimed_at, **values)
        if finish:
            with self.db.session() as session:
                for mailout_id in self.mailout_ids:
                    repo.finish_mailout_if_done(session, mailout_id, now)
            self.finish_checked = True

    def _ledger_values(
        self, delivery: Delivery, attempts: int, now: dt.datetime
    ) -> tuple[str, dict[str, Any]]:
        if delivery.status == "sent":
            return "sent", {"provider_message_id": delivery.provider_id, "sent_at": now, "error": None}
        if delivery.status == "transient":
            if attempts >= MAX_ATTEMPTS:
                return "failed", {"error": f"gave up after {attempts} attempts: {delivery.error}"}
            not_before = now + retry_delay(attempts, delivery.retry_after, self.retry_base)
            # Back in the queue for the dispatcher, once not_before has come.
            return "queued", {
                "error": delivery.error,
                "not_before": not_before,
                "dispatched_at": None,
                "provider_called_at": None,
            }
        if delivery.status == "permanent":
            return "failed", {"error": delivery.error}
        return "unknown", {"error": delivery.error, "provider_message_id": delivery.provider_id}


class LedgerRow(Protocol):
    """What names a ledger row: a claimed row and a stored message both have it."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def idempotency_key(self) -> str: ...


def ledger_message_id(message: LedgerRow, domain: str) -> str:
    """The Message-ID of a ledger row, the same every time it is composed: should a person ever send an
    'unknown' row again, mail clients see one message, not two (RFC 5322 3.6.4)."""
    return f"<{message.kind}.{message.id}.{message_id_digest(message.idempotency_key)}@{domain}>"


def message_id_digest(idempotency_key: str) -> str:
    """The part of a ledger row's Message-ID that a bounce report must quote back to be believed."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


def single_parcel(
    message: Claimed,
    email: PreparedEmail,
    context: ComposeContext,
    to: Mailbox,
    sender: Mailbox,
    reply_to: Mailbox | None = None,
    kind: str = "letter",
) -> Parcel:
    """One email to one person (a letter, a confirmation, a notice), as a parcel of its ledger row."""
    domain = context.sender.from_email.rpartition("@")[2]
    recipient = Recipient(
        ledger_id=message.id,
        address=to,
        values={},
        message_id=ledger_message_id(message, domain),
    )
    bulk = BulkEmail(
        kind=kind,
        locale=email.locale.code,
        rtl=email.locale.is_rtl,
        sender=sender,
        subject=email.subject,
        text=email.text,
        html=email.html,
        date=context.now,
        recipients=[recipient],
        categories=(kind,),
        reply_to=reply_to,  # built from its parts, never a string parsed again
    )
    return Parcel([message.id], None, bulk)


def _runs(messages: list[Claimed]) -> list[tuple[tuple[int, str], list[Claimed]]]:
    """The rows of each (mailout, content locale), in id order: one rendering each."""
    ordered = sorted(messages, key=lambda m: (m.mailout_id or 0, m.content_locale, m.id))
    return [
        (key, list(group))
        for key, group in itertools.groupby(ordered, key=lambda m: (m.mailout_id or 0, m.content_locale))
    ]


class _AlertLinks:
    """A recipient's values and headers for the alerts of one campaign in one locale: what is the same for
    every recipient is worked out once."""

    def __init__(
        self, signer: TokenSigner, sender: SenderIdentity, slug: str, code: str, tags: AddressTags | None
    ) -> None:
        self.signer = signer
        self.code = code
        self.base_url = sender.base_url
        self.domain = sender.from_email.rpartition("@")[2]
        self.tags = tags
        # No token: a forwarded alert must not let anyone act in this supporter's name.
        self.action_url = f"{sender.base_url}/{code}/{slug}"

    def recipient(self, message: Claimed, supporter: AlertRecipient) -> Recipient:
        token = self.signer.sign("unsubscribe", {"s": supporter.id, "m": message.id})
        unsubscribe_url = f"{self.base_url}/u/{token}"
        # RFC 8058 one-click unsubscribe, which Gmail and Yahoo require of bulk senders; by email too when
        # an inbound address is read (an address nobody reads would lose those requests).
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        if self.tags is not None:
            mailto = self.tags.address("u", message.id)
            headers["List-Unsubscribe"] += f", <mailto:{mailto}?subject=unsubscribe>"
        name = supporter.name
        governorate = supporter.governorate
        return Recipient(
            ledger_id=message.id,
            # Checked here, not only by the transport: an address no relay takes is a row that cannot be
            # composed (tried again, then failed with its reason), never a call that fails for all.
            address=Mailbox(display_name=name, addr_spec=ascii_addr_spec(supporter.email)),
            values={
                "first_name": name.split()[0] if name.strip() else "",
                "name": name,
                "governorate": governorate_name(governorate, self.code) if governorate else "",
                "action_url": self.action_url,
                "unsubscribe_url": unsubscribe_url,
            },
            message_id=ledger_message_id(message, self.domain),
            headers=headers,
        )


def _bulk_alert(
    prepared: PreparedEmail,
    recipients: list[Recipient],
    campaign: Campaign,
    sender: SenderIdentity,
    now: dt.datetime,
) -> BulkEmail:
    domain = sender.from_email.rpartition("@")[2]
    tracking = (
        campaign.manifest.get("tracking", {}) if isinstance(campaign.manifest.get("tracking"), dict) else {}
    )
    return BulkEmail(
        kind="alert",
        locale=prepared.locale.code,
        rtl=prepared.locale.is_rtl,
        sender=Mailbox(display_name=sender.from_name, addr_spec=sender.from_email),
        subject=prepared.subject,
        text=prepared.text,
        html=prepared.html,
        date=now,
        recipients=recipients,
        headers={"List-Id": f"<{campaign.slug}.{domain}>"},
        categories=("alert",),
        track_opens=bool(tracking.get("opens", False)),
        track_clicks=bool(tracking.get("clicks", False)),
    )


@dataclass(frozen=True)
class TestSendResult:
    locale: str
    status: str
    detail: str | None


SAMPLE_NAMES = {"en": "Sarah Miller", "ar": "زينب حسن", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Şêxo"}


def send_test(
    db: Database,
    transport: Transport,
    renderer: Renderer,
    sender: SenderIdentity,
    slug: str,
    to: Mailbox,
    locales: Sequence[str],
    clock: Clock = utc_now,
) -> list[TestSendResult]:
    """One message per locale to a test address, outside any mailout (links point nowhere real)."""
    results = []
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        contents = {code: repo.get_content(session, campaign.id, "alert", code) for code in locales}
    try:
        for code in locales:
            content = contents[code]
            title = campaign.title.get(code, campaign.title[campaign.default_locale])
            prepared = renderer.render_alert(
                AlertContent(title, content.subject, content.preheader, content.body),
                code,
                clock().date(),
                privacy_url=sender.privacy_url(code),
            )
            name = to.display_name or SAMPLE_NAMES.get(code, "Test")
            recipient = Recipient(
                ledger_id=0,
                address=to,
                values={
                    "first_name": name.split()[0],
                    "name": name,
                    "governorate": "",
                    "action_url": f"{sender.base_url}/{code}/{campaign.slug}",
                    "unsubscribe_url": f"{sender.base_url}/u/test",
                },
                message_id=f"<test.{secrets.token_hex(8)}@{sender.from_email.rpartition('@')[2]}>",
            )
            email = _bulk_alert(prepared, [recipient], campaign, sender, clock())
            email = BulkEmail(**{**email.__dict__, "subject": "[TEST] " + email.subject, "kind": "test"})
            delivery = transport.send(email)[0]
            results.append(TestSendResult(code, delivery.status, delivery.error or delivery.provider_id))
    finally:
        transport.close()
    return results
