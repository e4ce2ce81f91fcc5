"""The contract every transport honours: a bulk email of one locale in, one delivery per recipient out.

Transports differ only in how they hand messages over: the outbox and SMTP personalise each recipient and
send them one by one; SendGrid sends up to 1000 personalizations in one request and lets the provider fill
in each recipient's values. Failures come back as data (a :class:`Delivery` per recipient), except a
failure that concerns every message (the provider refused our credentials): :class:`TransportHalted`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any, Literal, Protocol

from mailer.content import substitute
from mailer.errors import SendError

# Long header lines are allowed up to RFC 5322's 998 characters: folding at 78 would turn a long
# List-Unsubscribe URL into an encoded-word, which mail clients do not decode for that header.
_POLICY = SMTP.clone(max_line_length=998)

DeliveryStatus = Literal["sent", "transient", "permanent", "unknown"]


class TransportHalted(SendError):
    """Nothing can be sent until a person acts (credentials refused): pause, do not retry."""


@dataclass(frozen=True)
class Recipient:
    """One recipient of a bulk email, with the values for the placeholders and their own headers."""

    ledger_id: int
    address: Address
    values: Mapping[str, str]
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BulkEmail:
    """One message in one locale for many recipients; subject and bodies still hold placeholder markers."""

    kind: str
    locale: str
    rtl: bool
    sender: Address
    subject: str
    text: str
    html: str
    date: dt.datetime
    recipients: Sequence[Recipient]
    headers: Mapping[str, str] = field(default_factory=dict)
    categories: Sequence[str] = ()
    track_opens: bool = False
    track_clicks: bool = False

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
        )


@dataclass(frozen=True)
class Delivery:
    """What happened to one recipient's message."""

    ledger_id: int
    status: DeliveryStatus
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the provider said how long to wait


@dataclass(frozen=True)
class OutboundEmail:
    """One fully rendered message for one recipient."""

    ledger_id: int
    kind: str
    message_id: str
    sender: Address
    recipient: Address
    subject: str
    text: str
    html: str
    locale: str
    date: dt.datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    reply_to: Address | None = None

    def to_mime(self) -> EmailMessage:
        """The RFC 5322 message, exactly what SMTP would carry: text and HTML as alternatives."""
        message = EmailMessage(policy=_POLICY)
        message["Date"] = format_datetime(self.date)
        message["Message-ID"] = self.message_id
        message["From"] = self.sender
        message["To"] = self.recipient
        if self.reply_to is not None:
            message["Reply-To"] = self.reply_to
        message["Subject"] = self.subject
        for name, value in self.headers.items():
            message[name] = value
        message.set_content(self.text, subtype="plain", charset="utf-8")
        message.add_alternative(self.html, subtype="html", charset="utf-8")
        # After the body: set_content() drops every Content-* header set before it.
        message["Content-Language"] = self.locale
        return message


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
