"""Settings read from ``MAILER_*`` environment variables, validated once at start.

A wrong value raises :class:`ConfigError` naming the variable, so the program stops before doing any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from mailer.errors import N_, ConfigError, LocaleError
from mailer.fields import FieldProblem, check_line
from mailer.locales import get_locale
from mailer.vault import Vault

TransportName = Literal["outbox", "smtp", "sendgrid"]
TRANSPORTS: tuple[TransportName, ...] = ("outbox", "smtp", "sendgrid")
DEFAULT_SENDGRID_API_URL = "https://api.sendgrid.com"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Settings:
    """Everything configurable about the engine; build it with :meth:`from_env`."""

    # URLs that may carry a password stay out of repr(): settings end up in logs and tracebacks.
    database_url: str = field(repr=False)
    broker_url: str | None = field(default=None, repr=False)
    transport: TransportName = "outbox"
    outbox_dir: Path = Path("outbox")
    smtp_url: str | None = field(default=None, repr=False)
    sendgrid_api_url: str = DEFAULT_SENDGRID_API_URL
    sendgrid_api_key: str | None = field(default=None, repr=False)
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    # The keys personal data is encrypted with (mailer.vault): from MAILER_DATA_KEY or MAILER_DATA_KEY_FILE.
    data_key: str | None = field(default=None, repr=False)
    data_key_file: Path | None = None
    base_url: str = "http://localhost:8000"
    from_email: str = "alerts@example.org"
    from_name: str = "Solidarity Mailer"
    # Where people write about their data (the privacy notice names it); the sender's address by default.
    privacy_contact: str | None = None
    sendgrid_webhook_public_key: str | None = None
    sendgrid_webhook_max_age: int = 600
    batch_size: int = 1000
    language: str = "en"
    claim_lease: int = 900
    redispatch_after: int = 600
    retry_base: int = 30
    proxy_hops: int = 0
    # Retention: unconfirmed letters this long after their link expired; letters' words this long after
    # they were sent; providers' raw events (IP, user agent, address) this long after they arrived.
    retain_unconfirmed_hours: int = 24
    retain_letter_days: int = 28
    retain_event_days: int = 30
    # Inbound mail (mailer.inbound): the address replies, bounces and emailed unsubscribes come back to
    # (each message carries it with a signed tag: reply+TAG@domain); unset, nothing reads mail.
    inbound_address: str | None = None
    # SendGrid Inbound Parse posts to /webhooks/inbound/<secret>, with basic auth "user:password".
    inbound_parse_secret: str | None = field(default=None, repr=False)
    inbound_parse_auth: str | None = field(default=None, repr=False)
    # A mailbox the beat reads over IMAP (imaps://user:password@host/INBOX).
    imap_url: str | None = field(default=None, repr=False)
    inbound_max_bytes: int = 10 * 1024 * 1024
    # Inbound messages as they arrived, and officials' replies as supporters read them.
    retain_inbound_days: int = 30
    retain_reply_days: int = 365

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Read and validate the ``MAILER_*`` variables (the SendGrid key may also be ``SENDGRID_API_KEY``)."""
        env = os.environ if environ is None else environ
        here = Path.cwd() if cwd is None else cwd

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        database_url = get("MAILER_DATABASE_URL") or f"sqlite:///{here / 'mailer.db'}"
        _check_url("MAILER_DATABASE_URL", database_url, ("sqlite", "postgresql", "postgresql+psycopg"))

        broker_url = get("MAILER_BROKER_URL")
        if broker_url is not None:
            _check_url("MAILER_BROKER_URL", broker_url, ("redis", "rediss"))

        transport = (get("MAILER_TRANSPORT") or "outbox").lower()
        if transport not in TRANSPORTS:
            raise ConfigError(
                N_("MAILER_TRANSPORT must be one of %(choices)s, not '%(value)s'"),
                choices=", ".join(TRANSPORTS),
                value=transport,
            )

        smtp_url = get("MAILER_SMTP_URL")
        if smtp_url is not None:
            _check_url("MAILER_SMTP_URL", smtp_url, ("smtp", "smtps"))
        elif transport == "smtp":
            raise ConfigError(N_("MAILER_SMTP_URL is required when MAILER_TRANSPORT=smtp (smtp://host:587)"))

        sendgrid_api_url = (get("MAILER_SENDGRID_API_URL") or DEFAULT_SENDGRID_API_URL).rstrip("/")
        _check_url("MAILER_SENDGRID_API_URL", sendgrid_api_url, ("http", "https"))
        sendgrid_api_key = get("MAILER_SENDGRID_API_KEY") or get("SENDGRID_API_KEY")
        if transport == "sendgrid" and sendgrid_api_key is None:
            raise ConfigError(
                N_("MAILER_SENDGRID_API_KEY (or SENDGRID_API_KEY) is required when MAILER_TRANSPORT=sendgrid")
            )

        # Several keys, newest first, so that keys can be rotated without breaking links already sent.
        secret_keys = tuple(k.strip() for k in (get("MAILER_SECRET_KEY") or "").split(",") if k.strip())
        for key in secret_keys:
            if len(key) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    N_("MAILER_SECRET_KEY: each comma-separated key must be at least %(min)d characters"),
                    min=MIN_SECRET_LENGTH,
                )

        data_key = _data_key(get("MAILER_DATA_KEY"), get("MAILER_DATA_KEY_FILE"), here)

        base_url = (get("MAILER_BASE_URL") or "http://localhost:8000").rstrip("/")
        _check_url("MAILER_BASE_URL", base_url, ("http", "https"))
        if get("MAILER_BASE_URL") is None and transport != "outbox":
            # Every link in every email would point at the recipient's own machine.
            raise ConfigError(
                N_(
                    "MAILER_BASE_URL is required when MAILER_TRANSPORT=%(transport)s: the public address "
                    "of the action pages, such as https://act.example.org"
                ),
                transport=transport,
            )

        from_email = get("MAILER_FROM_EMAIL") or "alerts@example.org"
        try:
            from_email = validate_email(from_email, check_deliverability=False).normalized
        except EmailNotValidError as err:
            raise ConfigError(
                N_("MAILER_FROM_EMAIL is not a valid address: %(reason)s"), reason=str(err)
            ) from err

        privacy_contact = get("MAILER_PRIVACY_CONTACT")
        if privacy_contact is not None:
            try:
                privacy_contact = validate_email(privacy_contact, check_deliverability=False).normalized
            except EmailNotValidError as err:
                raise ConfigError(
                    N_("MAILER_PRIVACY_CONTACT is not a valid address: %(reason)s"), reason=str(err)
                ) from err

        try:
            from_name = check_line(get("MAILER_FROM_NAME") or "Solidarity Mailer", 100)
        except FieldProblem as problem:
            raise ConfigError(N_("MAILER_FROM_NAME: %(reason)s"), reason=problem) from problem

        max_age = _int_var(env, "MAILER_SENDGRID_WEBHOOK_MAX_AGE", 600, minimum=0)
        batch_size = _int_var(env, "MAILER_BATCH_SIZE", 1000, minimum=1, maximum=1000)
        # Ledger timing: a claim older than the lease belongs to a dead worker; a queued task not picked up
        # within redispatch_after is presumed lost (a Redis restart); retries wait retry_base, doubling.
        claim_lease = _int_var(env, "MAILER_CLAIM_LEASE_SECONDS", 900, minimum=1)
        redispatch_after = _int_var(env, "MAILER_REDISPATCH_SECONDS", 600, minimum=1)
        retry_base = _int_var(env, "MAILER_RETRY_BASE_SECONDS", 30, minimum=1)
        # How many reverse proxies of ours stand before the web server: only their X-Forwarded-For is trusted.
        proxy_hops = _int_var(env, "MAILER_PROXY_HOPS", 0, minimum=0, maximum=5)

        retain_unconfirmed_hours = _int_var(env, "MAILER_RETAIN_UNCONFIRMED_HOURS", 24, minimum=0)
        retain_letter_days = _int_var(env, "MAILER_RETAIN_LETTER_DAYS", 28, minimum=1)
        retain_event_days = _int_var(env, "MAILER_RETAIN_EVENT_DAYS", 30, minimum=1)

        inbound = _inbound_settings(env, get)

        language = get("MAILER_LANGUAGE") or "en"
        try:
            language = get_locale(language).code
        except LocaleError as err:
            raise ConfigError(N_("MAILER_LANGUAGE: %(reason)s"), reason=err) from err

        return cls(
            database_url=database_url,
            broker_url=broker_url,
            transport=transport,  # checked against TRANSPORTS above
            outbox_dir=(here / (get("MAILER_OUTBOX_DIR") or "outbox")),
            smtp_url=smtp_url,
            sendgrid_api_url=sendgrid_api_url,
            sendgrid_api_key=sendgrid_api_key,
            secret_keys=secret_keys,
            data_key=data_key,
            data_key_file=here / key_file if (key_file := get("MAILER_DATA_KEY_FILE")) else None,
            base_url=base_url,
            from_email=from_email,
            from_name=from_name,
            privacy_contact=privacy_contact,
            sendgrid_webhook_public_key=get("MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY"),
            sendgrid_webhook_max_age=max_age,
            batch_size=batch_size,
            language=language,
            claim_lease=claim_lease,
            redispatch_after=redispatch_after,
            retry_base=retry_base,
            proxy_hops=proxy_hops,
            retain_unconfirmed_hours=retain_unconfirmed_hours,
            retain_letter_days=retain_letter_days,
            retain_event_days=retain_event_days,
            **inbound,
        )

    def require_secret_keys(self) -> tuple[str, ...]:
        """The signing keys; signing links without one would make every token forgeable."""
        if not self.secret_keys:
            raise ConfigError(
                N_(
                    "MAILER_SECRET_KEY is not set: it signs unsubscribe and confirmation links "
                    "(use a random string of 32 or more characters)"
                )
            )
        return self.secret_keys

    def require_vault(self) -> Vault:
        """The data keys; nothing personal is read or written without them."""
        if not self.data_key:
            raise ConfigError(
                N_(
                    "MAILER_DATA_KEY is not set: it encrypts every supporter's data. Make one with "
                    "`mailer keys generate`, keep it apart from the database and its backups, and set "
                    "MAILER_DATA_KEY (or MAILER_DATA_KEY_FILE, a file only you can read)"
                )
            )
        return Vault.parse(self.data_key)


def _inbound_settings(env: Mapping[str, str], get: Callable[[str], str | None]) -> dict[str, Any]:
    """The MAILER_INBOUND_* and MAILER_IMAP_URL variables, checked together (they only make sense so)."""
    address = get("MAILER_INBOUND_ADDRESS")
    if address is not None:
        try:
            address = validate_email(address, check_deliverability=False).normalized.lower()
        except EmailNotValidError as err:
            raise ConfigError(
                N_("MAILER_INBOUND_ADDRESS is not a valid address: %(reason)s"), reason=str(err)
            ) from err
        if "+" in address.partition("@")[0] or not address.isascii():
            raise ConfigError(
                N_(
                    "MAILER_INBOUND_ADDRESS must be a plain ASCII address without '+': tags are added after it"
                )
            )
    secret, auth = get("MAILER_INBOUND_PARSE_SECRET"), get("MAILER_INBOUND_PARSE_AUTH")
    imap_url = get("MAILER_IMAP_URL")
    if (secret or imap_url) and address is None:
        raise ConfigError(
            N_("MAILER_INBOUND_ADDRESS is required with %(variable)s: it is the address whose mail is read"),
            variable="MAILER_INBOUND_PARSE_SECRET" if secret else "MAILER_IMAP_URL",
        )
    if secret is not None:
        if len(secret) < MIN_SECRET_LENGTH or not secret.isascii() or not secret.isalnum():
            raise ConfigError(
                N_("MAILER_INBOUND_PARSE_SECRET must be at least %(min)d letters and digits"),
                min=MIN_SECRET_LENGTH,
            )
        user, colon, password = (auth or "").partition(":")
        if not user or not colon or len(password) < MIN_SECRET_LENGTH:
            raise ConfigError(
                N_(
                    "MAILER_INBOUND_PARSE_AUTH must be user:password, with a password of at least "
                    "%(min)d characters (SendGrid sends it as basic auth)"
                ),
                min=MIN_SECRET_LENGTH,
            )
    if imap_url is not None:
        _check_url("MAILER_IMAP_URL", imap_url, ("imaps", "imap"))
        if not urlsplit(imap_url).username:
            raise ConfigError(N_("MAILER_IMAP_URL has no user name (imaps://user:password@host/INBOX)"))
    return {
        "inbound_address": address,
        "inbound_parse_secret": secret,
        "inbound_parse_auth": auth,
        "imap_url": imap_url,
        "inbound_max_bytes": _int_var(
            env, "MAILER_INBOUND_MAX_BYTES", 10 * 1024 * 1024, minimum=64 * 1024, maximum=30 * 1024 * 1024
        ),
        "retain_inbound_days": _int_var(env, "MAILER_RETAIN_INBOUND_DAYS", 30, minimum=1),
        "retain_reply_days": _int_var(env, "MAILER_RETAIN_REPLY_DAYS", 365, minimum=1),
    }


def _data_key(value: str | None, file_name: str | None, here: Path) -> str | None:
    """The key text, checked at start: from the variable, or from a file that only its owner may read."""
    if value is not None and file_name is not None:
        raise ConfigError(N_("set MAILER_DATA_KEY or MAILER_DATA_KEY_FILE, not both"))
    if file_name is not None:
        path = here / file_name
        try:
            if path.stat().st_mode & 0o077:
                raise ConfigError(
                    N_("MAILER_DATA_KEY_FILE %(file)s may be read by others: run chmod 600 on it"),
                    file=file_name,
                )
            value = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(
                N_("MAILER_DATA_KEY_FILE %(file)s cannot be read: %(reason)s"),
                file=file_name,
                reason=err.strerror or str(err),
            ) from None
        variable = "MAILER_DATA_KEY_FILE"
    else:
        variable = "MAILER_DATA_KEY"
    if value is not None:
        Vault.parse(value, variable)  # a wrong or weak key stops the program before it does anything
    return value


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    # The value itself is not repeated: a URL may carry a password, and error messages end up in logs.
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ConfigError(
            N_("%(name)s must start with %(schemes)s (it starts with '%(found)s')"),
            name=name,
            schemes=" or ".join(s + "://" for s in schemes),
            found=parts.scheme + ":" if parts.scheme else value[:8],
        )
    if parts.scheme != "sqlite" and not parts.hostname:
        raise ConfigError(N_("%(name)s has no host name"), name=name)


def _int_var(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            N_("%(name)s must be a whole number, not '%(value)s'"), name=name, value=raw
        ) from None
    if value < minimum:
        raise ConfigError(
            N_("%(name)s must be at least %(min)d, not %(value)d"), name=name, min=minimum, value=value
        )
    if maximum is not None and value > maximum:
        raise ConfigError(
            N_("%(name)s must be at most %(max)d, not %(value)d"), name=name, max=maximum, value=value
        )
    return value
