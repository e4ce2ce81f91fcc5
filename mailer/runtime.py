"""The composition root: builds the database, renderer, signer, transport and task backend from Settings.

The command line and the workers both start here, so that a batch does the same work wherever it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from mailer import mailouts
from mailer.config import Settings
from mailer.errors import N_, ConfigError
from mailer.rendering import Renderer
from mailer.store import Database
from mailer.tasking import TaskBackend, load_backend
from mailer.tokens import TokenSigner
from mailer.transports import Transport
from mailer.transports.outbox import OutboxTransport


class Runtime:
    """Everything a command or a worker needs, built lazily from one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer()

    @cached_property
    def signer(self) -> TokenSigner:
        return TokenSigner(self.settings.require_secret_keys())

    @cached_property
    def backend(self) -> TaskBackend:
        return load_backend(self.settings, self.send_batch)

    @property
    def sender(self) -> mailouts.SenderIdentity:
        return mailouts.SenderIdentity(
            self.settings.from_email, self.settings.from_name, self.settings.base_url
        )

    def make_transport(self) -> Transport:
        if self.settings.transport == "outbox":
            return OutboxTransport(self.settings.outbox_dir)
        raise ConfigError(
            N_("MAILER_TRANSPORT=%(name)s is not available in this version yet; use outbox"),
            name=self.settings.transport,
        )

    def send_batch(self, message_ids: Sequence[int]) -> mailouts.BatchResult:
        """One batch of ledger messages, wherever it runs (this process or a worker)."""
        return mailouts.send_batch(
            self.db, self.make_transport(), self.renderer, self.signer, self.sender, message_ids
        )

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
