"""The outbox: one RFC 5322 ``.eml`` file per message, so anyone can open what would have been sent."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mailer.transports.base import BulkEmail, Delivery, OutboundEmail, UnsafeHeader


class OutboxTransport:
    """Writes each message to ``<folder>/<kind>-<ledger id>-<locale>.eml``, atomically."""

    name = "outbox"
    chunk_size = 1

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, email: OutboundEmail) -> Path:
        return self.folder / f"{email.kind}-{email.ledger_id:07d}-{email.locale}.eml"

    def send(self, email: BulkEmail) -> list[Delivery]:
        return [self._write(email.personalised(recipient)) for recipient in email.recipients]

    def _write(self, email: OutboundEmail) -> Delivery:
        try:
            data = email.to_mime().as_bytes()
        except UnsafeHeader as err:
            return Delivery(email.ledger_id, "permanent", error=f"cannot be written as an email: {err}")
        target = self.path_for(email)
        try:
            # Private to its owner (the messages name their recipients); files from mkstemp are 0600.
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a message.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except PermissionError as err:
            return Delivery(email.ledger_id, "permanent", error=f"outbox {self.folder}: {err.strerror}")
        except OSError as err:
            return Delivery(email.ledger_id, "transient", error=f"outbox {self.folder}: {err.strerror}")
        return Delivery(email.ledger_id, "sent", provider_id=target.name)

    def close(self) -> None:
        """Nothing to release."""
