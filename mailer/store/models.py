"""The database of record. Portable SQL only: the same schema runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mailer.vault import Vault

# Named constraints, so that migrations can alter them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Slugs name campaigns and officials in URLs, files and commands.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$")

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware timestamps in UTC on every database (SQLite would otherwise drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def vault_of(dialect: Dialect) -> Vault:
    """The vault of the engine this dialect belongs to (set by :class:`mailer.store.Database`)."""
    vault = getattr(dialect, "mailer_vault", None)
    if vault is None:
        raise RuntimeError("this engine has no vault: personal columns cannot be read or written")
    return vault  # type: ignore[no-any-return]


class Private(TypeDecorator[str]):
    """A personal value, stored encrypted and bound to its column (``label``): never in clear."""

    impl = Text
    cache_ok = True

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else vault_of(dialect).encrypt(value, self.label)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else vault_of(dialect).decrypt(value, self.label)


class PrivateJSON(TypeDecorator[Any]):
    """A personal JSON document (tags, a provider's raw event), stored encrypted like :class:`Private`."""

    impl = Text
    cache_ok = True

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return vault_of(dialect).encrypt(
            json.dumps(value, ensure_ascii=False, separators=(",", ":")), self.label
        )

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(vault_of(dialect).decrypt(value, self.label))


#: A blind index (HMAC, base64url): equality lookups without the value.
BlindIndex = String(64)


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    default_locale: Mapped[str] = mapped_column(String(16))
    locales: Mapped[list[str]] = mapped_column(JSON)
    translation_status: Mapped[dict[str, str]] = mapped_column(JSON)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now, onupdate=_now)


class CampaignContent(Base):
    """One kind of text (alert, letter) of a campaign in one locale."""

    __tablename__ = "campaign_content"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", "locale"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    source_file: Mapped[str] = mapped_column(String(300))
    # Goes up each time this text changes (a reload or an edit in the dashboard); mailouts keep a copy
    # of the text they launched with, whatever the version is now.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class CampaignImage(Base):
    """The picture a chat shows for a campaign's shared link, in one locale ("" for every other one)."""

    __tablename__ = "campaign_image"
    __table_args__ = (UniqueConstraint("campaign_id", "locale"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))


class Supporter(Base):
    __tablename__ = "supporter"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(Private("supporter.email"))
    # Blind index of the lower-cased address: duplicates differing only in case are the same person.
    email_index: Mapped[str] = mapped_column(BlindIndex, unique=True)
    name: Mapped[str] = mapped_column(Private("supporter.name"))
    locale: Mapped[str] = mapped_column(String(16), index=True)
    governorate: Mapped[str | None] = mapped_column(Private("supporter.governorate"))
    # Segments select by governorate through its blind index.
    governorate_index: Mapped[str | None] = mapped_column(BlindIndex, index=True)
    tags: Mapped[list[str]] = mapped_column(PrivateJSON("supporter.tags"), default=list)
    # Segments select by tag through these blind indexes (kept equal to ``tags`` by repository.set_tags).
    tag_rows: Mapped[list[SupporterTag]] = relationship(
        cascade="save-update", lazy="raise", passive_deletes="all"
    )
    # "import" (a coordinator's list) or "letter" (known only as the writer of letters: forgotten with them).
    origin: Mapped[str] = mapped_column(String(20), default="import", server_default="import")
    # Receives mailouts: imported lists are; someone who only wrote a letter is not, unless they opted in.
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now, onupdate=_now)


class SupporterTag(Base):
    """The blind index of one of a supporter's tags: a segment ``tag=...`` without reading the tags."""

    __tablename__ = "supporter_tag"

    supporter_id: Mapped[int] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE"), primary_key=True
    )
    tag_index: Mapped[str] = mapped_column(BlindIndex, primary_key=True, index=True)


class Target(Base):
    """An official supporters write to."""

    __tablename__ = "target"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    institution: Mapped[dict[str, str]] = mapped_column(JSON)
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    name: Mapped[dict[str, str]] = mapped_column(JSON)
    governorate: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(320))
    letter_locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), default="active")
    verified_on: Mapped[dt.date | None] = mapped_column(Date)


class Mailout(Base):
    """One send of a campaign's alert to one segment; (campaign, segment) identifies it."""

    __tablename__ = "mailout"
    __table_args__ = (UniqueConstraint("campaign_id", "segment_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    segment: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    segment_key: Mapped[str] = mapped_column(String(500))
    fallbacks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    # Why the mailout stopped by itself (credentials refused, ...), for the coordinator.
    status_reason: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Keyset checkpoint: supporters up to this id have their ledger rows; a new launch goes on from here.
    checkpoint: Mapped[int] = mapped_column(BigInteger, default=0)
    # A launch is writing the ledger page by page while the first pages go out: not finished before it ends.
    listing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class MailoutContent(Base):
    """The alert of a mailout in one content locale, as it was at launch: a campaign reloaded (or a
    language taken out) while it runs changes nothing of what its recipients get."""

    __tablename__ = "mailout_content"
    __table_args__ = (UniqueConstraint("mailout_id", "locale"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    mailout_id: Mapped[int] = mapped_column(ForeignKey("mailout.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)


class Letter(Base):
    """A supporter's letter to the officials of a campaign, waiting for (or past) the confirmation."""

    __tablename__ = "letter"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    # None once the writer is forgotten (retention or erasure): the letter still counts.
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporter.id"), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    share: Mapped[str] = mapped_column(String(20))
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    # The writer's words and name (see mailer.letters.LetterSecrets), under a key of the letter's own: the
    # confirmation link carries that key, so the page that shows the letter reads this letter and no other.
    # Both loaded only when read: a process holding only the public key loads letters without them.
    private: Mapped[str | None] = mapped_column(Text, deferred=True)
    key: Mapped[str | None] = mapped_column(Private("letter.key"), deferred=True)
    # When ``private`` and ``key`` were deleted (retention): the letter still counts, its text is gone.
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The campaign's letter in each language its officials read, as the writer was shown it: what the
    # writer confirms is what is sent, whatever is reloaded meanwhile ({code: {subject, body}}).
    texts: Mapped[dict[str, dict[str, str]] | None] = mapped_column(JSON)
    targets: Mapped[list[str]] = mapped_column(JSON)
    # The supporter ticked "keep me informed": it takes effect only when they confirm from their mailbox.
    opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # A keyed hash of the form post that made the letter (the page it came from and every field): the
    # same post twice (a double click, a reload that resubmits) finds this letter instead of making another.
    submission: Mapped[str | None] = mapped_column(String(64), unique=True)


class Message(Base):
    """The sending ledger: one row per message we owe, UNIQUE on its idempotency key."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_mailout_status", "mailout_id", "status"),
        Index("ix_message_status_not_before", "status", "not_before"),
        # Letters released per official this hour: never a scan of a mailout's queued rows. Partial, so that
        # the alerts' rows (nearly all of them) cost it nothing when they are written and updated.
        Index(
            "ix_message_kind_dispatched_at",
            "kind",
            "dispatched_at",
            postgresql_where=text("kind = 'letter'"),
            sqlite_where=text("kind = 'letter'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    mailout_id: Mapped[int | None] = mapped_column(ForeignKey("mailout.id"))
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporter.id"))
    target_id: Mapped[int | None] = mapped_column(ForeignKey("target.id"))
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letter.id"), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    content_locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # When a task for this row was last put on the queue; the dispatcher re-queues rows whose task got lost.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Set, and committed, just before the provider is called: a row left 'sending' with it set may have
    # left, so the sweeper marks it 'unknown' instead of sending it again.
    provider_called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    # What the provider later reported (delivered, deferred, bounced, complained...): never undone by a
    # lesser event (a bounce stays a bounce when a late "delivered" arrives).
    delivery: Mapped[str | None] = mapped_column(String(20))
    delivery_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # A provider's answer may quote the address: encrypted like the rest, and loaded only when read (the
    # unsubscribe page and the webhook load messages where only the public key is).
    error: Mapped[str | None] = mapped_column(Private("message.error"), deferred=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now, onupdate=_now)


class Event(Base):
    """A delivery event reported by a provider, kept raw for audit."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    # Set when the event's effects (delivery state, suppressions) were applied; the sweeper applies the
    # rest, so that a lost task never loses a bounce or a complaint.
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Why this event stops mail to its address (bounce, complaint...), decided when it arrives, so that
    # applying it never needs to read the payload.
    suppress_reason: Mapped[str | None] = mapped_column(String(30))
    # The provider's raw event (address, IP, user agent): encrypted, and reduced to what reports need
    # after the retention period (``scrubbed_at``).
    # Loaded only when read: applying events never reads it, so the webhook works on the public key alone.
    payload: Mapped[dict[str, Any]] = mapped_column(PrivateJSON("event.payload"), deferred=True)
    scrubbed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class PrivateBytes(TypeDecorator[bytes]):
    """Personal bytes (a message as it arrived), stored encrypted like :class:`Private`."""

    impl = Text
    cache_ok = True

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return vault_of(dialect).encrypt(base64.b64encode(value).decode("ascii"), self.label)

    def process_result_value(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else base64.b64decode(vault_of(dialect).decrypt(value, self.label))


class InboundMessage(Base):
    """A message that came to the inbound address (a reply, a bounce, an emailed unsubscribe), stored once
    whichever door it came through, and what it was found to be."""

    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # "sendgrid" (Inbound Parse), "imap" or "pipe" (``mailer inbound receive``).
    door: Mapped[str] = mapped_column(String(20))
    # A blind index of its Message-ID (or of its content when it has none): the same message through
    # both doors, or posted twice, is one row.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    size: Mapped[int] = mapped_column(Integer)
    # The message as it arrived, encrypted; deleted after the retention period (``purged_at``). Loaded
    # only when read: the web door writes it with the public key alone.
    raw: Mapped[bytes | None] = mapped_column(PrivateBytes("inbound_message.raw"), deferred=True)
    # Set in the transaction of its effects (suppression, reply notice): each message acts once.
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # reply, auto_reply, bounce, unsubscribe, forged (a tag we did not sign), unmatched.
    kind: Mapped[str | None] = mapped_column(String(20))
    # The ledger row it answers (the letter to an official, the alert, ...), when a signed tag says so.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letter.id"), index=True)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("target.id"), index=True)
    # What reports need, nothing personal ({"permanent": 1} for a bounce...).
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # An official's reply as the supporter reads it (sender, subject, text), under a key of its own that
    # the supporter's link carries (as a letter's is): the public pages read this reply and no other.
    private: Mapped[str | None] = mapped_column(Text, deferred=True)
    key: Mapped[str | None] = mapped_column(Private("inbound_message.key"), deferred=True)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LetterAnswer(Base):
    """What a supporter said when asked whether an official answered their letter: one answer per
    (letter, official), changed in place when they answer again, so that it counts once."""

    __tablename__ = "letter_answer"
    __table_args__ = (UniqueConstraint("letter_id", "target_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letter.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("target.id"), index=True)
    # "yes", "no" or "not_yet".
    answer: Mapped[str] = mapped_column(String(10))
    answered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Suppression(Base):
    """An address we must not write to, with why (reasons are kept apart, never merged into one flag)."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("email_index", "scope", "reason"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email_index: Mapped[str] = mapped_column(BlindIndex, index=True)
    # The address itself, for coordinators' lists; None for an erased person (the index alone remains).
    email: Mapped[str | None] = mapped_column(Private("suppression.email"))
    scope: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(30))
    # Where it came from (a provider's answer may quote the address): encrypted.
    source: Mapped[str] = mapped_column(Private("suppression.source"), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)


class Throttle(Base):
    """Counters shared by every process of an installation: rate-limit windows and spent one-time proofs.

    Keys are keyed hashes (never an address or an IP in clear) and expire; the sweeper deletes old ones.
    """

    __tablename__ = "throttle"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class InstallationKey(Base):
    """The data keys this database holds values under (their ids, never the keys), and a check value of
    the index key: a process started with another installation's key is refused before it writes."""

    __tablename__ = "installation_key"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    index_check: Mapped[str] = mapped_column(BlindIndex)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)


class Account(Base):
    """A person who runs campaigns from the dashboard: a viewer, a coordinator or an admin."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(Private("account.email"))
    email_index: Mapped[str] = mapped_column(BlindIndex, unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # An Argon2id hash (its own salt and parameters inside): never the password.
    password_hash: Mapped[str] = mapped_column(String(200))
    # The TOTP secret, encrypted; confirmed once the person typed a code from their authenticator.
    totp_secret: Mapped[str | None] = mapped_column(Private("account.totp_secret"))
    totp_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The last time step whose code was accepted: a code is good once, even within its 30 seconds.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # The dashboard's language, as this person last chose it.
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=_now)
    # A removed account keeps its row (the audit log names it) but can never sign in again.
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AccountSession(Base):
    """A signed-in browser. The cookie holds a random token; the database holds only its hash, so a copy
    of the database signs nobody in, and "sign out everywhere" deletes the rows."""

    __tablename__ = "account_session"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    # "password" (the second factor is still owed) or "full".
    stage: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One change made by a person (who, what, when, from where). Rows are only ever added: the
    database itself refuses to update or delete them. Subjects name records by id, never a supporter's
    address, so that erasing a person leaves nothing of them here."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    # None for the command line run by the operator of the machine.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The client's address (or "command line"), encrypted.
    origin: Mapped[str] = mapped_column(Private("audit_entry.origin"))
