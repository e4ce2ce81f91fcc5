"""The contract every transport honours, and the message it is handed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Protocol

# Long header lines are allowed up to RFC 5322's 998 characters: folding at 78 would turn a long
# List-Unsubscribe URL into an encoded-word, which mail clients do not decode for that header.
_POLICY = SMTP.clone(max_line_length=998)


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
    """Hands messages to the world. Raises TransientSendError or PermanentSendError on failure."""

    name: str

    def send(self, email: OutboundEmail) -> str:
        """Send one message; returns the provider's id for it."""
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...
