"""A mailbox read over IMAP (imap-tools): the inbound door of installations that send over SMTP.

``imaps://user:password@host:993/INBOX`` is TLS from the start; ``imap://...:143`` upgrades with STARTTLS
and never logs in over a connection that is not encrypted. ``?cafile=PATH`` trusts a private certificate
authority. Each message is handed over as the bytes the server holds, and deleted from the mailbox only
once the store has it (committed): a crash in between reads it again, and the store keeps it once.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from imap_tools import AND, BaseMailBox, MailBox, MailBoxStartTls
from imap_tools.errors import MailboxLoginError

from mailer.errors import N_, MailerError

log = logging.getLogger(__name__)
#: Messages read per pass: a full mailbox is emptied over several sweeps, never in one long one.
PER_PASS = 500


class MailboxUnavailable(MailerError):
    """The mailbox could not be read (unreachable, credentials refused, no such folder)."""


@dataclass(frozen=True)
class MailboxConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str
    password: str = ""
    folder: str = "INBOX"
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MailboxConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise MailerError(N_("MAILER_IMAP_URL must look like imaps://user:password@host/INBOX"))
        return cls(
            host=parts.hostname,
            port=parts.port or (993 if parts.scheme == "imaps" else 143),
            implicit_tls=parts.scheme == "imaps",
            username=unquote(parts.username),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.strip("/")) or "INBOX",
            cafile=parse_qs(parts.query).get("cafile", [None])[0],
        )


def _connect(config: MailboxConfig, timeout: float) -> BaseMailBox:
    context = ssl.create_default_context(cafile=config.cafile)
    if config.implicit_tls:
        return MailBox(config.host, config.port, timeout=timeout, ssl_context=context)
    return MailBoxStartTls(config.host, config.port, timeout=timeout, ssl_context=context)


def read_mailbox(url: str, store: Callable[[bytes], object], max_bytes: int, timeout: float = 60.0) -> int:
    """Hand every message of the folder to ``store``, then delete those it took; how many it took.
    Messages larger than ``max_bytes`` stay in the mailbox (logged), for a person to look at."""
    config = MailboxConfig.from_url(url)
    try:
        with _connect(config, timeout).login(config.username, config.password, config.folder) as box:
            too_large = box.uids(AND(size_gt=max_bytes))
            if too_large:
                log.warning(
                    "%d messages in the mailbox are larger than %d bytes: left there",
                    len(too_large),
                    max_bytes,
                )
            taken: list[str] = []
            for uid in box.uids(AND(size_lt=max_bytes + 1))[:PER_PASS]:
                status, data = box.client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((item[1] for item in data if isinstance(item, tuple)), None)
                if status != "OK" or not isinstance(raw, bytes):
                    continue  # deleted meanwhile by another reader
                try:
                    store(raw)
                except MailerError as refused:  # not a message we can keep: left for a person
                    log.warning("message %s of the mailbox was not taken: %s", uid, refused)
                    continue
                taken.append(uid)
            if taken:
                box.delete(taken)
            return len(taken)
    except MailboxLoginError as err:
        raise MailboxUnavailable(
            N_("the mailbox refused the user name or password (MAILER_IMAP_URL)")
        ) from err
    except (OSError, ssl.SSLError, imaplib.IMAP4.error) as err:
        raise MailboxUnavailable(
            N_("the mailbox could not be read (MAILER_IMAP_URL): %(reason)s"), reason=str(err)[:200]
        ) from err
