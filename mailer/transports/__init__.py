"""Ways out of the engine: the outbox (files), SMTP and SendGrid, all behind :class:`Transport`."""

from mailer.transports.base import (
    BulkEmail,
    Delivery,
    Mailbox,
    OutboundEmail,
    Recipient,
    Transport,
    TransportHalted,
)

__all__ = ["BulkEmail", "Delivery", "Mailbox", "OutboundEmail", "Recipient", "Transport", "TransportHalted"]
