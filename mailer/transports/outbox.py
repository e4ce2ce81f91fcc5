"""The outbox: one RFC 5322 ``.eml`` file per message, so anyone can open what would have been sent."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mailer.errors import N_, PermanentSendError, TransientSendError
from mailer.transports.base import OutboundEmail


class OutboxTransport:
    """Writes each message to ``<folder>/<kind>-<ledger id>-<locale>.eml``, atomically."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, email: OutboundEmail) -> Path:
        return self.folder / f"{email.kind}-{email.ledger_id:07d}-{email.locale}.eml"

    def send(self, email: OutboundEmail) -> str:
        data = email.to_mime().as_bytes()
        target = self.path_for(email)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a message.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except PermissionError as err:
            raise PermanentSendError(
                N_("outbox %(folder)s: %(reason)s"), folder=str(self.folder), reason=err.strerror
            ) from err
        except OSError as err:
            raise TransientSendError(
                N_("outbox %(folder)s: %(reason)s"), folder=str(self.folder), reason=err.strerror
            ) from err
        return target.name

    def close(self) -> None:
        """Nothing to release."""
