"""Mail that comes back: officials' replies, bounce reports, auto-replies and emailed unsubscribes.

Every door (SendGrid Inbound Parse, a mailbox read over IMAP, a pipe from a mail server) hands the raw
message to :func:`receive`, which stores it once, encrypted, and does nothing else: the web door may hold
only the public key. The sweep then reads what arrived (:func:`process_inbound`), each message in the
transaction of its effects, so that it acts once:

- mail to a tag we signed in the inbound address (``reply+TAG@domain``) is matched to the ledger row that
  carried the tag: ``u`` an alert's emailed unsubscribe, ``r`` a letter to an official, ``b`` the return
  path of a message sent over SMTP. A tag we did not sign matches nothing ("forged");
- a bounce report (a DSN, read with flufl.bounce) suppresses the address on a permanent failure and only
  counts a temporary one; it is trusted when it came to a ``b`` tag, or when the message it reports is
  one of ours and was sent to the address that failed;
- an automatic answer (RFC 3834 ``Auto-Submitted``, vacation and list headers) is never taken for a reply
  and never answered;
- an official's reply to a letter is kept for the supporter, who is told in their language and reads it
  through a signed link (their address is never shown to the official unless they chose it).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from flufl.bounce import all_failures
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailer.errors import N_, MailerError
from mailer.events import DELIVERY_RANK, unsubscribe_supporter
from mailer.letters import LetterSecrets, NotToSend, compose_to_writers, letter_ledger_row, official_line
from mailer.sending import ComposeContext, Composed, message_id_digest
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import InboundMessage, Letter
from mailer.store.models import Message as LedgerMessage
from mailer.store.repository import Claimed
from mailer.tokens import AddressTag, AddressTags, InvalidToken, TokenSigner
from mailer.vault import LockedError, UnreadableError, Vault, new_record_key, open_record, seal_record

log = logging.getLogger(__name__)

#: An official who answers many times still reaches a supporter's mailbox at most this often per letter.
MAX_NOTICES_PER_LETTER = 5
#: Messages read per transaction by the sweep.
PROCESS_CHUNK = 200
#: What is kept of a reply for the supporter: enough for any letter, never a whole mail archive.
MAX_REPLY_CHARS = 20_000
#: Headers that say a message was written by a program, not a person (RFC 3834, and what vacation
#: responders and list servers add where they do not follow it).
_AUTOMATIC_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply", "X-Vacation")
_AUTOMATIC_PRECEDENCE = ("auto_reply", "bulk", "junk", "list")
#: Where the envelope recipient shows in a delivered message (Postfix and Dovecot write these).
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")
_OUR_MESSAGE_ID = re.compile(r"<([a-z_]+)\.(\d+)\.([0-9a-f]{16})@([^>\s]+)>")
#: An emailed unsubscribe as alerts sent before tags had it: ``mailto:from?subject=unsubscribe TOKEN``.
_SUBJECT_UNSUBSCRIBE = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_.\-]{20,400})\s*$", re.IGNORECASE)


class InboundRejected(MailerError):
    """What a door was given is not a message we can store (empty, too large, not mail)."""


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def dedupe_key(vault: Vault, raw: bytes) -> str:
    """The same message stored once, whichever door it came through: by its Message-ID, or, without one,
    by what its sender wrote (the headers servers add on the way differ between doors)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    message_id = (message.get("Message-ID") or "").strip()
    if message_id:
        return "m:" + vault.index(message_id, "inbound")
    _, _, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    own = [str(message.get(h, "")) for h in ("From", "To", "Date", "Subject")]
    digest = hashlib.sha256(json.dumps(own).encode() + b"\0" + body.replace(b"\r\n", b"\n")).hexdigest()
    return "h:" + vault.index(digest, "inbound")


def receive(
    db: Database,
    raw: bytes,
    door: str,
    now: dt.datetime,
    max_bytes: int,
    recipients: Sequence[str] = (),
) -> int | None:
    """Store one message as it arrived; its id, or None when it was stored before. ``recipients`` are the
    envelope's (a door that knows them says so; a mailbox shows them in Delivered-To)."""
    if raw.startswith(b"From "):  # the mbox separator a mail server's pipe may put first (Postfix flags=F)
        raw = raw.partition(b"\n")[2]
    if not raw.strip():
        raise InboundRejected(N_("the message is empty"))
    if len(raw) > max_bytes:
        raise InboundRejected(
            N_("the message is %(size)d bytes; at most %(max)d are taken"), size=len(raw), max=max_bytes
        )
    if not re.match(rb"^[\x21-\x39\x3b-\x7e]+:", raw.lstrip()):
        raise InboundRejected(N_("this is not an email: it does not start with a header"))
    ours = [r.strip().lower() for r in recipients if "+" in r][:20]  # tags only: no one's address
    row = {
        "door": door,
        "dedupe_key": dedupe_key(db.vault, raw),
        "received_at": now,
        "size": len(raw),
        "raw": raw,
        "detail": {"to": ours} if ours else {},
    }
    with db.session() as session:
        return repo.add_inbound(session, row)


# Reading a message


@dataclass(frozen=True)
class Reading:
    """What a message is, before anything is done about it (pure: no database)."""

    kind: str  # reply, auto_reply, bounce, unsubscribe, forged, unmatched
    tag: AddressTag | None = None
    permanent: frozenset[str] = frozenset()
    temporary: frozenset[str] = frozenset()
    reported: tuple[tuple[str, int, str], ...] = ()  # (kind, ledger id, digest) of our messages it names
    unsubscribe_token: str | None = None


def is_automatic(message: Message) -> bool:
    """Written by a program (vacation, out of office, list server): never an answer, never answered."""
    submitted = str(message.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return True
    if any(message.get(name) is not None for name in _AUTOMATIC_HEADERS):
        return True
    precedence = str(message.get("Precedence", "")).strip().lower()
    return precedence in _AUTOMATIC_PRECEDENCE or message.get("List-Id") is not None


def _report_type(message: Message) -> str:
    """``delivery-status`` for a DSN, ``disposition-notification`` for a read receipt; "" for the rest."""
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "unknown") or "unknown").lower()


def _looks_like_a_bounce(message: Message, tag: AddressTag | None) -> bool:
    """Only such messages go through the bounce detectors: their heuristics must never take an official's
    answer that happens to say "undeliverable" for a bounce."""
    if (tag is not None and tag.kind == "bounce") or _report_type(message):
        return True
    sender = parseaddr(str(message.get("From", "")))[1].lower().partition("@")[0]
    return sender in ("mailer-daemon", "postmaster") or str(message.get("Return-Path", "")).strip() == "<>"


def _failures(message: EmailMessage) -> tuple[frozenset[str], frozenset[str]]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector that chokes on a strange message: it reports nothing
        log.exception("the bounce detectors failed on an inbound message")
        return frozenset(), frozenset()

    def text(addresses: Iterable[bytes | str]) -> frozenset[str]:
        found = (a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in addresses)
        return frozenset(a.strip().strip("<>").lower() for a in found if "@" in a)

    return text(temporary), text(permanent)


def _reported_messages(message: EmailMessage) -> tuple[tuple[str, int, str], ...]:
    """Our Message-IDs in the parts of a report that quote the original (its headers or all of it)."""
    found: dict[tuple[str, int, str], None] = {}
    for part in message.walk():
        if part.get_content_type() not in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            continue
        inner = part.get_payload()
        if isinstance(inner, list):  # message/rfc822: the quoted message, parsed
            quoted = " ".join(str(m.get("Message-ID", "")) for m in inner if isinstance(m, Message))
        else:
            data = part.get_payload(decode=True)
            quoted = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(inner)
        for kind, number, digest, _ in _OUR_MESSAGE_ID.findall(quoted):
            found[(kind, int(number), digest)] = None
    return tuple(found)


def read_message(message: EmailMessage, tags: AddressTags | None, envelope_to: Sequence[str] = ()) -> Reading:
    """What a message is: a bounce, an automatic answer, an unsubscribe, a reply to a letter, or nothing
    we asked for. Tags are read from the envelope, then from the headers a delivery writes."""
    addresses = list(envelope_to)
    for name in _RECIPIENT_HEADERS:
        addresses += [a for _, a in getaddresses([str(v) for v in message.get_all(name, [])]) if a]
    tag: AddressTag | None = None
    forged = False
    for address in addresses if tags is not None else []:
        try:
            tag = tags.read(address) if tags is not None else None
        except InvalidToken:
            forged = True
            continue
        if tag is not None:
            break
    if _looks_like_a_bounce(message, tag):
        temporary, permanent = _failures(message)
        if temporary or permanent or _report_type(message) == "delivery-status":
            return Reading("bounce", tag, permanent, temporary - permanent, _reported_messages(message))
    if _report_type(message):  # a read receipt (MDN) or another machine's report: never an answer
        return Reading("auto_reply", tag)
    if tag is not None and tag.kind == "unsubscribe":  # a mail program may send it for its user
        return Reading("unsubscribe", tag)
    if forged and tag is None:  # to an address of ours with a tag we never signed
        return Reading("forged")
    if is_automatic(message):
        return Reading("auto_reply", tag)
    if tag is not None:
        return Reading("reply" if tag.kind == "reply" else "unmatched", tag)
    token = _SUBJECT_UNSUBSCRIBE.match(str(message.get("Subject", "")))
    if token:
        return Reading("unsubscribe", unsubscribe_token=token.group(1))
    return Reading("unmatched")


# A reply as the supporter reads it


class _Text(HTMLParser):
    """The words of an HTML reply, with its paragraphs; scripts and styles left out (no markup is kept)."""

    _BREAKS = frozenset(("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "hr"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(" ".join(data.split()) if data.strip() else (" " if data else ""))


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


#: Where a reply stops and the message it answers is quoted: Outlook's header block (in the languages
#: our officials write in), "On ... wrote:", and the separators mail programs draw.
_QUOTE_STARTS = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|الرسالة الأصلية|الرسالة الاصلية|نامەی سەرەکی|peyama orîjînal)\s*-{2,}"
    r"|_{10,}"
    r"|(?:on|في|le|am)\b.{0,200}(?:wrote|كتب|a écrit|schrieb)\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_HEADER_BLOCK = re.compile(r"^\s*\**(?:from|من|لە|ji|de|von)\s*\**\s*:", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\**(?:sent|date|to|subject|أرسل|أُرسل|تم الإرسال|التاريخ|إلى|الموضوع|نێردرا|بۆ|بابەت)\s*\**\s*:",
    re.IGNORECASE,
)


def split_quoted(text: str) -> tuple[str, str]:
    """(the answer, the text it quotes): what the official wrote apart from our letter quoted back."""
    lines = text.replace("\r\n", "\n").split("\n")
    for at, line in enumerate(lines):
        header_block = _HEADER_BLOCK.match(line) and any(
            _HEADER_NEXT.match(n) for n in lines[at + 1 : at + 4]
        )
        if _QUOTE_STARTS.match(line) or header_block:
            return "\n".join(lines[:at]).strip(), "\n".join(lines[at:]).strip()
    # Quoting with ">" (Gmail, Thunderbird): from the first quoted line that only quotes follow.
    for at, line in enumerate(lines):
        if line.startswith(">") and all(not rest.strip() or rest.startswith(">") for rest in lines[at:]):
            answer = lines[:at]
            if answer and answer[-1].strip().endswith(":"):  # the "On ... wrote:" line before it
                answer = answer[:-1]
            return "\n".join(answer).strip(), "\n".join(lines[at:]).strip()
    return text.strip(), ""


def reply_text(message: EmailMessage) -> str:
    """The reply's text: its plain part, or the words of its HTML part (never its markup)."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, ValueError):  # an unknown charset: read what can be read
        data = body.get_payload(decode=True)
        content = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
    if not isinstance(content, str):
        return ""
    text = html_to_text(content) if body.get_content_type() == "text/html" else content
    return text[:MAX_REPLY_CHARS]


@dataclass(frozen=True)
class Reply:
    """An official's reply as it is kept for the supporter."""

    sender_name: str
    sender_email: str
    subject: str
    date: str  # ISO 8601, from the message's Date (the arrival time when it has none)
    answer: str
    quoted: str

    def seal(self, key: str) -> str:
        return seal_record(key, self.__dict__, "reply")

    @classmethod
    def open(cls, key: str, sealed: str) -> Reply:
        record = open_record(key, sealed, "reply")
        try:
            return cls(**{name: str(record[name]) for name in cls.__dataclass_fields__})
        except KeyError as err:
            raise UnreadableError(N_("a stored record does not open with its key")) from err


def make_reply(message: EmailMessage, received: dt.datetime) -> Reply:
    name, address = parseaddr(str(message.get("From", "")))
    try:
        date = parsedate_to_datetime(str(message.get("Date"))).astimezone(dt.UTC)
    except (TypeError, ValueError, IndexError):
        date = received
    answer, quoted = split_quoted(reply_text(message))
    return Reply(
        name[:200], address[:320], str(message.get("Subject", ""))[:300], date.isoformat(), answer, quoted
    )


# Acting on what arrived


@dataclass
class Processed:
    """How many messages of each kind one pass read, and what they did."""

    kinds: dict[str, int] = field(default_factory=dict)
    suppressions: int = 0
    notices: int = 0

    def count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@dataclass(frozen=True)
class InboundContext:
    """What reading needs beyond the database: the tags' keys and the unsubscribe links' signer."""

    tags: AddressTags | None
    signer: TokenSigner


def process_inbound(db: Database, context: InboundContext, now: dt.datetime) -> Processed:
    """Read every stored message not read yet, one transaction each: a message that breaks the reader is set
    aside as "unreadable" and never holds back the others (a database or key problem stops the pass, and
    the next sweep reads again what it left)."""
    report = Processed()
    after = 0
    while True:
        with db.session() as session:
            ids = repo.unprocessed_inbound_ids(session, after, PROCESS_CHUNK)
        if not ids:
            return report
        for inbound_id in ids:
            try:
                with db.session() as session:
                    _process_one(session, db.vault, context, inbound_id, now, report)
            except (DBAPIError, UnreadableError, LockedError):
                raise  # the database or the key, not the message: the next sweep tries again
            except Exception:
                log.exception("inbound message %d could not be read", inbound_id)
                with db.session() as session:
                    if repo.claim_inbound(session, inbound_id, now):
                        repo.record_inbound(session, inbound_id, kind="unreadable")
                        report.count("unreadable")
        after = ids[-1]


def _process_one(
    session: Session,
    vault: Vault,
    context: InboundContext,
    inbound_id: int,
    now: dt.datetime,
    report: Processed,
) -> None:
    if not repo.claim_inbound(session, inbound_id, now):
        return  # read by a racing sweep
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None or inbound.raw is None:
        return
    message = parse(inbound.raw)
    reading = read_message(message, context.tags, inbound.detail.get("to", []))
    row = repo.ledger_row(session, reading.tag.message_id) if reading.tag else None
    source = f"inbound:{inbound_id}"
    kind = reading.kind
    values: dict[str, Any] = {}
    if kind == "bounce":
        row = row if reading.tag and reading.tag.kind == "bounce" else _reported_row(session, vault, reading)
        values["detail"] = {"permanent": len(reading.permanent), "temporary": len(reading.temporary)}
        if row is not None:
            failed = "bounced" if reading.permanent else "deferred"
            if DELIVERY_RANK[failed] > DELIVERY_RANK.get(row.delivery or "", 0):
                row.delivery, row.delivery_at = failed, now
            if reading.permanent:
                report.suppressions += repo.suppress_for_message(session, row, "hard_bounce", source)
    elif kind == "unsubscribe":
        supporter_id, message_id = _unsubscriber(session, context, reading, row)
        if supporter_id is None:
            kind = "forged"
        else:
            report.suppressions += unsubscribe_supporter(session, supporter_id, message_id, source, now)
    elif kind == "reply" and (row is None or row.kind != "letter" or row.letter_id is None):
        kind = "unmatched"
    elif kind == "reply" and row is not None:
        key = new_record_key()
        values.update(private=make_reply(message, inbound.received_at).seal(key), key=key)
        report.notices += _notify_writer(session, row, inbound_id, now)
    if row is not None:
        values.update(message_id=row.id, letter_id=row.letter_id, target_id=row.target_id)
    repo.record_inbound(session, inbound_id, kind=kind, **values)
    report.count(kind)


def _reported_row(session: Session, vault: Vault, reading: Reading) -> LedgerMessage | None:
    """The message a bounce report names, if it is ours (its Message-ID's digest matches the ledger) and
    went to an address the report says failed: a report made up by a stranger suppresses no one."""
    failed = {vault.address_index(a) for a in reading.permanent | reading.temporary}
    for kind, number, digest in reading.reported:
        row = repo.ledger_row(session, number)
        if row is None or row.kind != kind or message_id_digest(row.idempotency_key) != digest:
            continue
        if repo.recipient_index(session, row) in failed:
            return row
    return None


def _unsubscriber(
    session: Session, context: InboundContext, reading: Reading, row: LedgerMessage | None
) -> tuple[int | None, int | None]:
    """(supporter, message) an emailed unsubscribe names: by its tag, or by the signed token in the subject
    of alerts sent before tags."""
    if row is not None and row.supporter_id is not None and row.kind == "alert":
        return row.supporter_id, row.id
    if reading.unsubscribe_token:
        try:
            payload = context.signer.verify("unsubscribe", reading.unsubscribe_token)
            return int(payload["s"]), int(payload["m"]) if payload.get("m") else None
        except (InvalidToken, KeyError, TypeError, ValueError):
            return None, None
    return None, None


def _notify_writer(session: Session, sent_letter: LedgerMessage, inbound_id: int, now: dt.datetime) -> int:
    """Queue the email that tells the letter's writer an answer came (1), unless the writer is gone or has
    been told often enough about this letter (0)."""
    letter = repo.get_letter(session, sent_letter.letter_id or 0)
    if letter.supporter_id is None or letter.private is None:
        return 0
    if repo.reply_notices_for_letter(session, letter.id) >= MAX_NOTICES_PER_LETTER:
        return 0
    # No official on the row: it is an email to the writer (the reply names its official), and the
    # letters' pacing counts rows that have one.
    row = letter_ledger_row(
        f"reply:{inbound_id}", "reply_notice", letter.id, None, letter.supporter_id, letter.locale, now
    )
    repo.add_messages(session, [row])
    return 1


# The supporter's side


def reply_token(signer: TokenSigner, inbound_id: int, key: str) -> str:
    """The link's token: which reply, and the reply's own key (the page reads this reply and no other)."""
    return signer.sign("reply", {"i": inbound_id, "k": key})


def _notice_values(
    session: Session, message: Claimed, letter: Letter, secrets: LetterSecrets, context: ComposeContext
) -> dict[str, Any]:
    inbound = repo.inbound_for_notice(session, message.idempotency_key)
    if inbound is None or inbound.key is None:
        raise NotToSend("the reply is gone")
    code = letter.locale
    target = repo.get_target_by_id(session, inbound.target_id or 0)
    token = reply_token(context.signer, inbound.id, inbound.key)
    return {
        "name": secrets.name,
        "official": official_line(target, code) if target else "",
        "official_title": target.title.get(code, "") if target else "",
        "reply_url": f"{context.sender.base_url}/replies/{token}",
        "privacy_url": context.sender.privacy_url(code),
    }


def compose_reply_notices(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """'<official> answered your letter', in the writer's language, with the link to read it."""
    return compose_to_writers(session, messages, context, "reply_notice", _notice_values)


@dataclass(frozen=True)
class ReplyPage:
    """A reply as its supporter reads it: in the page's language (the letter's), the reply as written."""

    locale: str
    official: str
    reply: Reply


def read_reply(db: Database, signer: TokenSigner, token: str) -> ReplyPage | None:
    """None for a link that is forged, or whose reply is gone (retention)."""
    try:
        payload = signer.verify("reply", token)
        inbound_id, key = int(payload["i"]), str(payload["k"])
    except (InvalidToken, KeyError, TypeError, ValueError):
        return None
    with db.session() as session:
        inbound = session.get(InboundMessage, inbound_id)
        if inbound is None or inbound.private is None or inbound.letter_id is None:
            return None
        try:
            reply = Reply.open(key, inbound.private)
        except UnreadableError:
            return None
        letter = repo.get_letter(session, inbound.letter_id)
        target = repo.get_target_by_id(session, inbound.target_id or 0)
        return ReplyPage(letter.locale, official_line(target, letter.locale) if target else "", reply)


# What coordinators see


@dataclass(frozen=True)
class ReplySummary:
    """A reply as a list shows it to coordinators: when, from which official, for which letter."""

    id: int
    kind: str
    received_at: dt.datetime
    official: str | None
    letter_id: int | None


def campaign_replies(db: Database, slug: str, limit: int = 200) -> list[ReplySummary]:
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        return [
            ReplySummary(row.id, row.kind or "", row.received_at, official, row.letter_id)
            for row, official in repo.inbound_of_campaign(session, campaign.id, limit)
        ]


def coordinator_reply(db: Database, inbound_id: int) -> Reply | None:
    """A reply as a coordinator reads it (the dashboard holds the data key); None once it is gone."""
    with db.session() as session:
        inbound = session.get(InboundMessage, inbound_id)
        if inbound is None or inbound.private is None or inbound.key is None:
            return None
        return Reply.open(inbound.key, inbound.private)


COMPOSERS = {"reply_notice": compose_reply_notices}
