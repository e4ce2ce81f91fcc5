"""SendGrid's v3 Mail Send: one request carries up to 1000 personalizations of one locale.

The payload is built (a pure function) with the ``sendgrid`` package's mail helpers and posted through a
pooled HTTP client: the package's own client opens a new connection for every request. Each recipient's
values travel as ``substitutions``, escaped apart for the HTML and the text part (their keys differ by a
suffix); ``custom_args`` carry our ledger id only, since SendGrid stores them.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from sendgrid.helpers.mail import (
    Category,
    ClickTracking,
    Content,
    CustomArg,
    From,
    Ganalytics,
    Header,
    Mail,
    OpenTracking,
    Personalization,
    ReplyTo,
    Subject,
    SubscriptionTracking,
    Substitution,
    To,
    TrackingSettings,
)

from mailer.content import substitute
from mailer.errors import N_
from mailer.fields import ENCODED_WORD
from mailer.transports.base import (
    BulkEmail,
    Delivery,
    Recipient,
    TransportHalted,
    UnsafeHeader,
    ascii_addr_spec,
    deliveries_for_all,
    header_text,
)

MAX_PERSONALIZATIONS = 1000
LEDGER_ARG = "mailer_message"
#: Headers SendGrid refuses in ``headers`` (its Mail Send reference): the payload has fields for some.
RESERVED_HEADERS = frozenset(
    {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding"}
    | {"to", "from", "subject", "reply-to", "cc", "bcc"}
)
_MARKER = re.compile(r"MAILERPH\d\d")


def _keyed(text: str, suffix: str) -> str:
    return _MARKER.sub(lambda m: m.group(0) + suffix, text)


def _plain(value: str, what: str) -> str:
    """Header text that SendGrid writes into the message itself: one line, and no encoded-word syntax
    (we cannot make SendGrid encode it, so a value that a reader's client would decode is refused)."""
    text = header_text(value, what)
    if ENCODED_WORD.search(text):
        raise UnsafeHeader(f"the {what} holds encoded-word syntax")
    return text


def _check_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            raise UnsafeHeader(f"SendGrid does not take the {name} header in headers")
        _plain(value, name)


def check_recipient(recipient: Recipient) -> None:
    """:class:`UnsafeHeader` when this recipient's address or name cannot be handed to SendGrid."""
    ascii_addr_spec(recipient.address.addr_spec)
    _plain(recipient.address.display_name or "", "recipient's name")
    _check_headers(recipient.headers)
    for name, value in recipient.values.items():  # a value may be substituted into the subject
        _plain(value, name)


def build_payload(email: BulkEmail) -> dict[str, Any]:
    """The Mail Send request body for a bulk email (at most 1000 recipients)."""
    if len(email.recipients) > MAX_PERSONALIZATIONS:
        raise ValueError(f"SendGrid takes at most {MAX_PERSONALIZATIONS} personalizations per request")
    mail = Mail()
    mail.from_email = From(
        ascii_addr_spec(email.sender.addr_spec), _plain(email.sender.display_name, "sender's name") or None
    )
    if email.reply_to is not None:
        # The API's own field: SendGrid reserves Reply-To in `headers` and refuses the request.
        mail.reply_to = ReplyTo(
            ascii_addr_spec(email.reply_to.addr_spec),
            _plain(email.reply_to.display_name, "reply-to name") or None,
        )
    mail.subject = Subject(_keyed(_plain(email.subject, "subject"), "t"))
    text, html = _keyed(email.text, "t"), _keyed(email.html, "h")
    used = set(_MARKER.findall(email.subject + email.text + email.html))
    for recipient in email.recipients:
        check_recipient(recipient)
        personalization = Personalization()
        personalization.add_to(
            To(ascii_addr_spec(recipient.address.addr_spec), recipient.address.display_name or None)
        )
        for marker in sorted(used):
            plain = substitute(marker, recipient.values, for_html=False)
            personalization.add_substitution(Substitution(marker + "t", plain))
            personalization.add_substitution(
                Substitution(marker + "h", substitute(marker, recipient.values, for_html=True, rtl=email.rtl))
            )
        for name, value in recipient.headers.items():
            personalization.add_header(Header(name, value))
        personalization.add_custom_arg(CustomArg(LEDGER_ARG, str(recipient.ledger_id)))
        # The helper inserts at the front unless told where: keep our order (ledger order).
        mail.add_personalization(personalization, index=len(mail.personalizations or []))
    # SendGrid wants text/plain before text/html.
    mail.add_content(Content("text/plain", text))
    mail.add_content(Content("text/html", html))
    for name, value in {**email.headers, "Content-Language": email.locale}.items():
        mail.add_header(Header(name, value))
    for category in email.categories:
        mail.add_category(Category(category))
    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(email.track_clicks, email.track_clicks)
    tracking.open_tracking = OpenTracking(email.track_opens)
    # Off, and said so: an account default must never add SendGrid's own footer or Google's query strings.
    tracking.subscription_tracking = SubscriptionTracking(False)
    tracking.ganalytics = Ganalytics(False)
    mail.tracking_settings = tracking
    payload: dict[str, Any] = mail.get()
    return payload


class SendGridTransport:
    """Posts bulk emails to SendGrid (or to ``MAILER_SENDGRID_API_URL``) over kept-alive connections."""

    name = "sendgrid"
    chunk_size = MAX_PERSONALIZATIONS

    def __init__(self, api_key: str, base_url: str, client: httpx.Client | None = None) -> None:
        self.url = base_url.rstrip("/") + "/v3/mail/send"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30.0),
        )

    def send(self, email: BulkEmail) -> list[Delivery]:
        try:
            _plain(email.sender.display_name, "sender's name")
            _plain(email.subject, "subject")
            _check_headers(email.headers)
            if email.reply_to is not None:
                _plain(email.reply_to.display_name, "reply-to name")
                ascii_addr_spec(email.reply_to.addr_spec)
        except UnsafeHeader as err:
            return deliveries_for_all(email, "permanent", error=f"cannot be sent: {err}")
        refused: dict[int, Delivery] = {}
        for recipient in email.recipients:
            try:
                check_recipient(recipient)
            except UnsafeHeader as err:
                refused[recipient.ledger_id] = Delivery(
                    recipient.ledger_id, "permanent", error=f"cannot be sent: {err}"
                )
        if refused:  # one bad recipient never holds back the others
            rest = [r for r in email.recipients if r.ledger_id not in refused]
            answered = {d.ledger_id: d for d in self._post(dataclasses.replace(email, recipients=rest))}
            return [refused.get(r.ledger_id) or answered[r.ledger_id] for r in email.recipients]
        return self._post(email)

    def _post(self, email: BulkEmail) -> list[Delivery]:
        if not email.recipients:
            return []
        payload = build_payload(email)
        try:
            response = self._client.post(self.url, json=payload, headers=self._headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            # The request never reached SendGrid.
            return deliveries_for_all(email, "transient", error=f"SendGrid unreachable: {err!r}")
        except httpx.TransportError as err:
            # The body may have arrived: whether SendGrid took it is unknowable. Never resend automatically.
            return deliveries_for_all(email, "unknown", error=f"SendGrid did not answer: {err!r}")
        return self._outcome(email, response)

    def _outcome(self, email: BulkEmail, response: httpx.Response) -> list[Delivery]:
        status = response.status_code
        if status == 202:
            return deliveries_for_all(email, "sent", provider_id=response.headers.get("X-Message-Id", ""))
        if status in (401, 403):
            raise TransportHalted(
                N_("SendGrid refused the API key (HTTP %(status)d): check MAILER_SENDGRID_API_KEY"),
                status=status,
            )
        error = f"SendGrid HTTP {status}: {_error_text(response)}"
        if status == 429:
            return deliveries_for_all(email, "transient", error=error, retry_after=_rate_limit_wait(response))
        if status == 503:
            return deliveries_for_all(email, "transient", error=error)
        if 500 <= status < 600:
            return deliveries_for_all(email, "unknown", error=error)
        return deliveries_for_all(email, "permanent", error=error)

    def close(self) -> None:
        """The connection pool outlives batches; :meth:`shutdown` closes it."""

    def shutdown(self) -> None:
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors", [])
        return "; ".join(str(e.get("message", e)) for e in errors) or response.text[:500]
    except ValueError:
        return response.text[:500]


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), when SendGrid says."""
    reset = response.headers.get("X-RateLimit-Reset")
    try:
        return max(0.0, float(reset) - time.time()) if reset else None
    except ValueError:
        return None
