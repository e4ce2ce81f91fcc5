"""The queries about persons: retention, erasure, export and rekeying (mailer.privacy calls these).

Counts survive every one of them: rows that count (letters, ledger rows) lose what names a person and
stay; only rows that are nothing but personal data are deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table, column, delete, exists, func, or_, select, table, update
from sqlalchemy.orm import Session, undefer

from mailer.store.models import (
    Base,
    Campaign,
    Event,
    InboundMessage,
    InstallationKey,
    Letter,
    LetterAnswer,
    Mailout,
    Message,
    Private,
    PrivateBytes,
    PrivateJSON,
    Supporter,
    SupporterTag,
    Suppression,
)
from mailer.store.repository import _changed

#: Ledger states that may still reach the provider.
WAITING = ("queued", "sending")
CHUNK = 500


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# Retention


def unconfirmed_letters(session: Session, created_before: dt.datetime) -> list[int]:
    query = select(Letter.id).where(Letter.status == "pending", Letter.created_at < created_before)
    return list(session.scalars(query))


def spent_letters(session: Session, confirmed_before: dt.datetime) -> list[int]:
    """Confirmed long enough ago, nothing of theirs still to send, and their words still kept."""
    waiting = exists().where(Message.letter_id == Letter.id, Message.status.in_(WAITING))
    query = select(Letter.id).where(
        Letter.status == "confirmed",
        Letter.confirmed_at < confirmed_before,
        or_(Letter.private.is_not(None), Letter.key.is_not(None)),
        ~waiting,
    )
    return list(session.scalars(query))


def forgettable_writers(session: Session) -> list[int]:
    """People known only as writers (never subscribed), none of whose letters keeps words any more."""
    kept = exists().where(
        Letter.supporter_id == Supporter.id, or_(Letter.private.is_not(None), Letter.status == "pending")
    )
    waiting = exists().where(Message.supporter_id == Supporter.id, Message.status.in_(WAITING))
    query = select(Supporter.id).where(
        Supporter.origin == "letter",
        Supporter.subscribed.is_(False),
        ~kept,
        ~waiting,
    )
    return list(session.scalars(query))


def delete_letters(session: Session, letter_ids: Sequence[int]) -> None:
    """Letters gone entirely, with their ledger rows (the confirmation emails) and those rows' events."""
    for chunk in chunks(letter_ids):
        message_ids = select(Message.id).where(Message.letter_id.in_(chunk))
        session.execute(delete(Event).where(Event.message_id.in_(message_ids)))
        # A bounce of a confirmation email names its row: it stays, unattached, and keeps nothing of theirs.
        session.execute(
            update(InboundMessage)
            .where(or_(InboundMessage.letter_id.in_(chunk), InboundMessage.message_id.in_(message_ids)))
            .values(message_id=None, letter_id=None, raw=None, private=None, key=None)
        )
        session.execute(delete(LetterAnswer).where(LetterAnswer.letter_id.in_(chunk)))
        session.execute(delete(Message).where(Message.letter_id.in_(chunk)))
        session.execute(delete(Letter).where(Letter.id.in_(chunk)))


def forget_letters(session: Session, letter_ids: Sequence[int], now: dt.datetime) -> None:
    """The words and the letter's own key go; the letter, its officials and its counts stay."""
    for chunk in chunks(letter_ids):
        session.execute(
            update(Letter)
            .where(Letter.id.in_(chunk))
            .values(private=None, key=None, submission=None, purged_at=now)
        )


def delete_supporters(session: Session, supporter_ids: Sequence[int]) -> None:
    """Supporters gone; their letters and ledger rows stay, unattached, for the counts."""
    for chunk in chunks(supporter_ids):
        session.execute(update(Letter).where(Letter.supporter_id.in_(chunk)).values(supporter_id=None))
        session.execute(
            update(Message).where(Message.supporter_id.in_(chunk)).values(supporter_id=None, error=None)
        )
        session.execute(delete(SupporterTag).where(SupporterTag.supporter_id.in_(chunk)))
        session.execute(delete(Supporter).where(Supporter.id.in_(chunk)))


def old_events(session: Session, received_before: dt.datetime, limit: int = CHUNK) -> list[Event]:
    """Events still holding their raw payload, received before a time."""
    query = (
        select(Event)
        .options(undefer(Event.payload))
        .where(Event.received_at < received_before, Event.scrubbed_at.is_(None))
        .order_by(Event.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def purge_inbound(
    session: Session, raw_before: dt.datetime, replies_before: dt.datetime, now: dt.datetime
) -> tuple[int, int]:
    """Messages as they arrived go after their period (once read); replies as writers read them after
    theirs. What each was, and for which letter and official, stays for the counts."""
    raw = _changed(
        session,
        update(InboundMessage)
        .where(
            InboundMessage.received_at < raw_before,
            InboundMessage.processed_at.is_not(None),
            InboundMessage.raw.is_not(None),
        )
        .values(raw=None, purged_at=now),
    )
    replies = _changed(
        session,
        update(InboundMessage)
        .where(InboundMessage.received_at < replies_before, InboundMessage.private.is_not(None))
        .values(private=None, key=None, purged_at=now),
    )
    return raw, replies


def count_old_inbound(
    session: Session, raw_before: dt.datetime, replies_before: dt.datetime
) -> tuple[int, int]:
    raw = session.scalar(
        select(func.count()).where(
            InboundMessage.received_at < raw_before,
            InboundMessage.processed_at.is_not(None),
            InboundMessage.raw.is_not(None),
        )
    )
    replies = session.scalar(
        select(func.count()).where(
            InboundMessage.received_at < replies_before, InboundMessage.private.is_not(None)
        )
    )
    return int(raw or 0), int(replies or 0)


def inbound_of(session: Session, supporter_id: int) -> list[InboundMessage]:
    """What came back about the person: bounces of mail to them, their emailed unsubscribes, and
    answers to their letters."""
    mine = select(Message.id).where(_mine(supporter_id))
    letters = select(Letter.id).where(Letter.supporter_id == supporter_id)
    query = (
        select(InboundMessage)
        .options(undefer(InboundMessage.private), undefer(InboundMessage.key))
        .where(or_(InboundMessage.message_id.in_(mine), InboundMessage.letter_id.in_(letters)))
        .order_by(InboundMessage.id)
    )
    return list(session.scalars(query))


def forget_inbound_of(session: Session, supporter_id: int) -> int:
    """Erasure: what came back about the person keeps what it was, not a word of it."""
    mine = select(Message.id).where(_mine(supporter_id))
    letters = select(Letter.id).where(Letter.supporter_id == supporter_id)
    return _changed(
        session,
        update(InboundMessage)
        .where(or_(InboundMessage.message_id.in_(mine), InboundMessage.letter_id.in_(letters)))
        .values(raw=None, private=None, key=None),
    )


def count_old_events(session: Session, received_before: dt.datetime) -> int:
    query = select(func.count()).where(Event.received_at < received_before, Event.scrubbed_at.is_(None))
    return int(session.scalar(query) or 0)


# One person


def letters_of(session: Session, supporter_id: int) -> list[Letter]:
    return list(
        session.scalars(select(Letter).where(Letter.supporter_id == supporter_id).order_by(Letter.id))
    )


def _mine(supporter_id: int) -> Any:
    letters = select(Letter.id).where(Letter.supporter_id == supporter_id)
    return or_(Message.supporter_id == supporter_id, Message.letter_id.in_(letters))


def messages_of(session: Session, supporter_id: int) -> list[Message]:
    """Messages to the person, and their letters to officials."""
    return list(session.scalars(select(Message).where(_mine(supporter_id)).order_by(Message.id)))


def events_of(session: Session, message_ids: Sequence[int]) -> list[Event]:
    found: list[Event] = []
    for chunk in chunks(message_ids):
        query = select(Event).options(undefer(Event.payload)).where(Event.message_id.in_(chunk))
        found += session.scalars(query.order_by(Event.id))
    return found


def reduce_events_of(session: Session, supporter_id: int, now: dt.datetime) -> int:
    """The events of the person's messages keep what happened and when, from the clear columns: written
    without reading the payload, so that it works where only the public key is."""
    mine = select(Message.id).where(_mine(supporter_id))
    rows = session.execute(
        select(Event.id, Event.event_type, Event.occurred_at).where(
            Event.message_id.in_(mine), Event.scrubbed_at.is_(None)
        )
    ).all()
    for event_id, event_type, occurred_at in rows:
        payload = {"event": event_type, "timestamp": int(occurred_at.timestamp())}
        session.execute(update(Event).where(Event.id == event_id).values(payload=payload, scrubbed_at=now))
    return len(rows)


def cancel_waiting(session: Session, supporter_id: int, now: dt.datetime) -> int:
    """The person's messages not yet handed to the provider become 'cancelled'. A worker that claimed
    one finds it so when it marks the provider call (conditional on 'sending'), and sends nothing."""
    statement = (
        update(Message)
        .where(_mine(supporter_id), Message.status.in_(WAITING), Message.provider_called_at.is_(None))
        .values(status="cancelled", error=None, updated_at=now)
    )
    return _changed(session, statement)


def suppressions_of(session: Session, email_index: str) -> list[Suppression]:
    return list(session.scalars(select(Suppression).where(Suppression.email_index == email_index)))


def keep_only_index(session: Session, email_index: str) -> None:
    """The suppressions of an address keep its blind index, and nothing that names it."""
    session.execute(
        update(Suppression).where(Suppression.email_index == email_index).values(email=None, source="")
    )


def campaign_slugs(session: Session) -> dict[int, str]:
    return {row_id: slug for row_id, slug in session.execute(select(Campaign.id, Campaign.slug))}


def mailout_campaigns(session: Session) -> dict[int, str]:
    query = select(Mailout.id, Campaign.slug).join(Campaign, Campaign.id == Mailout.campaign_id)
    return {row_id: slug for row_id, slug in session.execute(query)}


# Keys


def private_columns() -> list[tuple[Table, str, str]]:
    """(table, column, label) of every encrypted column: rekeying misses none, whatever is added later."""
    return [
        (mapped, col.name, col.type.label)
        for mapped in Base.metadata.sorted_tables
        for col in mapped.columns
        if isinstance(col.type, Private | PrivateJSON | PrivateBytes)
    ]


def _raw(mapped: Table, name: str) -> Any:
    """The table with plain types: values as stored, never through the vault."""
    return table(mapped.name, column("id"), column(name))


def stored_not_under(
    session: Session, mapped: Table, name: str, prefix: str, after_id: int, limit: int = CHUNK
) -> list[tuple[int, str]]:
    """(id, stored token) of values that do not start with ``prefix``, a keyset page."""
    raw = _raw(mapped, name)
    query = (
        select(raw.c.id, raw.c[name])
        .where(raw.c.id > after_id, raw.c[name].is_not(None), ~raw.c[name].like(prefix + "%"))
        .order_by(raw.c.id)
        .limit(limit)
    )
    return [(int(row_id), str(token)) for row_id, token in session.execute(query)]


def replace_raw(session: Session, mapped: Table, name: str, row_id: int, old: str, new: str) -> bool:
    """Swap a stored token for another, only if it is still the one read: a purge or an erasure that
    changed the row meanwhile wins, and nothing it removed comes back."""
    raw = _raw(mapped, name)
    statement = update(raw).where(raw.c.id == row_id, raw.c[name] == old).values({name: new})
    return _changed(session, statement) == 1


def key_in_use(session: Session, kid: str) -> bool:
    for mapped, name, _label in private_columns():
        raw = _raw(mapped, name)
        under = or_(raw.c[name].like(f"v1.{kid}.%"), raw.c[name].like(f"s1.{kid}.%"))
        if session.scalar(select(func.count()).select_from(raw).where(under)):
            return True
    return False


def registered_keys(session: Session) -> list[InstallationKey]:
    return list(session.scalars(select(InstallationKey)))
