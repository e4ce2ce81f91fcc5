"""A real SMTP server (aiosmtpd) that records what it accepts and refuses recipients on request."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class SmtpRecorder:
    """The aiosmtpd handler: keeps each accepted message; replies codes set per address."""

    replies: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 no such user"
    # Addresses whose message is taken, then the connection dropped before the final reply (RFC 1047).
    drop_after_data: set[str] = field(default_factory=set)
    received: list[tuple[str, EmailMessage]] = field(default_factory=list)
    # The envelope sender (MAIL FROM) each recipient's message came with: where its bounce would go.
    return_paths: dict[str, str] = field(default_factory=dict)
    peers: set[tuple[str, int]] = field(default_factory=set)  # one client port per connection
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self.replies:
            return self.replies[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
        with self.lock:
            self.peers.add(tuple(session.peer[:2]))
            for rcpt in envelope.rcpt_tos:
                self.received.append((rcpt, message))
                self.return_paths[rcpt] = envelope.mail_from
        if any(rcpt.lower() in self.drop_after_data for rcpt in envelope.rcpt_tos):
            server.transport.abort()  # the message is in; the client never hears the 250
        return "250 Message accepted"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(address for address, _ in self.received)


class SmtpServer:
    """``with SmtpServer() as smtp:`` then ``smtp.url``; ``tls``/``credentials`` turn on STARTTLS and AUTH."""

    def __init__(
        self,
        port: int,
        tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.recorder = SmtpRecorder()
        self.port = port
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=port, **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    def url(self, user: str | None = None, password: str | None = None, query: str = "") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"smtp://{auth}127.0.0.1:{self.port}{query}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
