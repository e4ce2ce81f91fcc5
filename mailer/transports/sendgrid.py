"""SendGrid's v3 Mail Send: one request carries up to 1000 personalizations of one content.

The request body is built directly as the dictionaries the API takes (the official OpenAPI document, which
the test fake validates every body against, is the reference) and posted through a pooled HTTP client: the
``sendgrid`` package's client opens a new connection for every request, and its helper classes cost more
than the rest of the send. Each recipient's values travel as ``substitutions``, escaped apart for the HTML
and the text part (their keys differ by a suffix); ``custom_args`` carry our ledger id only, since
SendGrid stores them. Every value is checked once, as its personalization is built.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from mailer.content import html_value, placeholder_of
from mailer.errors import N_
from mailer.fields import ENCODED_WORD
from mailer.transports.base import (
    MAX_HEADER_TEXT,
    BulkEmail,
    Delivery,
    Mailbox,
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
    if "=?" in text and ENCODED_WORD.search(text):
        raise UnsafeHeader(f"the {what} holds encoded-word syntax")
    return text


def _all_plain(values: Sequence[str]) -> bool:
    """Whether every value is surely plain header text, in a few calls into C: the usual case, for the
    thousand recipients of a request. False says only "look at each one" (:func:`_plain` says why)."""
    joined = " ".join(values)
    return joined.isprintable() and "=?" not in joined and max(map(len, values), default=0) <= MAX_HEADER_TEXT


def _check_header_names(headers: Mapping[str, str]) -> dict[str, str]:
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            raise UnsafeHeader(f"SendGrid does not take the {name} header in headers")
    return dict(headers)


def _check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        _plain(value, name)
    return _check_header_names(headers)


def _mailbox(mailbox: Mailbox, what: str) -> dict[str, str]:
    """``{"email": ..., "name": ...}``, the name left out when there is none (SendGrid refuses an empty one)."""
    entry = {"email": ascii_addr_spec(mailbox.addr_spec)}
    name = _plain(mailbox.display_name or "", what)
    if name:
        entry["name"] = name
    return entry


def check_recipient(recipient: Recipient) -> None:
    """:class:`UnsafeHeader` when this recipient's address or name cannot be handed to SendGrid."""
    _personalization(recipient, (), rtl=False)


#: A marker the email uses: its key in the text part, its key in the HTML part, the placeholder it stands for.
Marker = tuple[str, str, str]


def _personalization(recipient: Recipient, markers: tuple[Marker, ...], rtl: bool) -> dict[str, Any]:
    """One recipient's part of the request, every value checked (a value may land in the subject)."""
    values, headers, address = recipient.values, recipient.headers, recipient.address
    if _all_plain((*values.values(), *headers.values(), address.display_name or "")):
        to = {"email": ascii_addr_spec(address.addr_spec)}
        if address.display_name:
            to["name"] = address.display_name
        own_headers = _check_header_names(headers)
    else:  # one of them is not: which, and why
        for name, value in values.items():
            _plain(value, name)
        to = _mailbox(address, "recipient's name")
        own_headers = _check_headers(headers)
    substitutions: dict[str, str] = {}
    for text_key, html_key, placeholder in markers:
        value = values.get(placeholder, "")
        substitutions[text_key] = value
        substitutions[html_key] = html_value(value, rtl)
    personalization: dict[str, Any] = {"to": [to]}
    if substitutions:
        personalization["substitutions"] = substitutions
    if own_headers:
        personalization["headers"] = own_headers
    personalization["custom_args"] = {LEDGER_ARG: str(recipient.ledger_id)}
    return personalization


def _shared_values_inlined(email: BulkEmail) -> BulkEmail:
    """The email with every placeholder whose value is the same for all its recipients (the action page's
    address, say) written into the content once, instead of into a thousand substitutions. A value that
    would not pass as a recipient's (or looks like a marker) stays a substitution, refused per recipient."""
    if len(email.recipients) < 2:  # one recipient: nothing to share
        return email
    shared: dict[str, str] = {}
    for marker in set(_MARKER.findall(email.subject + email.text + email.html)):
        placeholder = placeholder_of(marker)
        value = email.recipients[0].values.get(placeholder, "")
        sendable = _all_plain((value,)) and not _MARKER.search(value)
        if sendable and all(r.values.get(placeholder, "") == value for r in email.recipients):
            shared[marker] = value
    if not shared:
        return email
    html = {marker: html_value(value, email.rtl) for marker, value in shared.items()}
    return dataclasses.replace(
        email,
        subject=_MARKER.sub(lambda m: shared.get(m.group(0), m.group(0)), email.subject),
        text=_MARKER.sub(lambda m: shared.get(m.group(0), m.group(0)), email.text),
        html=_MARKER.sub(lambda m: html.get(m.group(0), m.group(0)), email.html),
    )


def _markers(email: BulkEmail) -> tuple[Marker, ...]:
    found = sorted(set(_MARKER.findall(email.subject + email.text + email.html)))
    return tuple((marker + "t", marker + "h", placeholder_of(marker)) for marker in found)


def _message_fields(email: BulkEmail) -> dict[str, Any]:
    """Everything of the request but the personalizations: the same for every recipient."""
    fields: dict[str, Any] = {"from": _mailbox(email.sender, "sender's name")}
    if email.reply_to is not None:
        # The API's own field: SendGrid reserves Reply-To in `headers` and refuses the request.
        fields["reply_to"] = _mailbox(email.reply_to, "reply-to name")
    fields["subject"] = _keyed(_plain(email.subject, "subject"), "t")
    # SendGrid wants text/plain before text/html.
    fields["content"] = [
        {"type": "text/plain", "value": _keyed(email.text, "t")},
        {"type": "text/html", "value": _keyed(email.html, "h")},
    ]
    fields["headers"] = _check_headers({**email.headers, "Content-Language": email.locale})
    if email.categories:
        fields["categories"] = list(email.categories)
    fields["tracking_settings"] = {
        "click_tracking": {"enable": email.track_clicks, "enable_text": email.track_clicks},
        "open_tracking": {"enable": email.track_opens},
        # Off, and said so: an account default must never add SendGrid's own footer or Google's queries.
        "subscription_tracking": {"enable": False},
        "ganalytics": {"enable": False},
    }
    return fields


def build_payload(email: BulkEmail) -> dict[str, Any]:
    """The Mail Send request body for a bulk email (at most 1000 recipients); :class:`UnsafeHeader` when a
    value cannot be sent."""
    if len(email.recipients) > MAX_PERSONALIZATIONS:
        raise ValueError(f"SendGrid takes at most {MAX_PERSONALIZATIONS} personalizations per request")
    email = _shared_values_inlined(email)
    markers = _markers(email)
    personalizations = [_personalization(r, markers, email.rtl) for r in email.recipients]
    return {"personalizations": personalizations, **_message_fields(email)}


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
        if len(email.recipients) > MAX_PERSONALIZATIONS:
            raise ValueError(f"SendGrid takes at most {MAX_PERSONALIZATIONS} personalizations per request")
        email = _shared_values_inlined(email)
        try:
            fields = _message_fields(email)
        except UnsafeHeader as err:
            return deliveries_for_all(email, "permanent", error=f"cannot be sent: {err}")
        markers = _markers(email)
        personalizations: list[dict[str, Any]] = []
        accepted: list[Recipient] = []
        refused: dict[int, Delivery] = {}
        for recipient in email.recipients:
            try:
                personalizations.append(_personalization(recipient, markers, email.rtl))
            except UnsafeHeader as err:  # one bad recipient never holds back the others
                refused[recipient.ledger_id] = Delivery(
                    recipient.ledger_id, "permanent", error=f"cannot be sent: {err}"
                )
            else:
                accepted.append(recipient)
        if not refused:
            return self._post(email, {"personalizations": personalizations, **fields})
        rest = dataclasses.replace(email, recipients=accepted)
        answered = {
            d.ledger_id: d for d in self._post(rest, {"personalizations": personalizations, **fields})
        }
        return [refused.get(r.ledger_id) or answered[r.ledger_id] for r in email.recipients]

    def _post(self, email: BulkEmail, payload: dict[str, Any]) -> list[Delivery]:
        if not email.recipients:
            return []
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
