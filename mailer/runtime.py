"""The composition root: builds the database, renderer, signer, transport and task backend from Settings.

The command line and the workers both start here, so that a batch does the same work wherever it runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from functools import cached_property

from mailer import answers, events, inbound, letters, mailouts, privacy, sending
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.rendering import Renderer
from mailer.store import Database
from mailer.store import repository as repo
from mailer.tasking import TaskBackend, load_backend
from mailer.tokens import AddressTags, TokenSigner
from mailer.transports import Transport
from mailer.transports.outbox import OutboxTransport
from mailer.transports.sendgrid import SendGridTransport
from mailer.transports.smtp import SmtpTransport
from mailer.vault import Vault

log = logging.getLogger(__name__)
PURGE_EVERY = dt.timedelta(hours=1)


class Runtime:
    """Everything a command or a worker needs, built lazily from one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The time, for use-cases that depend on it (sending hours); tests set a fixed one.
        self.clock = sending.utc_now
        self._purged_at: dt.datetime | None = None
        self._keys_checked = False

    @cached_property
    def vault(self) -> Vault:
        return self.settings.require_vault()

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url, self.vault)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer()

    @cached_property
    def signer(self) -> TokenSigner:
        return TokenSigner(self.settings.require_secret_keys())

    @cached_property
    def tags(self) -> AddressTags | None:
        """Signed tags in the inbound address; None when no inbound address is read."""
        address = self.settings.inbound_address
        return AddressTags(self.settings.require_secret_keys(), address) if address else None

    @cached_property
    def backend(self) -> TaskBackend:
        return load_backend(self.settings, {"send_batch": self.send_batch, "apply_events": self.apply_events})

    @cached_property
    def transport(self) -> Transport:
        """One per process: SendGrid's connection pool lives as long as the worker."""
        settings = self.settings
        if settings.transport == "smtp" and settings.smtp_url:
            tags = self.tags
            return SmtpTransport(
                settings.smtp_url, return_path=(lambda row: tags.address("b", row)) if tags else None
            )
        if settings.transport == "sendgrid" and settings.sendgrid_api_key:
            return SendGridTransport(settings.sendgrid_api_key, settings.sendgrid_api_url)
        return OutboxTransport(settings.outbox_dir)

    def check_can_send(self) -> None:
        """What sending needs, checked before a launch writes anything (a dry run checks the same):
        the signing keys for links, and a transport that can be built from the settings."""
        self.settings.require_secret_keys()
        _ = self.signer, self.transport

    @property
    def sender(self) -> sending.SenderIdentity:
        return sending.SenderIdentity(
            self.settings.from_email, self.settings.from_name, self.settings.base_url
        )

    def send_batch(self, message_ids: Sequence[int]) -> sending.BatchResult:
        """One batch of ledger messages, wherever it runs (this process or a worker)."""
        return sending.send_batch(
            self.db,
            self.transport,
            self.composers,
            self.compose_context,
            message_ids,
            retry_base=self.settings.retry_base,
        )

    @property
    def composers(self) -> dict[str, sending.Composer]:
        """How each kind of ledger row becomes an email."""
        return {
            "alert": sending.compose_alerts,
            **letters.COMPOSERS,
            **inbound.COMPOSERS,
            **answers.COMPOSERS,
        }

    @property
    def compose_context(self) -> sending.ComposeContext:
        return sending.ComposeContext(
            self.renderer, self.signer, self.sender, sending.utc_now(), self.transport.chunk_size, self.tags
        )

    @property
    def retention(self) -> privacy.Retention:
        settings = self.settings
        return privacy.Retention(
            unconfirmed_after_expiry=dt.timedelta(hours=settings.retain_unconfirmed_hours),
            letter_text=dt.timedelta(days=settings.retain_letter_days),
            raw_events=dt.timedelta(days=settings.retain_event_days),
            inbound_raw=dt.timedelta(days=settings.retain_inbound_days),
            replies=dt.timedelta(days=settings.retain_reply_days),
        )

    @property
    def timing(self) -> mailouts.Timing:
        return mailouts.Timing(
            claim_lease=dt.timedelta(seconds=self.settings.claim_lease),
            redispatch_after=dt.timedelta(seconds=self.settings.redispatch_after),
        )

    def sweep(self) -> mailouts.SweepReport:
        """The periodic pass, with this installation's timing: mailouts; the provider events whose apply task
        was lost (bounces and complaints must become suppressions); the inbound mail (the mailbox read,
        then every message stored by any door); the follow-ups due; then the letters queue, paced."""
        failures: list[Exception] = []

        def step(work: Callable[[], object]) -> None:
            # Each part runs whatever another part met: a poison letter never holds back a mailout.
            try:
                work()
            except MailerError as err:  # a reason for people (the queue refused): no traceback
                log.error("part of the sweep failed: %s", err)
                failures.append(err)
            except Exception as err:
                log.exception("part of the sweep failed")
                failures.append(err)

        if not self._keys_checked:  # the beat starts without the database: check the key once it answers
            self.db.check_keys()
            self._keys_checked = True
        reports: list[mailouts.SweepReport] = []
        step(
            lambda: reports.append(
                mailouts.sweep(self.db, self.backend, batch_size=self.settings.batch_size, timing=self.timing)
            )
        )
        step(lambda: events.apply_unapplied_events(self.db, self.clock()))
        if self.settings.imap_url:
            step(self.read_mailbox)
        step(self.process_inbound)
        step(lambda: answers.queue_follow_ups(self.db, self.clock()))
        step(
            lambda: letters.dispatch_letters(
                self.db, self.backend, self.clock, redispatch_after=self.timing.redispatch_after
            )
        )
        step(self._forget_expired_throttles)
        step(self._purge_when_due)
        if failures:
            raise failures[0]
        return reports[0]

    def receive_inbound(self, raw: bytes, door: str, recipients: Sequence[str] = ()) -> int | None:
        """Store one message that came to the inbound address (it is read at the next sweep)."""
        return inbound.receive(self.db, raw, door, self.clock(), self.settings.inbound_max_bytes, recipients)

    def read_mailbox(self) -> int:
        """Move what waits in the IMAP mailbox into the store; how many new messages."""
        from mailer.mailbox import read_mailbox

        url = self.settings.imap_url
        if url is None:
            return 0
        return read_mailbox(
            url, lambda raw: self.receive_inbound(raw, "imap"), self.settings.inbound_max_bytes
        )

    def process_inbound(self) -> inbound.Processed:
        """Read what arrived: suppressions, matched replies and the notices to their writers."""
        return inbound.process_inbound(self.db, inbound.InboundContext(self.tags, self.signer), self.clock())

    def _purge_when_due(self) -> None:
        """Retention, enforced: at most once an hour (it scans whole tables), and at the first sweep."""
        now = self.clock()
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            privacy.purge(self.db, self.retention, now)
            self._purged_at = now

    def _forget_expired_throttles(self) -> None:
        with self.db.session() as session:
            repo.delete_expired_throttles(session, self.clock())

    def apply_events(self, event_ids: Sequence[int]) -> events.Applied:
        """Stored provider events, applied once each (wherever it runs; the sweep catches lost ones)."""
        return events.apply_events(self.db, event_ids, self.clock())

    @cached_property
    def webhook_verifier(self) -> events.WebhookVerifier | None:
        key = self.settings.sendgrid_webhook_public_key
        return events.WebhookVerifier(key, self.settings.sendgrid_webhook_max_age) if key else None

    def close(self) -> None:
        if "transport" in self.__dict__ and isinstance(self.transport, SendGridTransport):
            self.transport.shutdown()
        if "db" in self.__dict__:
            self.db.dispose()
