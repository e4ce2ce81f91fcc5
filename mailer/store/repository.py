"""Every query the engine makes. Use-cases call these with a session; nothing else writes SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    BigInteger,
    CursorResult,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Update

from mailer.errors import N_, NotFoundError
from mailer.store.models import (
    Campaign,
    CampaignContent,
    CampaignImage,
    Event,
    InboundMessage,
    Letter,
    LetterAnswer,
    Mailout,
    MailoutContent,
    Message,
    Supporter,
    SupporterTag,
    Suppression,
    Target,
    Throttle,
    UTCDateTime,
    vault_of,
)
from mailer.vault import Vault

if TYPE_CHECKING:
    from mailer.campaigns import CampaignSpec


def _changed(session: Session, statement: Any) -> int:
    """Run an UPDATE or DELETE; how many rows it changed (conditional updates: 0 means someone else won)."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


def _insert(session: Session) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING (SQLite and PostgreSQL both do)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _by_ids(statement: Update) -> Update:
    """An UPDATE of a batch's rows that SQLite finds by their ids. Without statistics SQLite prefers any
    index with an equality (``status = 'queued'``) to a list of row ids: the claim of 1000 rows then reads
    every queued row of the ledger, and a batch costs more the larger the mailout. PostgreSQL plans by its
    statistics and gets no hint."""
    return statement.with_hint("NOT INDEXED", dialect_name="sqlite")


@compiles(Update, "sqlite")
def _sqlite_update(statement: Update, compiler: SQLCompiler, **kw: Any) -> str:
    """SQLAlchemy keeps table hints but its SQLite compiler writes none: ``NOT INDEXED`` after the table
    (SQLite still finds rows by their ids, and only by them)."""
    text = compiler.visit_update(statement, **kw)
    hint = statement._hints.get((statement.table, "sqlite"))
    if hint:
        table = compiler.preparer.format_table(cast(Table, statement.table))
        text = text.replace(f"UPDATE {table} ", f"UPDATE {table} {hint} ", 1)
    return text


def _among(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """``column IN (ids)`` for a batch's thousand ids: on PostgreSQL one array parameter (``= ANY``), which
    is neither rendered nor parsed as a thousand placeholders; elsewhere the list."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger())))
    return column.in_(list(ids))


# Campaigns


def save_campaign(session: Session, spec: CampaignSpec) -> bool:
    """Insert or replace a campaign and all its content; True when it is new."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == spec.slug))
    created = campaign is None
    if campaign is None:
        campaign = Campaign(slug=spec.slug)
        session.add(campaign)
    campaign.title = spec.title
    campaign.default_locale = spec.default_locale
    campaign.locales = list(spec.locales)
    campaign.translation_status = spec.translation_status
    campaign.manifest = spec.manifest
    session.flush()
    versions = content_versions(session, campaign.id)
    old = {
        (c.kind, c.locale): (c.subject, c.preheader, c.body)
        for c in session.scalars(select(CampaignContent).where(CampaignContent.campaign_id == campaign.id))
    }
    session.query(CampaignContent).filter(CampaignContent.campaign_id == campaign.id).delete()
    session.add_all(
        CampaignContent(
            campaign_id=campaign.id,
            kind=c.kind,
            locale=c.locale,
            subject=c.subject,
            preheader=c.preheader,
            body=c.body,
            source_file=c.source_file,
            version=versions.get((c.kind, c.locale), 0)
            + (0 if old.get((c.kind, c.locale)) == (c.subject, c.preheader, c.body) else 1),
        )
        for c in spec.contents
    )
    session.query(CampaignImage).filter(CampaignImage.campaign_id == campaign.id).delete()
    session.add_all(
        CampaignImage(
            campaign_id=campaign.id, locale=i.locale, media_type=i.media_type, data=i.data, digest=i.digest
        )
        for i in spec.images
    )
    return created


def share_image(session: Session, campaign_id: int, locale: str) -> CampaignImage | None:
    """The locale's own share image, else the one for every locale, else None."""
    rows = session.scalars(
        select(CampaignImage).where(
            CampaignImage.campaign_id == campaign_id, CampaignImage.locale.in_((locale, ""))
        )
    ).all()
    return min(rows, key=lambda row: row.locale != locale, default=None)


def content_versions(session: Session, campaign_id: int) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(CampaignContent.kind, CampaignContent.locale, CampaignContent.version).where(
            CampaignContent.campaign_id == campaign_id
        )
    )
    return {(kind, locale): version for kind, locale, version in rows}


def save_content(session: Session, campaign_id: int, spec: Any) -> int:
    """One kind and locale's text, replaced by an edit: its new version number."""
    content = session.scalar(
        select(CampaignContent)
        .where(
            CampaignContent.campaign_id == campaign_id,
            CampaignContent.kind == spec.kind,
            CampaignContent.locale == spec.locale,
        )
        .with_for_update()
    )
    if content is None:
        content = CampaignContent(
            campaign_id=campaign_id,
            kind=spec.kind,
            locale=spec.locale,
            version=0,
            source_file=spec.source_file,
        )
        session.add(content)
    if (content.subject, content.preheader, content.body) != (spec.subject, spec.preheader, spec.body):
        content.subject, content.preheader, content.body = spec.subject, spec.preheader, spec.body
        content.version = (content.version or 0) + 1
    session.flush()
    return content.version


def get_campaign(session: Session, slug: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise NotFoundError(
            N_("no campaign '%(slug)s': load it first with `mailer campaign load FOLDER`"), slug=slug
        )
    return campaign


def get_campaign_by_id(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(N_("no campaign with id %(id)d"), id=campaign_id)
    return campaign


def list_campaigns(session: Session) -> Sequence[Campaign]:
    return session.scalars(select(Campaign).order_by(Campaign.slug)).all()


def content_kinds(session: Session, campaign_id: int) -> set[tuple[str, str]]:
    rows = session.execute(
        select(CampaignContent.kind, CampaignContent.locale).where(CampaignContent.campaign_id == campaign_id)
    )
    return {(kind, locale) for kind, locale in rows}


def get_content(session: Session, campaign_id: int, kind: str, locale: str) -> CampaignContent:
    content = session.scalar(
        select(CampaignContent).where(
            CampaignContent.campaign_id == campaign_id,
            CampaignContent.kind == kind,
            CampaignContent.locale == locale,
        )
    )
    if content is None:
        raise NotFoundError(N_("the campaign has no %(kind)s in %(code)s"), kind=kind, code=locale)
    return content


# Supporters


def vault(session: Session) -> Vault:
    """The vault of this session's database: blind indexes are computed with it."""
    return vault_of(session.get_bind().dialect)


def supporters_by_index(session: Session, indexes: Iterable[str]) -> dict[str, Supporter]:
    """Supporters by the blind index of their address."""
    found: dict[str, Supporter] = {}
    index_list = list(indexes)
    for start in range(0, len(index_list), 500):
        chunk = index_list[start : start + 500]
        for supporter in session.scalars(select(Supporter).where(Supporter.email_index.in_(chunk))):
            found[supporter.email_index] = supporter
    return found


def new_supporter(
    session: Session,
    email: str,
    name: str,
    locale: str,
    governorate: str | None,
    tags: Sequence[str] = (),
    subscribed: bool = True,
    origin: str = "import",
) -> Supporter:
    """A supporter added to the session, with the blind indexes of its address and governorate."""
    supporter = Supporter(
        email=email,
        email_index=vault(session).address_index(email),
        name=name,
        locale=locale,
        subscribed=subscribed,
        origin=origin,
    )
    supporter.tag_rows = []
    set_governorate(session, supporter, governorate)
    set_tags(session, supporter, tags)
    session.add(supporter)
    return supporter


def set_governorate(session: Session, supporter: Supporter, governorate: str | None) -> None:
    supporter.governorate = governorate
    supporter.governorate_index = vault(session).index(governorate, "governorate") if governorate else None


def set_tags(session: Session, supporter: Supporter, tags: Iterable[str]) -> None:
    """The supporter's tags, and their blind indexes for segments."""
    values = sorted(set(tags))
    supporter.tags = values
    if supporter.id is not None:
        session.execute(delete(SupporterTag).where(SupporterTag.supporter_id == supporter.id))
        session.add_all(
            SupporterTag(supporter_id=supporter.id, tag_index=vault(session).index(t, "tag")) for t in values
        )
    else:
        supporter.tag_rows = [SupporterTag(tag_index=vault(session).index(t, "tag")) for t in values]


def count_supporters_by_locale(session: Session) -> dict[str, int]:
    rows = session.execute(select(Supporter.locale, func.count()).group_by(Supporter.locale))
    return {locale: count for locale, count in rows}


def supporter_breakdown(session: Session) -> list[tuple[str, str | None, bool, int]]:
    """(locale, governorate index, subscribed, count): every count a coordinator needs, in one query."""
    query = select(
        Supporter.locale, Supporter.governorate_index, Supporter.subscribed, func.count()
    ).group_by(Supporter.locale, Supporter.governorate_index, Supporter.subscribed)
    return [(loc, gov, bool(sub), n) for loc, gov, sub, n in session.execute(query)]


def tag_lists(session: Session) -> Iterator[list[str]]:
    """Every supporter's tags, decrypted, streamed (tags are few and short; lists are long)."""
    query = select(Supporter.tags).execution_options(yield_per=1000)
    yield from session.scalars(query)


def recent_mailouts(session: Session, limit: int) -> list[int]:
    return list(session.scalars(select(Mailout.id).order_by(Mailout.id.desc()).limit(limit)))


def letters_per_target_since(session: Session, since: dt.datetime) -> dict[str, int]:
    """Letters handed to the provider (or on their way) per official since a time."""
    query = (
        select(Target.slug, func.count())
        .join(Message, Message.target_id == Target.id)
        .where(Message.kind == "letter", Message.created_at >= since, Message.status != "cancelled")
        .group_by(Target.slug)
    )
    return {slug: n for slug, n in session.execute(query)}


def letter_times_since(session: Session, since: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(official's slug, when) of each letter message created since a time."""
    query = (
        select(Target.slug, Message.created_at)
        .join(Message, Message.target_id == Target.id)
        .where(Message.kind == "letter", Message.created_at >= since, Message.status != "cancelled")
    )
    return [(slug, created) for slug, created in session.execute(query)]


def pending_letters_per_campaign(session: Session) -> dict[str, int]:
    query = (
        select(Campaign.slug, func.count())
        .join(Letter, Letter.campaign_id == Campaign.id)
        .where(Letter.status == "pending")
        .group_by(Campaign.slug)
    )
    return {slug: n for slug, n in session.execute(query)}


def _segment_filter(
    session: Session, segment: Mapping[str, Sequence[str]], subscribed_only: bool = True
) -> list[Any]:
    conditions: list[Any] = [Supporter.subscribed.is_(True)] if subscribed_only else []
    if segment.get("locale"):
        conditions.append(Supporter.locale.in_(segment["locale"]))
    if segment.get("governorate"):
        indexes = [vault(session).index(g, "governorate") for g in segment["governorate"]]
        conditions.append(Supporter.governorate_index.in_(indexes))
    if segment.get("tag"):
        indexes = [vault(session).index(t, "tag") for t in segment["tag"]]
        tagged = select(SupporterTag.supporter_id).where(SupporterTag.tag_index.in_(indexes))
        conditions.append(Supporter.id.in_(tagged))
    return conditions


def supporters_page(
    session: Session, segment: Mapping[str, Sequence[str]], after_id: int, limit: int
) -> list[Supporter]:
    """A keyset page of the supporters of a segment, subscribed or not (for coordinators' lists)."""
    conditions = _segment_filter(session, segment, subscribed_only=False)
    query = select(Supporter).where(Supporter.id > after_id, *conditions).order_by(Supporter.id).limit(limit)
    return list(session.scalars(query))


def get_supporters(session: Session, ids: Iterable[int]) -> dict[int, Supporter]:
    """Supporters to write to: their tags are not decrypted unless asked for."""
    query = select(Supporter).where(Supporter.id.in_(list(ids))).options(defer(Supporter.tags))
    return {s.id: s for s in session.scalars(query)}


def is_suppressed(session: Session, email_index: str, scope: str) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(Suppression.email_index == email_index, Suppression.scope == scope)
        )
    )


# Targets


def targets_by_slug(session: Session, slugs: Iterable[str]) -> dict[str, Target]:
    return {t.slug: t for t in session.scalars(select(Target).where(Target.slug.in_(list(slugs))))}


def list_targets(session: Session) -> Sequence[Target]:
    return session.scalars(select(Target).order_by(Target.slug)).all()


# Mailouts


def find_mailout(session: Session, campaign_id: int, segment_key: str) -> Mailout | None:
    return session.scalar(
        select(Mailout).where(Mailout.campaign_id == campaign_id, Mailout.segment_key == segment_key)
    )


def create_mailout(session: Session, mailout: Mailout) -> Mailout | None:
    """Insert a mailout; None when one for the same campaign and segment exists (a concurrent launch won)."""
    try:
        with session.begin_nested():
            session.add(mailout)
            session.flush()
    except IntegrityError:
        return None
    return mailout


def get_mailout(session: Session, mailout_id: int) -> Mailout:
    mailout = session.get(Mailout, mailout_id)
    if mailout is None:
        raise NotFoundError(N_("no mailout %(id)d"), id=mailout_id)
    return mailout


def snapshot_alerts(session: Session, mailout_id: int, campaign: Campaign, locales: Iterable[str]) -> None:
    """Keep the campaign's alert in these locales as the mailout sends it; a snapshot taken is never
    replaced (a relaunch after a reload adds only locales the mailout did not have)."""
    rows = []
    for code in sorted(set(locales)):
        content = get_content(session, campaign.id, "alert", code)
        rows.append(
            {
                "mailout_id": mailout_id,
                "locale": code,
                "title": campaign.title.get(code) or campaign.title[campaign.default_locale],
                "subject": content.subject,
                "preheader": content.preheader,
                "body": content.body,
            }
        )
    if rows:
        statement = _insert(session)(MailoutContent).on_conflict_do_nothing(
            index_elements=["mailout_id", "locale"]
        )
        session.execute(statement, rows)


def mailout_alert(session: Session, mailout: Mailout, locale: str) -> MailoutContent:
    """The alert a mailout sends in a locale: its snapshot (mailouts launched before snapshots existed
    read the campaign's current content)."""
    snapshot = session.scalar(
        select(MailoutContent).where(MailoutContent.mailout_id == mailout.id, MailoutContent.locale == locale)
    )
    if snapshot is not None:
        return snapshot
    campaign = get_campaign_by_id(session, mailout.campaign_id)
    content = get_content(session, campaign.id, "alert", locale)
    title = campaign.title.get(locale) or campaign.title[campaign.default_locale]
    return MailoutContent(
        mailout_id=mailout.id,
        locale=locale,
        title=title,
        subject=content.subject,
        preheader=content.preheader,
        body=content.body,
    )


def snapshot_locales(session: Session, mailout_id: int) -> set[str]:
    return set(session.scalars(select(MailoutContent.locale).where(MailoutContent.mailout_id == mailout_id)))


def add_messages(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ledger rows, skipping those whose idempotency key exists; the number inserted."""
    if not rows:
        return 0
    # Parameters apart from the statement: compiled once and cached, sent as SQLAlchemy's batched
    # "insertmanyvalues". Count what RETURNING gives back (rowcount is unreliable for multi-row inserts).
    statement = _insert(session)(Message).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return len(session.execute(statement.returning(Message.id), list(rows)).all())


#: The ledger's and the mailouts' tables for the send path's statements: plain Core statements skip the ORM's
#: bulk-update and row-loading steps, which cost more than the database's own work on a 1000-row batch.
_LEDGER = cast(Table, Message.__table__)
_MAILOUTS = cast(Table, Mailout.__table__)
_SUPPORTERS = cast(Table, Supporter.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)


def _mailout_running() -> Any:
    """Messages outside a mailout (tests, letters) or whose mailout is running."""
    running = select(_MAILOUTS.c.id).where(_MAILOUTS.c.status == "running")
    return or_(_LEDGER.c.mailout_id.is_(None), _LEDGER.c.mailout_id.in_(running))


def _held(claimed_at: dt.datetime | None) -> list[Any]:
    """Rows still 'sending' under the claim stamped ``claimed_at`` (None: under any claim). A claim the
    sweeper took back and another worker won since is no longer the first worker's: its writes must miss."""
    held = [_LEDGER.c.status == "sending"]
    if claimed_at is not None:
        held.append(_LEDGER.c.claimed_at == claimed_at)
    return held


@dataclass(frozen=True, slots=True)
class Claimed:
    """A ledger row a worker won: what composing needs of it, read back by the claim itself."""

    id: int
    kind: str
    idempotency_key: str
    mailout_id: int | None
    supporter_id: int | None
    target_id: int | None
    letter_id: int | None
    content_locale: str
    attempts: int


def claim_messages(session: Session, message_ids: Sequence[int], now: dt.datetime) -> list[int]:
    """The ids of :func:`claim_rows`."""
    return [row.id for row in claim_rows(session, message_ids, now)]


def claim_rows(session: Session, message_ids: Sequence[int], now: dt.datetime) -> list[Claimed]:
    """Move queued messages to 'sending' and return the rows this caller won (others skipped them), in id
    order, read back by the same statement. ``now`` is stamped as ``claimed_at``: the caller passes it
    back to its later writes (see :func:`_held`)."""
    c = _LEDGER.c
    statement = _by_ids(
        update(_LEDGER)
        .where(
            _among(session, c.id, message_ids),
            c.status == "queued",
            (c.not_before.is_(None)) | (c.not_before <= now),
            _mailout_running(),
        )
        .values(status="sending", claimed_at=now, attempts=c.attempts + 1, updated_at=now)
        .returning(
            c.id,
            c.kind,
            c.idempotency_key,
            c.mailout_id,
            c.supporter_id,
            c.target_id,
            c.letter_id,
            c.content_locale,
            c.attempts,
        )
    )
    return sorted((Claimed(*row) for row in session.execute(statement)), key=lambda row: row.id)


@dataclass(frozen=True, slots=True)
class AlertRecipient:
    """A supporter as an alert needs them: decrypted, and whether their address is suppressed."""

    id: int
    email: str
    name: str
    governorate: str | None
    suppressed: bool


def alert_recipients(session: Session, supporter_ids: Iterable[int]) -> dict[int, AlertRecipient]:
    """The supporters of a batch and their suppression, in one query (no objects, no tags decrypted)."""
    people, suppressions = _SUPPORTERS.c, _SUPPRESSIONS.c
    suppressed = exists().where(
        suppressions.email_index == people.email_index, suppressions.scope == "supporter"
    )
    query = select(
        people.id, people.email, people.name, people.governorate, suppressed.label("suppressed")
    ).where(_among(session, people.id, list(supporter_ids)))
    return {
        key: AlertRecipient(key, email, name, governorate, bool(barred))
        for key, email, name, governorate, barred in session.execute(query)
    }


def mark_provider_called(
    session: Session, message_ids: Sequence[int], now: dt.datetime, claimed_at: dt.datetime | None = None
) -> list[int]:
    """Stamp claimed messages just before the provider call, if their mailout still runs and the claim is
    still the caller's; the ids stamped."""
    statement = _by_ids(
        update(_LEDGER)
        .where(_among(session, _LEDGER.c.id, message_ids), *_held(claimed_at), _mailout_running())
        .values(provider_called_at=now, updated_at=now)
        .returning(_LEDGER.c.id)
    )
    return sorted(session.scalars(statement).all())


def release_messages(
    session: Session,
    message_ids: Sequence[int],
    now: dt.datetime,
    claimed_at: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
) -> None:
    """Give claimed messages back, untried: they go to the queue again (not before ``not_before`` when
    given), and the claim does not count."""
    if not message_ids:
        return
    later = {"not_before": not_before} if not_before is not None else {}
    session.execute(
        update(Message)
        .where(Message.id.in_(list(message_ids)), *_held(claimed_at))
        .values(
            status="queued",
            attempts=Message.attempts - 1,
            claimed_at=None,
            provider_called_at=None,
            dispatched_at=None,
            updated_at=now,
            **later,
        )
    )


_PROVIDER_PAUSE = "provider-pause:"


def pause_provider(session: Session, provider: str, until: dt.datetime) -> None:
    """Nobody calls this provider before ``until`` (it answered 429): one pause for every worker."""
    key = _PROVIDER_PAUSE + provider
    moved = _changed(
        session,
        update(Throttle).where(Throttle.key == key, Throttle.expires_at < until).values(expires_at=until),
    )
    if not moved:
        statement = _insert(session)(Throttle).on_conflict_do_nothing(index_elements=["key"])
        session.execute(statement, [{"key": key, "hits": 0, "expires_at": until}])


def provider_paused_until(
    session: Session, now: dt.datetime, provider: str | None = None
) -> dt.datetime | None:
    """Until when a provider (or, without a name, any provider) asked us to wait; None when it did not."""
    key = Throttle.key == _PROVIDER_PAUSE + provider if provider else Throttle.key.startswith(_PROVIDER_PAUSE)
    until = session.scalar(select(func.max(Throttle.expires_at)).where(key))
    if until is None:
        return None
    until = until.replace(tzinfo=dt.UTC) if until.tzinfo is None else until
    return until if until > now else None


def pause_mailout(session: Session, mailout_id: int, reason: str | None = None) -> bool:
    """running -> paused; True when this call paused it."""
    result = _changed(
        session,
        update(Mailout)
        .where(Mailout.id == mailout_id, Mailout.status == "running")
        .values(status="paused", status_reason=reason),
    )
    return bool(result)


def set_mailout_status(session: Session, mailout_id: int, expected: Sequence[str], status: str) -> bool:
    """Change a mailout's status only from one of ``expected``; True when it changed."""
    result = _changed(
        session,
        update(Mailout)
        .where(Mailout.id == mailout_id, Mailout.status.in_(list(expected)))
        .values(status=status, status_reason=None),
    )
    return bool(result)


def cancel_queued_messages(session: Session, mailout_id: int, now: dt.datetime) -> int:
    """Every message of a cancelled mailout still waiting becomes 'cancelled'."""
    result = _changed(
        session,
        update(Message)
        .where(Message.mailout_id == mailout_id, Message.status == "queued")
        .values(status="cancelled", updated_at=now),
    )
    return result


def in_flight_count(session: Session, mailout_id: int) -> int:
    """Messages of a mailout being handed to the provider right now."""
    return int(
        session.scalar(
            select(func.count()).where(
                Message.mailout_id == mailout_id,
                Message.status == "sending",
                Message.provider_called_at.is_not(None),
            )
        )
        or 0
    )


def mark_dispatched(
    session: Session, mailout_id: int, now: dt.datetime, redispatch_before: dt.datetime
) -> dict[str, list[int]]:
    """Stamp the messages of a mailout that are due and not on the queue (or whose task got lost).

    Returns their ids per content locale (what is sent, not what the supporter reads: a fallback's readers
    share the batches of its content): the caller queues them after the commit.
    """
    statement = (
        update(Message)
        .where(
            Message.mailout_id == mailout_id,
            Message.status == "queued",
            (Message.not_before.is_(None)) | (Message.not_before <= now),
            (Message.dispatched_at.is_(None)) | (Message.dispatched_at < redispatch_before),
        )
        .values(dispatched_at=now)
        .returning(Message.id, Message.content_locale)
    )
    grouped: dict[str, list[int]] = {}
    for message_id, locale in session.execute(statement):
        grouped.setdefault(locale, []).append(message_id)
    return {locale: sorted(ids) for locale, ids in sorted(grouped.items())}


def forget_dispatch(session: Session, mailout_id: int) -> None:
    """Make every waiting message of a mailout due for queueing again (after a resume)."""
    session.execute(
        update(Message)
        .where(Message.mailout_id == mailout_id, Message.status == "queued")
        .values(dispatched_at=None)
    )


def mailouts_with_status(session: Session, statuses: Sequence[str]) -> list[Mailout]:
    return list(
        session.scalars(select(Mailout).where(Mailout.status.in_(list(statuses))).order_by(Mailout.id))
    )


#: A message that fails before reaching the provider (composing raises, the worker dies) the same way each
#: time is given up after this many attempts, with its reason.
MAX_PREPARE_ATTEMPTS = 3


def sweep_expired_claims(
    session: Session, claimed_before: dt.datetime, now: dt.datetime, max_attempts: int = MAX_PREPARE_ATTEMPTS
) -> tuple[int, int, int]:
    """Rows left 'sending' by a dead worker: back to the queue if the provider was never called, else
    'unknown' (it may have left; never sent again automatically). The claim that died counts as an attempt:
    a row that kills its worker every time (a poison message) is 'failed' at ``max_attempts`` instead of
    being tried forever. Returns (requeued, unknown, failed)."""
    expired = (Message.status == "sending", Message.claimed_at < claimed_before)
    failed = _changed(
        session,
        update(Message)
        .where(*expired, Message.provider_called_at.is_(None), Message.attempts >= max_attempts)
        .values(
            status="failed",
            error="gave up: the worker stopped every time it prepared this message",
            updated_at=now,
        ),
    )
    requeued = _changed(
        session,
        update(Message)
        .where(*expired, Message.provider_called_at.is_(None))
        .values(status="queued", claimed_at=None, dispatched_at=None, updated_at=now),
    )
    unknown = _changed(
        session,
        update(Message)
        .where(*expired, Message.provider_called_at.is_not(None))
        .values(status="unknown", error="worker lost while the provider was being called", updated_at=now),
    )
    return requeued, unknown, failed


def get_messages(session: Session, ids: Sequence[int]) -> list[Message]:
    return list(session.scalars(select(Message).where(Message.id.in_(list(ids))).order_by(Message.id)))


def finish_messages(
    session: Session,
    message_ids: Sequence[int],
    status: str,
    now: dt.datetime,
    claimed_at: dt.datetime | None = None,
    **values: Any,
) -> None:
    """Record one outcome for claimed messages (only those still 'sending' under the caller's claim): one
    statement for a chunk."""
    for start in range(0, len(message_ids), 1000):  # a provider call's rows: one statement
        session.execute(
            _by_ids(
                update(_LEDGER)
                .where(_among(session, _LEDGER.c.id, message_ids[start : start + 1000]), *_held(claimed_at))
                .values(status=status, updated_at=now, **values)
            )
        )


def message_counts(session: Session, mailout_id: int) -> dict[str, dict[str, int]]:
    """Counts of messages by locale and status."""
    rows = session.execute(
        select(Message.locale, Message.status, func.count())
        .where(Message.mailout_id == mailout_id)
        .group_by(Message.locale, Message.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for locale, status, count in rows:
        counts.setdefault(locale, {})[status] = count
    return counts


def sample_provider_ids(session: Session, mailout_id: int) -> dict[str, str]:
    """One sent message's provider id per locale (the demo shows where to look)."""
    rows = session.execute(
        select(Message.locale, func.min(Message.provider_message_id))
        .where(Message.mailout_id == mailout_id, Message.status == "sent")
        .group_by(Message.locale)
    )
    return {locale: provider_id for locale, provider_id in rows if provider_id}


def finish_mailout_if_done(session: Session, mailout_id: int, now: dt.datetime) -> bool:
    """Mark a running mailout finished when no message is left to send; True when this call did it."""
    pending = exists().where(Message.mailout_id == mailout_id, Message.status.in_(("queued", "sending")))
    result = _changed(
        session,
        update(Mailout)
        .where(Mailout.id == mailout_id, Mailout.status == "running", Mailout.listing.is_(False), ~pending)
        .values(status="finished", finished_at=now),
    )
    return bool(result)


def suppressed_indexes(session: Session, email_indexes: Sequence[str], scope: str) -> set[str]:
    """Which of these addresses (by blind index) are suppressed in a scope."""
    found: set[str] = set()
    for start in range(0, len(email_indexes), 500):
        chunk = list(email_indexes[start : start + 500])
        found.update(
            session.scalars(
                select(Suppression.email_index).where(
                    Suppression.email_index.in_(chunk), Suppression.scope == scope
                )
            )
        )
    return found


def count_segment_by_locale(session: Session, segment: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Supporters of a segment who are not suppressed, per locale."""
    suppressed = exists().where(
        and_(Suppression.email_index == Supporter.email_index, Suppression.scope == "supporter")
    )
    rows = session.execute(
        select(Supporter.locale, func.count())
        .where(~suppressed, *_segment_filter(session, segment))
        .group_by(Supporter.locale)
    )
    return {locale: count for locale, count in rows}


def list_mailout_page(
    session: Session,
    mailout_id: int,
    segment: Mapping[str, Sequence[str]],
    plan: Mapping[str, str],
    after_id: int,
    limit: int,
    now: dt.datetime,
    dispatch: bool,
) -> tuple[int | None, bool, list[tuple[int, str, int]]]:
    """Write the ledger rows of the next keyset page of a segment in the database itself (``INSERT ...
    SELECT ... ON CONFLICT DO NOTHING``): nothing crosses the wire but the new rows' ids, and a page that
    writes every row it lists is one statement.

    Returns the last supporter id of the page (None when the segment has no more), whether it was the last
    page (shorter than ``limit``), and the (id, content locale, supporter id) of the rows written, stamped
    dispatched when ``dispatch`` (the caller queues them after the commit)."""
    if not plan:  # nobody in the segment reads a language the mailout sends
        return None, False, []
    suppressed = exists().where(
        and_(Suppression.email_index == Supporter.email_index, Suppression.scope == "supporter")
    )
    conditions = [~suppressed, Supporter.locale.in_(list(plan)), *_segment_filter(session, segment)]
    page = (
        select(Supporter.id).where(Supporter.id > after_id, *conditions).order_by(Supporter.id).limit(limit)
    )
    stamp = literal(now, UTCDateTime())
    rows = (
        select(
            literal(f"alert:{mailout_id}:") + sql_cast(Supporter.id, String),
            literal("alert"),
            literal(mailout_id, BigInteger()),
            Supporter.id,
            Supporter.locale,
            case(dict(plan), value=Supporter.locale),
            literal("queued"),
            literal(0),
            stamp,
            stamp,
            stamp if dispatch else null(),
        )
        .where(Supporter.id.in_(page.scalar_subquery()))
        .order_by(Supporter.id)  # ledger ids in the supporters' order, as a page was always written
    )
    columns = ["idempotency_key", "kind", "mailout_id", "supporter_id", "locale", "content_locale"]
    columns += ["status", "attempts", "created_at", "updated_at", "dispatched_at"]
    ledger = Message.__table__
    statement = (
        _insert(session)(ledger)
        .from_select(columns, rows, include_defaults=False)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(ledger.c.id, ledger.c.content_locale, ledger.c.supporter_id)
    )
    # Core, not the ORM: a thousand returned ids need no bulk-persistence bookkeeping.
    returned = session.connection().execute(statement).all()
    written = cast(list[tuple[int, str, int]], returned)  # rows as they come: (id, content, supporter)
    if len(returned) == limit:  # a whole page written: it ends at its last supporter, and more may follow
        end, short = max(row[2] for row in returned), False
    else:  # the last page, or rows that were there already (a relaunch): ask where the page ends
        listed = page.subquery()
        end, count = session.execute(select(func.max(listed.c.id), func.count()).select_from(listed)).one()
        if end is None:
            return None, False, written
        short = count < limit
    advance_checkpoint(session, mailout_id, end)
    return end, short, written


def refresh_ledger_statistics(session: Session) -> None:
    """Let PostgreSQL's planner see a ledger that a launch has just grown: until autovacuum gets to it, the
    statistics of a near-empty table send the letters queue's queries through a mailout's queued rows."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE message"))


def set_listing(session: Session, mailout_id: int, listing: bool) -> None:
    session.execute(update(Mailout).where(Mailout.id == mailout_id).values(listing=listing))


def advance_checkpoint(session: Session, mailout_id: int, supporter_id: int) -> None:
    session.execute(
        update(Mailout)
        .where(Mailout.id == mailout_id, Mailout.checkpoint < supporter_id)
        .values(checkpoint=supporter_id)
    )


# Letters


def supporter_by_index(session: Session, email_index: str) -> Supporter | None:
    return session.scalar(select(Supporter).where(Supporter.email_index == email_index))


def subscribe_unless_suppressed(session: Session, supporter_id: int) -> bool:
    """Subscribe a supporter who asked to be (never over an unsubscribe, a bounce or a complaint)."""
    index = session.scalar(select(Supporter.email_index).where(Supporter.id == supporter_id))
    if index is None or is_suppressed(session, index, "supporter"):
        return False
    session.execute(update(Supporter).where(Supporter.id == supporter_id).values(subscribed=True))
    return True


def supporter_index(session: Session, supporter_id: int) -> str | None:
    return session.scalar(select(Supporter.email_index).where(Supporter.id == supporter_id))


def supporter_id_by_index(session: Session, email_index: str) -> int | None:
    """Without loading the personal columns: a process holding only the public key can ask this."""
    return session.scalar(select(Supporter.id).where(Supporter.email_index == email_index))


def letter_id_by_submission(session: Session, submission: str) -> int | None:
    return session.scalar(select(Letter.id).where(Letter.submission == submission))


def get_letter(session: Session, letter_id: int) -> Letter:
    letter = session.get(Letter, letter_id)
    if letter is None:
        raise NotFoundError(N_("no letter %(id)d"), id=letter_id)
    return letter


def confirm_letter(session: Session, letter_id: int, now: dt.datetime) -> bool:
    """pending -> confirmed; True only for the call that confirmed it (a second click does nothing)."""
    result = _changed(
        session,
        update(Letter)
        .where(Letter.id == letter_id, Letter.status == "pending")
        .values(status="confirmed", confirmed_at=now),
    )
    return bool(result)


def active_targets(session: Session, slugs: Sequence[str]) -> list[Target]:
    """The officials named, in the order given, that can receive letters."""
    found = targets_by_slug(session, slugs)
    return [found[slug] for slug in slugs if slug in found and found[slug].status == "active"]


#: Emails to a letter's writer (about their own letter): they go at once, never paced like letters.
TO_WRITERS = ("confirm", "copy", "reply_notice", "follow_up")


def mark_letters_dispatched(
    session: Session, now: dt.datetime, redispatch_before: dt.datetime, per_target_cap: dict[int, int] | None
) -> list[int]:
    """Stamp the due rows of the letters queue and return their ids: confirmations and copies at once,
    letters to an official at most ``per_target_cap[target]`` more (None: no letter may go now)."""
    due = (
        Message.mailout_id.is_(None),
        Message.status == "queued",
        (Message.not_before.is_(None)) | (Message.not_before <= now),
        (Message.dispatched_at.is_(None)) | (Message.dispatched_at < redispatch_before),
    )
    ids = list(session.scalars(select(Message.id).where(*due, Message.kind.in_(TO_WRITERS))))
    if per_target_cap is not None:
        waiting = session.execute(
            select(Message.id, Message.target_id).where(*due, Message.kind == "letter").order_by(Message.id)
        )
        taken: dict[int, int] = {}
        for message_id, target_id in waiting:
            if target_id is None:
                continue
            if taken.get(target_id, 0) < per_target_cap.get(target_id, 0):
                taken[target_id] = taken.get(target_id, 0) + 1
                ids.append(message_id)
    if not ids:
        return []
    statement = (
        update(Message).where(Message.id.in_(ids), *due).values(dispatched_at=now).returning(Message.id)
    )
    return sorted(session.scalars(statement).all())


def letters_released_since(session: Session, since: dt.datetime) -> dict[int, int]:
    """Letters per official handed to the queue since a time (for the hourly cap)."""
    rows = session.execute(
        select(Message.target_id, func.count())
        # Written into the statement: a partial index serves it only when the planner sees the value.
        .where(Message.kind == literal("letter", literal_execute=True), Message.dispatched_at >= since)
        .group_by(Message.target_id)
    )
    return {target_id: count for target_id, count in rows if target_id is not None}


def letter_targets_waiting(session: Session) -> list[int]:
    rows = session.scalars(
        # Letters have no mailout: the (mailout, status) index finds them, never a mailout's queued rows.
        select(Message.target_id)
        .where(Message.mailout_id.is_(None), Message.kind == "letter", Message.status == "queued")
        .distinct()
    )
    return [t for t in rows if t is not None]


def letters_sent_count(session: Session, campaign_id: int) -> int:
    """Letters of a campaign handed to the provider (the action page's counter)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Message)
            .join(Letter, Message.letter_id == Letter.id)
            .where(Letter.campaign_id == campaign_id, Message.kind == "letter", Message.status == "sent")
        )
        or 0
    )


def campaigns_writing_to(session: Session, target_id: int) -> list[Campaign]:
    """Campaigns with letters waiting for an official (ids first: PostgreSQL cannot DISTINCT over JSON)."""
    waiting = (
        select(Letter.campaign_id)
        .join(Message, Message.letter_id == Letter.id)
        # Letters have no mailout: the (mailout, status) index finds them, never a mailout's queued rows.
        .where(Message.mailout_id.is_(None), Message.target_id == target_id, Message.status == "queued")
    )
    return list(session.scalars(select(Campaign).where(Campaign.id.in_(waiting))))


# Events and suppressions


#: Ids per IN list: a webhook batch can name tens of thousands, past SQLite's limit on parameters.
EVENT_CHUNK = 1000


def _id_chunks(ids: Iterable[int]) -> list[list[int]]:
    unique = sorted(set(ids))
    return [unique[start : start + EVENT_CHUNK] for start in range(0, len(unique), EVENT_CHUNK)]


def existing_message_ids(session: Session, ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _id_chunks(ids):
        found.update(session.scalars(select(Message.id).where(Message.id.in_(chunk))))
    return found


def messages_by_id(session: Session, ids: Iterable[int]) -> dict[int, Message]:
    """Ledger rows by id, loaded together and held (the session alone keeps unchanged rows weakly:
    looking each one up again per event would cost a query per event)."""
    found: dict[int, Message] = {}
    for chunk in _id_chunks(ids):
        found.update((m.id, m) for m in session.scalars(select(Message).where(Message.id.in_(chunk))))
    return found


def add_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert events, skipping those already stored (same dedupe key); the ids of the new ones."""
    if not rows:
        return []
    statement = _insert(session)(Event).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return sorted(session.execute(statement.returning(Event.id), list(rows)).scalars().all())


def events_in_order(session: Session, ids: Sequence[int]) -> list[Event]:
    """Events by when they happened (batches arrive out of order), then by arrival."""
    found: list[Event] = []
    for chunk in _id_chunks(ids):
        found.extend(session.scalars(select(Event).where(Event.id.in_(chunk))))
    return sorted(found, key=lambda e: (e.occurred_at, e.id))


def claim_events(session: Session, ids: Sequence[int], now: dt.datetime) -> list[int]:
    """Mark events applied and return the ids this caller won: an event already applied (or being
    applied by a racing task, which holds its row until it commits) is skipped, so effects happen once."""
    claimed: list[int] = []
    for chunk in _id_chunks(ids):
        statement = (
            update(Event)
            .where(Event.id.in_(chunk), Event.applied_at.is_(None))
            .values(applied_at=now)
            .returning(Event.id)
        )
        claimed.extend(session.scalars(statement))
    return sorted(claimed)


def unapplied_event_ids(
    session: Session, received_before: dt.datetime, after_id: int, limit: int
) -> list[int]:
    """One keyset page of events stored before a time whose effects were never applied (a lost task)."""
    return list(
        session.scalars(
            select(Event.id)
            .where(Event.applied_at.is_(None), Event.received_at <= received_before, Event.id > after_id)
            .order_by(Event.id)
            .limit(limit)
        )
    )


def add_suppression(
    session: Session, email_index: str, scope: str, reason: str, source: str, email: str | None = None
) -> int:
    """1 when this (address, scope, reason) is new, 0 when it was there already. ``email`` is kept
    (encrypted) only for an address we hold nowhere else, so that coordinators can list it."""
    statement = _insert(session)(Suppression).on_conflict_do_nothing(
        index_elements=["email_index", "scope", "reason"]
    )
    row = {
        "email_index": email_index,
        "email": email,
        "scope": scope,
        "reason": reason,
        "source": source[:300],
        "created_at": dt.datetime.now(dt.UTC),
    }
    return len(session.execute(statement.returning(Suppression.id), [row]).all())


def suppress_for_message(session: Session, message: Message, reason: str, source: str) -> int:
    """Suppress the address a message went to: an official (marked ``bounced`` on a hard bounce, which
    the coordinator sees in ``mailer targets list``) or a supporter (no longer subscribed)."""
    if message.kind == "letter" and message.target_id:
        target = session.get(Target, message.target_id)
        if target is None:
            return 0
        if reason == "hard_bounce":
            target.status = "bounced"
        return add_suppression(session, vault(session).address_index(target.email), "target", reason, source)
    index = session.scalar(select(Supporter.email_index).where(Supporter.id == (message.supporter_id or 0)))
    if index is None:
        return 0
    session.execute(update(Supporter).where(Supporter.id == message.supporter_id).values(subscribed=False))
    return add_suppression(session, index, "supporter", reason, source)


def remove_suppressions(session: Session, email_index: str, scope: str, reason: str | None) -> int:
    query = session.query(Suppression).filter(
        Suppression.email_index == email_index, Suppression.scope == scope
    )
    if reason:
        query = query.filter(Suppression.reason == reason)
    return int(query.delete())


def all_suppressions(session: Session) -> list[Suppression]:
    return list(session.scalars(select(Suppression).order_by(Suppression.created_at, Suppression.id)))


def unconfirmed_counts(session: Session, mailout_id: int, sent_before: dt.datetime) -> dict[str, int]:
    """Per locale: messages the provider accepted before a time and has said nothing about since."""
    rows = session.execute(
        select(Message.locale, func.count())
        .where(
            Message.mailout_id == mailout_id,
            Message.status == "sent",
            Message.delivery.is_(None),
            Message.sent_at < sent_before,
        )
        .group_by(Message.locale)
    )
    return {locale: count for locale, count in rows}


def delivered_and_complained(session: Session, mailout_id: int) -> tuple[int, int]:
    """Messages of a mailout the provider delivered (a complaint means it was delivered too), and complaints."""
    rows = dict(
        session.execute(
            select(Message.delivery, func.count())
            .where(Message.mailout_id == mailout_id, Message.delivery.in_(("delivered", "complained")))
            .group_by(Message.delivery)
        ).all()
    )
    complained = int(rows.get("complained", 0))
    return int(rows.get("delivered", 0)) + complained, complained


def delivery_counts(session: Session, mailout_id: int) -> dict[str, dict[str, int]]:
    """Per locale: how many messages each provider-reported delivery state reached."""
    rows = session.execute(
        select(Message.locale, Message.delivery, func.count())
        .where(Message.mailout_id == mailout_id, Message.delivery.is_not(None))
        .group_by(Message.locale, Message.delivery)
    )
    counts: dict[str, dict[str, int]] = {}
    for locale, delivery, count in rows:
        if delivery is not None:
            counts.setdefault(locale, {})[delivery] = count
    return counts


def message_moments(
    session: Session, mailout_id: int
) -> list[tuple[dt.datetime | None, str | None, dt.datetime | None, str, dt.datetime]]:
    """(sent at, delivery state, delivery at, status, last change) of each message of a mailout."""
    query = select(
        Message.sent_at, Message.delivery, Message.delivery_at, Message.status, Message.updated_at
    ).where(Message.mailout_id == mailout_id)
    return [(a, b, c, d, e) for a, b, c, d, e in session.execute(query)]


def unsubscribed_counts(session: Session, mailout_id: int) -> dict[str, int]:
    """Per locale: messages of a mailout whose reader unsubscribed through them."""
    rows = session.execute(
        select(Message.locale, func.count(func.distinct(Message.id)))
        .join(Event, Event.message_id == Message.id)
        .where(Message.mailout_id == mailout_id, Event.event_type.in_(("unsubscribed", "group_unsubscribed")))
        .group_by(Message.locale)
    )
    return {locale: count for locale, count in rows}


def letters_per_target(session: Session, campaign_id: int) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(Target.slug, Message.status, func.count())
        .join(Message, Message.target_id == Target.id)
        .join(Letter, Message.letter_id == Letter.id)
        .where(Letter.campaign_id == campaign_id, Message.kind == "letter")
        .group_by(Target.slug, Message.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for slug, status, count in rows:
        counts.setdefault(slug, {})[status] = count
    return counts


def mailouts_of_campaign(session: Session, campaign_id: int) -> list[int]:
    return list(
        session.scalars(select(Mailout.id).where(Mailout.campaign_id == campaign_id).order_by(Mailout.id))
    )


# Throttles: counters shared by every process (rate-limit windows, spent one-time proofs)


def throttle_hit(session: Session, key: str, expires_at: dt.datetime, now: dt.datetime) -> int:
    """Count one hit on a shared counter and return its count, in one statement (concurrent hits from
    other processes are counted, never lost). A counter found past its expiry starts again at 1."""
    insert = _insert(session)(Throttle).values(key=key, hits=1, expires_at=expires_at)
    expired = Throttle.expires_at <= now
    statement = insert.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "hits": case((expired, 1), else_=Throttle.hits + 1),
            "expires_at": case((expired, insert.excluded.expires_at), else_=Throttle.expires_at),
        },
    ).returning(Throttle.hits)
    return int(session.execute(statement).scalar_one())


def delete_expired_throttles(session: Session, now: dt.datetime) -> int:
    """Delete the counters whose window or lifetime has ended; how many were deleted (for the sweep)."""
    return _changed(session, delete(Throttle).where(Throttle.expires_at <= now))


# Inbound mail


def add_inbound(session: Session, row: dict[str, Any]) -> int | None:
    """Store a message unless one with its dedupe key is there; its id, or None when it was known."""
    statement = _insert(session)(InboundMessage).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return session.execute(statement.returning(InboundMessage.id), [row]).scalar()


def unprocessed_inbound_ids(session: Session, after_id: int, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(InboundMessage.id)
            .where(InboundMessage.processed_at.is_(None), InboundMessage.id > after_id)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
    )


def claim_inbound(session: Session, inbound_id: int, now: dt.datetime) -> bool:
    """True for the one caller that reads this message (a racing sweep waits for its row, then skips)."""
    return bool(
        _changed(
            session,
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id, InboundMessage.processed_at.is_(None))
            .values(processed_at=now),
        )
    )


def record_inbound(session: Session, inbound_id: int, **values: Any) -> None:
    session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(**values))


def ledger_row(session: Session, message_id: int) -> Message | None:
    return session.get(Message, message_id)


def recipient_index(session: Session, message: Message) -> str | None:
    """The blind index of the address a ledger row was sent to (an official's or a supporter's)."""
    if message.kind == "letter" and message.target_id:
        email = session.scalar(select(Target.email).where(Target.id == message.target_id))
        return vault(session).address_index(email) if email else None
    return session.scalar(select(Supporter.email_index).where(Supporter.id == (message.supporter_id or 0)))


def reply_notices_for_letter(session: Session, letter_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Message.letter_id == letter_id, Message.kind == "reply_notice")
        )
        or 0
    )


def get_target_by_id(session: Session, target_id: int) -> Target | None:
    return session.get(Target, target_id)


def inbound_for_notice(session: Session, idempotency_key: str) -> InboundMessage | None:
    """The reply a notice row tells of (its key is ``reply:<inbound id>``)."""
    kind, _, number = idempotency_key.partition(":")
    if kind != "reply" or not number.isdigit():
        return None
    return session.get(InboundMessage, int(number))


def letters_due_follow_up(
    session: Session, campaign_id: int, confirmed_before: dt.datetime
) -> list[tuple[int, int, str]]:
    """(letter, writer, locale) of a campaign's letters confirmed before a time, whose writer we still
    know, and that have no follow-up yet."""
    asked = select(Message.id).where(Message.kind == "follow_up", Message.letter_id == Letter.id)
    rows = session.execute(
        select(Letter.id, Letter.supporter_id, Letter.locale)
        .where(
            Letter.campaign_id == campaign_id,
            Letter.status == "confirmed",
            Letter.confirmed_at <= confirmed_before,
            Letter.supporter_id.is_not(None),
            ~asked.exists(),
        )
        .order_by(Letter.id)
    )
    return [(letter_id, supporter_id or 0, locale) for letter_id, supporter_id, locale in rows]


def letter_recipients(session: Session, letter_id: int) -> list[Target]:
    """The officials a letter was handed over to, in the order it went to them."""
    return list(
        session.scalars(
            select(Target)
            .join(Message, Message.target_id == Target.id)
            .where(Message.letter_id == letter_id, Message.kind == "letter", Message.status == "sent")
            .order_by(Message.id)
        )
    )


def answered_targets(session: Session, letter_id: int) -> set[int]:
    """Officials whose answer to a letter is known: a reply matched to it, or the writer said yes."""
    replied = session.scalars(
        select(InboundMessage.target_id).where(
            InboundMessage.letter_id == letter_id, InboundMessage.kind == "reply"
        )
    )
    said = session.scalars(
        select(LetterAnswer.target_id).where(
            LetterAnswer.letter_id == letter_id, LetterAnswer.answer == "yes"
        )
    )
    return {t for t in [*replied, *said] if t is not None}


def letter_answers(session: Session, letter_id: int) -> dict[int, str]:
    rows = session.execute(
        select(LetterAnswer.target_id, LetterAnswer.answer).where(LetterAnswer.letter_id == letter_id)
    )
    return {target_id: answer for target_id, answer in rows}


def set_letter_answers(
    session: Session, letter_id: int, answers: Mapping[int, str], now: dt.datetime
) -> None:
    """One answer per (letter, official): a new one replaces the old, so that it is counted once."""
    if not answers:
        return
    statement = _insert(session)(LetterAnswer)
    statement = statement.on_conflict_do_update(
        index_elements=["letter_id", "target_id"],
        set_={"answer": statement.excluded.answer, "answered_at": statement.excluded.answered_at},
    )
    session.execute(
        statement,
        [
            {"letter_id": letter_id, "target_id": target_id, "answer": answer, "answered_at": now}
            for target_id, answer in answers.items()
        ],
    )


def responses_per_target(session: Session, campaign_id: int) -> dict[str, dict[str, int]]:
    """Per official (slug) of a campaign: letters handed over, letters with a matched reply or an
    automatic answer, the writers' answers, and letters known to be answered (reply or "yes", once)."""
    counts: dict[str, dict[str, int]] = {}

    def row(slug: str) -> dict[str, int]:
        return counts.setdefault(
            slug,
            {"letters": 0, "replies": 0, "auto_replies": 0, "yes": 0, "no": 0, "not_yet": 0, "answered": 0},
        )

    of_campaign = Letter.campaign_id == campaign_id
    sent = session.execute(
        select(Target.slug, func.count())
        .join(Message, Message.target_id == Target.id)
        .join(Letter, Message.letter_id == Letter.id)
        .where(of_campaign, Message.kind == "letter", Message.status == "sent")
        .group_by(Target.slug)
    )
    for slug, number in sent:
        row(slug)["letters"] = number
    for kind, column in (("reply", "replies"), ("auto_reply", "auto_replies")):
        matched = session.execute(
            select(Target.slug, func.count(InboundMessage.letter_id.distinct()))
            .join(InboundMessage, InboundMessage.target_id == Target.id)
            .join(Letter, InboundMessage.letter_id == Letter.id)
            .where(of_campaign, InboundMessage.kind == kind)
            .group_by(Target.slug)
        )
        for slug, number in matched:
            row(slug)[column] = number
    answers = session.execute(
        select(Target.slug, LetterAnswer.answer, func.count())
        .join(LetterAnswer, LetterAnswer.target_id == Target.id)
        .join(Letter, LetterAnswer.letter_id == Letter.id)
        .where(of_campaign)
        .group_by(Target.slug, LetterAnswer.answer)
    )
    for slug, answer, number in answers:
        row(slug)[answer] = number
    replied = (
        select(InboundMessage.letter_id.label("letter_id"), InboundMessage.target_id.label("target_id"))
        .where(InboundMessage.kind == "reply")
        .union(select(LetterAnswer.letter_id, LetterAnswer.target_id).where(LetterAnswer.answer == "yes"))
        .subquery()
    )
    answered = session.execute(
        select(Target.slug, func.count())
        .select_from(replied)
        .join(Target, Target.id == replied.c.target_id)
        .join(Letter, Letter.id == replied.c.letter_id)
        .where(of_campaign)
        .group_by(Target.slug)
    )
    for slug, number in answered:
        row(slug)["answered"] = number
    return counts


def inbound_of_campaign(
    session: Session, campaign_id: int, limit: int
) -> list[tuple[InboundMessage, str | None]]:
    """The latest replies and automatic answers to a campaign's letters, with the official's slug."""
    rows = session.execute(
        select(InboundMessage, Target.slug)
        .join(Letter, InboundMessage.letter_id == Letter.id)
        .outerjoin(Target, InboundMessage.target_id == Target.id)
        .where(Letter.campaign_id == campaign_id, InboundMessage.kind.in_(("reply", "auto_reply")))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    )
    return [(inbound, slug) for inbound, slug in rows]
