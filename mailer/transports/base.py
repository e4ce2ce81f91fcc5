"""The contract every transport honours: a bulk email of one locale in, one delivery per recipient out.

Transports differ only in how they hand messages over: the outbox and SMTP personalise each recipient and
send them one by one; SendGrid sends up to 1000 personalizations in one request and lets the provider fill
in each recipient's values. Failures come back as data (a :class:`Delivery` per recipient), except a
failure that concerns every message (the provider refused our credentials): :class:`TransportHalted`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any, Literal, Protocol

import idna

from mailer.content import substitute
from mailer.errors import SendError
from mailer.fields import forbidden_character

# Long header lines are allowed up to RFC 5322's 998 characters: folding at 78 would turn a long
# List-Unsubscribe URL into an encoded-word, which mail clients do not decode for that header.
# refold_source="none": the headers we write are emitted exactly as we encoded them, never parsed again.
_POLICY = SMTP.clone(max_line_length=998, refold_source="none")
MAX_HEADER_TEXT = 998
# Longer text is written as folded encoded words: no header line may pass RFC 5322's 998 characters.
_PLAIN_MAX = 900
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")
# What would make an address mean something else once written into a header or an envelope.
_NOT_IN_LOCAL = re.compile(r'[ <>(),;:"\[\]\\]')
_NOT_IN_DOMAIN = re.compile(r'[ <>(),;:"\\]')


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A name and an address as we hold them: checked and encoded when a message is written, never parsed
    (the standard library's ``Address`` parses every address it is given: costly a thousand times a batch)."""

    addr_spec: str
    display_name: str = ""


class UnsafeHeader(ValueError):
    """A value cannot be written into a header as it is (a line break, a control character, too long)."""


def header_text(value: str, what: str) -> str:
    """``value`` when it can stand in a header as one line of text; :class:`UnsafeHeader` otherwise.

    The ingress checks in :mod:`mailer.fields` refuse such values already; this is the last line, for
    data that reached the store another way (an old row, a coordinator's file, a bug)."""
    bad = forbidden_character(value)
    if bad is not None:
        raise UnsafeHeader(f"the {what} holds the control character U+{ord(bad):04X}")
    if len(value) > MAX_HEADER_TEXT:
        raise UnsafeHeader(f"the {what} is longer than {MAX_HEADER_TEXT} characters")
    return value


def encoded_text(value: str, what: str) -> str:
    """Unstructured header text (a subject, a display name) as ASCII: plain when it is plain ASCII,
    otherwise RFC 2047 encoded words that we make ourselves. Text that looks like an encoded word is
    encoded too, so that a reader sees it literally and no parser decodes it into something else."""
    text = header_text(value, what)
    if text.isascii() and "=?" not in text and len(text) <= _PLAIN_MAX:
        return text
    return Header(text, "utf-8").encode()  # folded into lines of at most 76 characters


def ascii_addr_spec(addr_spec: str) -> str:
    """The address as every relay takes it: the local part must be ASCII, the domain goes as IDNA."""
    local, _, domain = header_text(addr_spec, "address").rpartition("@")
    if not local or not domain or not local.isascii() or _NOT_IN_LOCAL.search(local):
        raise UnsafeHeader(f"the address {addr_spec!r} cannot be sent without SMTPUTF8")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as err:
            raise UnsafeHeader(f"the domain of {addr_spec!r} is not a valid IDN: {err}") from err
    if _NOT_IN_DOMAIN.search(domain):
        raise UnsafeHeader(f"the domain of {addr_spec!r} is not valid")
    return f"{local}@{domain}"


def encoded_address(address: Mailbox, what: str) -> str:
    """``"Name" <local@domain>`` built from its parts: the name quoted or encoded, never re-parsed."""
    addr_spec = ascii_addr_spec(address.addr_spec)
    name = header_text(address.display_name or "", what)
    if not name:
        return addr_spec
    if name.isascii() and "=?" not in name and len(name) + len(addr_spec) <= _PLAIN_MAX:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr_spec}>'
    return f"{Header(name, 'utf-8').encode()} <{addr_spec}>"


DeliveryStatus = Literal["sent", "transient", "permanent", "unknown"]


class TransportHalted(SendError):
    """Nothing can be sent until a person acts (credentials refused): pause, do not retry."""


@dataclass(frozen=True)
class Recipient:
    """One recipient of a bulk email, with the values for the placeholders and their own headers."""

    ledger_id: int
    address: Mailbox
    values: Mapping[str, str]
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BulkEmail:
    """One message in one locale for many recipients; subject and bodies still hold placeholder markers."""

    kind: str
    locale: str
    rtl: bool
    sender: Mailbox
    subject: str
    text: str
    html: str
    date: dt.datetime
    recipients: Sequence[Recipient]
    headers: Mapping[str, str] = field(default_factory=dict)
    categories: Sequence[str] = ()
    track_opens: bool = False
    track_clicks: bool = False
    reply_to: Mailbox | None = None

    def personalised(self, recipient: Recipient) -> OutboundEmail:
        """The message exactly as this recipient receives it."""
        values = recipient.values
        return OutboundEmail(
            ledger_id=recipient.ledger_id,
            kind=self.kind,
            message_id=recipient.message_id,
            sender=self.sender,
            recipient=recipient.address,
            subject=" ".join(substitute(self.subject, values, for_html=False).split()),
            text=substitute(self.text, values, for_html=False),
            html=substitute(self.html, values, for_html=True, rtl=self.rtl),
            locale=self.locale,
            date=self.date,
            headers={**self.headers, **recipient.headers},
            reply_to=self.reply_to,
        )


@dataclass(frozen=True)
class Delivery:
    """What happened to one recipient's message."""

    ledger_id: int
    status: DeliveryStatus
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the provider said how long to wait
    hard_bounce: bool = False  # the address itself does not exist: write to it no more


@dataclass(frozen=True)
class OutboundEmail:
    """One fully rendered message for one recipient."""

    ledger_id: int
    kind: str
    message_id: str
    sender: Mailbox
    recipient: Mailbox
    subject: str
    text: str
    html: str
    locale: str
    date: dt.datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    reply_to: Mailbox | None = None

    def to_mime(self) -> EmailMessage:
        """The RFC 5322 message, exactly what SMTP would carry: text and HTML as alternatives.

        Every header is encoded here from its parts and stored raw (``set_raw``): the standard library
        never parses one of our values back, so no name or subject can add a header or a body, whatever
        the interpreter. :class:`UnsafeHeader` when a value cannot be written safely."""
        message = EmailMessage(policy=_POLICY)
        headers: list[tuple[str, str]] = [
            ("Date", format_datetime(self.date)),
            ("Message-ID", _token_header(self.message_id, "Message-ID")),
            ("From", encoded_address(self.sender, "sender")),
            ("To", encoded_address(self.recipient, "recipient")),
        ]
        if self.reply_to is not None:
            headers.append(("Reply-To", encoded_address(self.reply_to, "reply-to address")))
        headers.append(("Subject", encoded_text(self.subject, "subject")))
        headers += [(_header_name(name), _token_header(value, name)) for name, value in self.headers.items()]
        language = _token_header(self.locale, "Content-Language")
        for name, value in headers:
            message.set_raw(name, value)
        message.set_content(self.text, subtype="plain", charset="utf-8")
        message.add_alternative(self.html, subtype="html", charset="utf-8")
        # After the body: set_content() drops every Content-* header set before it.
        message.set_raw("Content-Language", language)
        return message


def _header_name(name: str) -> str:
    """A header's name: printable ASCII without a colon or a space (RFC 5322 2.2), nothing else."""
    if not _FIELD_NAME.match(name):
        raise UnsafeHeader(f"{name!r} is not a header name")
    return name


def _token_header(value: str, name: str) -> str:
    """A header we make from ASCII parts (ids, URLs, dates): it must be ASCII, and one line."""
    text = header_text(value, name)
    if not text.isascii():
        raise UnsafeHeader(f"the {name} header must be ASCII")
    return text


class Transport(Protocol):
    """Hands bulk emails to the world."""

    name: str
    #: How many recipients one call of :meth:`send` should carry. The caller records outcomes per call,
    #: so a crash mid-call can only leave this many messages whose fate is unknown.
    chunk_size: int

    def send(self, email: BulkEmail) -> list[Delivery]:
        """Send to every recipient; one Delivery per recipient, in order. May raise TransportHalted."""
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...


def deliveries_for_all(email: BulkEmail, status: DeliveryStatus, **values: Any) -> list[Delivery]:
    """The same outcome for every recipient (a provider answers one request for all of them)."""
    return [Delivery(r.ledger_id, status, **values) for r in email.recipients]
