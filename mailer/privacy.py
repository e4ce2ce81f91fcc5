"""Each person's rights and the retention periods: what we hold about someone, erasing it, forgetting
what we no longer need, and moving every stored value to the current key.

Counts survive everything here: a letter erased or past its retention still counts for its campaign and
its officials; a message keeps its state; only what names or describes a person goes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.events import scrubbed, spreadsheet_safe
from mailer.inbound import Reply
from mailer.letters import CONFIRM_MAX_AGE, letter_secrets
from mailer.sending import utc_now
from mailer.store import Database
from mailer.store import personal as store
from mailer.store import repository as repo
from mailer.store.models import InboundMessage, Supporter


@dataclass(frozen=True)
class Retention:
    """How long each kind of personal data is kept (see Settings: MAILER_RETAIN_*)."""

    unconfirmed_after_expiry: dt.timedelta = dt.timedelta(hours=24)
    letter_text: dt.timedelta = dt.timedelta(days=28)
    raw_events: dt.timedelta = dt.timedelta(days=30)
    inbound_raw: dt.timedelta = dt.timedelta(days=30)
    replies: dt.timedelta = dt.timedelta(days=365)

    @property
    def unconfirmed(self) -> dt.timedelta:
        """From the form to deletion: the link's life, then the grace period."""
        return dt.timedelta(seconds=CONFIRM_MAX_AGE) + self.unconfirmed_after_expiry


@dataclass(frozen=True)
class Notice:
    """What the privacy notice tells people, read from the settings this installation runs with, so that
    the notice cannot drift from what the code does."""

    organisation: str
    contact: str
    carrier: str  # who delivers the emails: "sendgrid", "smtp" or "outbox"
    confirm_hours: int
    unconfirmed_hours: int
    letter_days: int
    event_days: int
    inbound: bool  # mail that comes back (answers, bounces) is read
    inbound_days: int
    reply_days: int


def notice(settings: Settings) -> Notice:
    return Notice(
        organisation=settings.from_name,
        contact=settings.privacy_contact or settings.from_email,
        carrier=settings.transport,
        confirm_hours=CONFIRM_MAX_AGE // 3600,
        unconfirmed_hours=settings.retain_unconfirmed_hours,
        letter_days=settings.retain_letter_days,
        event_days=settings.retain_event_days,
        inbound=settings.inbound_address is not None,
        inbound_days=settings.retain_inbound_days,
        reply_days=settings.retain_reply_days,
    )


@dataclass
class PurgeReport:
    unconfirmed_letters: int = 0
    letter_texts: int = 0
    writers_forgotten: int = 0
    events_scrubbed: int = 0
    inbound_deleted: int = 0
    replies_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def purge(
    db: Database, retention: Retention, now: dt.datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Delete what the retention periods say is no longer needed (or only count it, for a dry run)."""
    now = now or utc_now()
    report = PurgeReport()
    with db.session() as session:
        unconfirmed = store.unconfirmed_letters(session, now - retention.unconfirmed)
        report.unconfirmed_letters = len(unconfirmed)
        if not dry_run:
            store.delete_letters(session, unconfirmed)
    with db.session() as session:
        spent = store.spent_letters(session, now - retention.letter_text)
        report.letter_texts = len(spent)
        if not dry_run:
            store.forget_letters(session, spent, now)
    with db.session() as session:
        # A dry run counts the writers whose letters are gone already, not those the run would forget.
        writers = store.forgettable_writers(session)
        report.writers_forgotten = len(writers)
        if not dry_run:
            store.delete_supporters(session, writers)
    inbound_cutoffs = (now - retention.inbound_raw, now - retention.replies)
    with db.session() as session:
        if dry_run:
            report.inbound_deleted, report.replies_deleted = store.count_old_inbound(
                session, *inbound_cutoffs
            )
        else:
            report.inbound_deleted, report.replies_deleted = store.purge_inbound(
                session, *inbound_cutoffs, now
            )
    cutoff = now - retention.raw_events
    if dry_run:
        with db.session() as session:
            report.events_scrubbed = store.count_old_events(session, cutoff)
        return report
    while True:
        with db.session() as session:
            old = store.old_events(session, cutoff)
            for event in old:
                event.payload = scrubbed(event.payload)
                event.scrubbed_at = now
            report.events_scrubbed += len(old)
        if len(old) < store.CHUNK:
            return report


# A person's rights


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _supporter_record(supporter: Supporter) -> dict[str, Any]:
    return {
        "id": supporter.id,
        "email": supporter.email,
        "name": supporter.name,
        "locale": supporter.locale,
        "governorate": supporter.governorate,
        "tags": list(supporter.tags or []),
        "subscribed": supporter.subscribed,
        "origin": supporter.origin,
        "created_at": _iso(supporter.created_at),
        "updated_at": _iso(supporter.updated_at),
    }


def find_supporter(db: Database, address: str) -> dict[str, Any] | None:
    with db.session() as session:
        supporter = repo.supporter_by_index(session, db.vault.address_index(address))
        return _supporter_record(supporter) if supporter else None


def list_supporters(
    db: Database, segment: Mapping[str, Sequence[str]] | None = None
) -> Iterator[dict[str, Any]]:
    """Every supporter (of a segment, subscribed or not), in id order, a page at a time."""
    after = 0
    while True:
        with db.session() as session:
            page = repo.supporters_page(session, segment or {}, after, store.CHUNK)
            records = [_supporter_record(s) for s in page]
        yield from records
        if len(page) < store.CHUNK:
            return
        after = page[-1].id


SUPPORTER_COLUMNS = ("email", "name", "locale", "governorate", "tags", "subscribed", "created_at")


def supporters_csv(db: Database, segment: Mapping[str, Sequence[str]] | None = None) -> Iterator[str]:
    """The supporters of a segment as CSV lines, streamed; cells a spreadsheet would run as formulas
    (a name such as ``=HYPERLINK(...)``) are neutralised."""
    yield ",".join(SUPPORTER_COLUMNS) + "\n"
    for record in list_supporters(db, segment):
        buffer = io.StringIO()
        cells = {**record, "tags": ";".join(record["tags"]), "governorate": record["governorate"] or ""}
        csv.writer(buffer, lineterminator="\n").writerow(
            [spreadsheet_safe(str(cells[c])) for c in SUPPORTER_COLUMNS]
        )
        yield buffer.getvalue()


def export_person(db: Database, address: str) -> dict[str, Any]:
    """Everything we hold about the person with this address, in clear, for them."""
    index = db.vault.address_index(address)
    with db.session() as session:
        supporter = repo.supporter_by_index(session, index)
        document: dict[str, Any] = {
            "address": address.strip(),
            "exported_at": utc_now().isoformat(),
            "supporter": _supporter_record(supporter) if supporter else None,
            "letters": [],
            "messages": [],
            "events": [],
            "suppressions": [
                {"scope": s.scope, "reason": s.reason, "source": s.source, "created_at": _iso(s.created_at)}
                for s in store.suppressions_of(session, index)
            ],
        }
        if supporter is None:
            return document
        campaigns = store.campaign_slugs(session)
        for letter in store.letters_of(session, supporter.id):
            secrets = letter_secrets(letter)
            document["letters"].append(
                {
                    "id": letter.id,
                    "campaign": campaigns.get(letter.campaign_id),
                    "status": letter.status,
                    "created_at": _iso(letter.created_at),
                    "confirmed_at": _iso(letter.confirmed_at),
                    "officials": list(letter.targets),
                    "shared": letter.share,
                    "keep_me_informed": letter.opt_in,
                    "words": asdict(secrets) if secrets else None,
                    "words_deleted_at": _iso(letter.purged_at),
                }
            )
        document["replies"] = [_reply_record(row) for row in store.inbound_of(session, supporter.id)]
        mailouts = store.mailout_campaigns(session)
        messages = store.messages_of(session, supporter.id)
        for message in messages:
            document["messages"].append(
                {
                    "id": message.id,
                    "kind": message.kind,
                    "campaign": mailouts.get(message.mailout_id or 0),
                    "letter": message.letter_id,
                    "status": message.status,
                    "locale": message.locale,
                    "sent_at": _iso(message.sent_at),
                    "delivery": message.delivery,
                    "delivery_at": _iso(message.delivery_at),
                    "error": message.error,
                }
            )
        for event in store.events_of(session, [m.id for m in messages if m.supporter_id == supporter.id]):
            document["events"].append(
                {
                    "message": event.message_id,
                    "event": event.event_type,
                    "occurred_at": _iso(event.occurred_at),
                    "received_at": _iso(event.received_at),
                    "details": event.payload,
                }
            )
    return document


def _reply_record(row: InboundMessage) -> dict[str, Any]:
    """What came back about the person: its kind and time, and an official's answer in full."""
    reply = Reply.open(row.key, row.private) if row.private and row.key else None
    return {
        "kind": row.kind,
        "received_at": _iso(row.received_at),
        "letter": row.letter_id,
        "answer": asdict(reply) if reply else None,
    }


@dataclass
class Erasure:
    """What an erasure did. The same for an address we never held: the answer reveals nothing."""

    messages_cancelled: int = 0
    letters_erased: int = 0
    events_scrubbed: int = 0
    supporter_erased: bool = False


def erase_person(db: Database, address: str, now: dt.datetime | None = None) -> Erasure:
    """Everything about the person with this address goes, except a blind-index suppression so that no
    later import or form mails them again. The same for an address we never held."""
    return _erase(db, db.vault.address_index(address), now or utc_now())


def erase_supporter(db: Database, supporter_id: int, now: dt.datetime | None = None) -> Erasure:
    """The same, for the supporter an unsubscribe link names (the page may hold only the public key:
    nothing here reads personal data)."""
    with db.session() as session:
        index = repo.supporter_index(session, supporter_id)
    return _erase(db, index, now or utc_now()) if index else Erasure()


def _erase(db: Database, index: str, now: dt.datetime) -> Erasure:
    """Their waiting messages are cancelled first, in the same transaction as the rest, so that nothing of
    theirs reaches the provider once this returns (a worker that claimed one finds it cancelled)."""
    erasure = Erasure()
    with db.session() as session:
        supporter_id = repo.supporter_id_by_index(session, index)
        if supporter_id is not None:
            erasure.messages_cancelled = store.cancel_waiting(session, supporter_id, now)
            # Their events keep only what happened and when: no address, IP or user agent.
            erasure.events_scrubbed = store.reduce_events_of(session, supporter_id, now)
            store.forget_inbound_of(session, supporter_id)
            letters = store.letters_of(session, supporter_id)
            store.delete_letters(session, [x.id for x in letters if x.status == "pending"])
            store.forget_letters(session, [x.id for x in letters if x.status != "pending"], now)
            erasure.letters_erased = len(letters)
            store.delete_supporters(session, [supporter_id])
            erasure.supporter_erased = True
        store.keep_only_index(session, index)
        repo.add_suppression(session, index, "supporter", "erased", "")
    return erasure


# Keys


@dataclass
class Rekeyed:
    values: int = 0
    retired_keys: list[str] = field(default_factory=list)


def rekey(db: Database) -> Rekeyed:
    """Every stored value re-encrypted under the current key (sealed ones opened and made symmetric);
    keys that no value is under any more are retired, and may then be dropped from MAILER_DATA_KEY."""
    vault = db.vault
    current = f"v1.{vault.current.kid}."
    result = Rekeyed()
    for mapped, name, label in store.private_columns():
        after = 0
        while True:
            with db.session() as session:
                rows = store.stored_not_under(session, mapped, name, current, after)
                for row_id, token in rows:
                    fresh = vault.encrypt(vault.decrypt(token, label), label)
                    store.replace_raw(session, mapped, name, row_id, token, fresh)
                result.values += len(rows)
            if len(rows) < store.CHUNK:
                break
            after = rows[-1][0]
    with db.session() as session:
        for key in store.registered_keys(session):
            if key.kid != vault.current.kid and not store.key_in_use(session, key.kid):
                session.delete(key)
                result.retired_keys.append(key.kid)
    return result
