"""Ways out of the engine: the outbox (files), SMTP and SendGrid, all behind :class:`Transport`."""

from mailer.transports.base import OutboundEmail, Transport

__all__ = ["OutboundEmail", "Transport"]
