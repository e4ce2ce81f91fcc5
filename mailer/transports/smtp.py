"""SMTP: one connection per batch, one transaction per recipient; 4xx is transient, 5xx permanent.

``smtp://user:password@host:587`` upgrades with STARTTLS when the server offers it, and refuses to send
credentials over a connection that is not encrypted; ``smtps://host:465`` is TLS from the start.
``?cafile=PATH`` trusts a private certificate authority (a relay with its own certificate).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mailer.errors import N_, ConfigError
from mailer.transports.base import (
    BulkEmail,
    Delivery,
    OutboundEmail,
    TransportHalted,
    UnsafeHeader,
    ascii_addr_spec,
)

_HARD_BOUNCE = re.compile(r"5\.(1\.\d{1,3}|2\.1)\b")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    cafile: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(N_("MAILER_SMTP_URL must look like smtp://user:password@host:587"))
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 587),
            implicit_tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=query.get("cafile", [None])[0],
        )


class SmtpTransport:
    """Sends through an SMTP relay, keeping one connection open for a whole batch."""

    name = "smtp"
    chunk_size = 1

    def __init__(
        self, url: str, timeout: float = 30.0, return_path: Callable[[int], str] | None = None
    ) -> None:
        self.config = SmtpConfig.from_url(url)
        self.timeout = timeout
        # The envelope sender of a ledger row's message: a signed address of ours, so that a bounce report
        # that comes later says which message failed (VERP). None: the sender's own address.
        self.return_path = return_path
        self._connection: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.cafile)

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        connection: smtplib.SMTP
        if config.implicit_tls:
            connection = smtplib.SMTP_SSL(
                config.host, config.port, timeout=self.timeout, context=self._tls_context()
            )
        else:
            connection = smtplib.SMTP(config.host, config.port, timeout=self.timeout)
            connection.ehlo()
            if connection.has_extn("starttls"):
                connection.starttls(context=self._tls_context())
                connection.ehlo()
            elif config.username:
                connection.close()
                raise TransportHalted(
                    N_("the SMTP server offers no STARTTLS: credentials are never sent in clear")
                )
        if config.username:
            try:
                connection.login(config.username, config.password or "")
            except smtplib.SMTPAuthenticationError as err:
                connection.close()
                raise TransportHalted(
                    N_("the SMTP server refused the credentials (%(code)d)"), code=err.smtp_code
                ) from err
        return connection

    def send(self, email: BulkEmail) -> list[Delivery]:
        return [self._send_one(email.personalised(recipient)) for recipient in email.recipients]

    def _send_one(self, email: OutboundEmail) -> Delivery:
        try:
            if self._connection is None:
                self._connection = self._connect()
        except (OSError, smtplib.SMTPException) as err:
            # Nothing was handed over: safe to try again later.
            self._connection = None
            return Delivery(email.ledger_id, "transient", error=f"SMTP connection: {err}")
        try:
            message = email.to_mime()
            envelope = (
                ascii_addr_spec(self._envelope_sender(email)),
                ascii_addr_spec(email.recipient.addr_spec),
            )
        except UnsafeHeader as err:
            return Delivery(email.ledger_id, "permanent", error=f"cannot be written as an email: {err}")
        try:
            self._connection.send_message(message, from_addr=envelope[0], to_addrs=[envelope[1]])
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = next(iter(err.recipients.values()))
            return self._refused(email, code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as err:
            return self._refused(email, err.smtp_code, err.smtp_error)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as err:
            # The connection broke mid-transaction: the relay may or may not have taken the message.
            self._drop()
            return Delivery(email.ledger_id, "unknown", error=f"SMTP connection lost: {err}")
        return Delivery(email.ledger_id, "sent", provider_id=email.message_id)

    def _envelope_sender(self, email: OutboundEmail) -> str:
        if self.return_path is not None and email.ledger_id:  # a test send (no ledger row) has none
            return self.return_path(email.ledger_id)
        return email.sender.addr_spec

    def _refused(self, email: OutboundEmail, code: int, reply: bytes | str) -> Delivery:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        if code == 421:  # the server is closing the connection
            self._drop()
        if 400 <= code < 500:
            return Delivery(email.ledger_id, "transient", error=f"SMTP {code}: {text}")
        # RFC 3463: 5.1.x says the address is bad (no such mailbox, no such domain), 5.2.1 that the
        # mailbox is disabled; other refusals (policy, content) are about this message, not the address.
        hard = bool(_HARD_BOUNCE.match(text.strip()))
        return Delivery(email.ledger_id, "permanent", error=f"SMTP {code}: {text}", hard_bounce=hard)

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self._connection = None
