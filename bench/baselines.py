"""The baselines the engine is measured against: the same alert, the same data, the same fake SendGrid.

- **B0**: one process, no database, no queue. The alert rendered once per locale as the engine renders it
  (``Renderer().render_alert``), then SendGrid requests of 1000 personalizations each, the payload built as
  plain dictionaries (substitutions per recipient for the placeholders the alert uses, escaped apart for
  the text and the HTML part, ``List-Unsubscribe`` and the ledger id per recipient), posted over one
  kept-alive ``httpx.Client``. The physical floor of the send path on this machine.
- **B0+sign**: B0 plus the signed links the engine puts in every message: one unsubscribe token (the
  engine's format, verifiable by ``mailer.tokens.TokenSigner``), written into the unsubscribe URL and the
  ``mailto:`` of ``List-Unsubscribe``, signed with the key derived once, as a careful person would.
- **B3**: Celery tasks of 1000 supporter ids; a worker loads those supporters from the database, renders
  the alert once per locale (cached per process), signs the same link and posts one request per recipient
  over a kept-alive connection.
- **B1** (fair): one Celery task per recipient, the alert rendered once per process and locale (cached), the
  same signed link, and one request per recipient through the ``sendgrid`` package's own client
  (``SendGridAPIClient(...).send()``), which opens a new connection for each.

B0 runs as ``python -m bench.baselines b0 [--sign] --recipients N`` with the ``MAILER_*`` variables of the
run and prints one JSON line; B3 and B1 are served by ``celery -A bench.baselines worker``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailer.campaigns import parse_campaign_folder  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.content import PLACEHOLDERS, marker  # noqa: E402
from mailer.rendering import AlertContent, PreparedEmail, Renderer  # noqa: E402
from mailer.resources import demo_dir  # noqa: E402

log = logging.getLogger(__name__)

SLUG = "protect-hrds-iraq"
CODES = ("en", "ar", "ckb", "kmr")
NAMES = {"en": "Sarah Miller", "ar": "زينب حسن", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Şêxo"}
API_KEY = "SG.bench-key"
BATCH = 1000  # SendGrid's most personalizations per request, and B3's ids per task
QUEUE = "baselines"
LEDGER_ARG = "mailer_message"
_MARKER = re.compile(r"MAILERPH\d\d")
# A Latin letter in a right-to-left value: the engine isolates such a run in <span dir="ltr">.
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")


def address(index: int) -> str:
    """The synthetic supporter number ``index`` (example.org only: nothing can ever be delivered)."""
    return f"bench{index:07d}@example.org"


# Rendering, once per locale and process


def alert_contents(slug: str = SLUG) -> dict[str, AlertContent]:
    """The seed campaign's alert per locale, read from its folder as a launch would store it."""
    spec = parse_campaign_folder(demo_dir() / "campaigns" / slug)
    return {
        c.locale: AlertContent(
            spec.title.get(c.locale, spec.title[spec.default_locale]), c.subject, c.preheader, c.body
        )
        for c in spec.contents
        if c.kind == "alert"
    }


@dataclass(frozen=True)
class Alert:
    """An alert rendered for one locale: markers still in it, keyed per part as SendGrid substitutes them."""

    code: str
    rtl: bool
    prepared: PreparedEmail
    subject: str  # markers keyed for the text substitutions
    text: str
    html: str  # markers keyed for the HTML substitutions
    markers: tuple[tuple[str, str], ...]  # (marker, placeholder) for every marker the alert uses


class Alerts:
    """Renders each locale's alert the first time it is asked for, as the engine does, and keeps it."""

    def __init__(self, base_url: str, slug: str = SLUG) -> None:
        self.base_url = base_url
        self.slug = slug
        self._renderer = Renderer()
        self._contents: dict[str, AlertContent] | None = None
        self._alerts: dict[str, Alert] = {}

    def get(self, code: str) -> Alert:
        alert = self._alerts.get(code)
        if alert is None:
            if self._contents is None:
                self._contents = alert_contents(self.slug)
            prepared = self._renderer.render_alert(
                self._contents[code], code, dt.date.today(), privacy_url=f"{self.base_url}/{code}/privacy"
            )
            names = {marker(name): name for name in PLACEHOLDERS}
            used = sorted(set(_MARKER.findall(prepared.subject + prepared.text + prepared.html)))
            alert = Alert(
                code=code,
                rtl=prepared.locale.is_rtl,
                prepared=prepared,
                subject=_MARKER.sub(lambda m: m.group(0) + "t", prepared.subject),
                text=_MARKER.sub(lambda m: m.group(0) + "t", prepared.text),
                html=_MARKER.sub(lambda m: m.group(0) + "h", prepared.html),
                markers=tuple((m, names[m]) for m in used),
            )
            self._alerts[code] = alert
        return alert


# Signing, the key derived once


class LinkSigner:
    """Unsubscribe tokens in itsdangerous's ``URLSafeTimedSerializer`` format (what the engine's links
    carry and its pages verify), with the key derived once and a keyed HMAC copied per token, and no
    attempt to compress a payload of two ids (itsdangerous tries zlib on every one)."""

    def __init__(self, secret_key: str, purpose: str = "unsubscribe") -> None:
        salt = f"solidarity-mailer.{purpose}".encode()
        derived = hashlib.sha1(salt + b"signer" + secret_key.encode()).digest()  # noqa: S324 - itsdangerous's format
        self._mac = hmac.new(derived, digestmod=hashlib.sha1)

    def sign(self, payload: dict[str, int]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        stamp = int(time.time()).to_bytes(8, "big").lstrip(b"\0")
        value = _b64(data) + b"." + _b64(stamp)
        mac = self._mac.copy()
        mac.update(value)
        return (value + b"." + _b64(mac.digest())).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# Payloads, built as plain dictionaries


@dataclass(frozen=True)
class Sender:
    """Who alerts come from and where links point: the run's settings."""

    from_email: str
    from_name: str
    base_url: str
    api_url: str
    api_key: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Sender:
        return cls(
            settings.from_email,
            settings.from_name,
            settings.base_url,
            settings.sendgrid_api_url.rstrip("/") + "/v3/mail/send",
            settings.sendgrid_api_key or "",
        )


def recipient_values(
    sender: Sender, code: str, ledger_id: int, supporter_id: int, name: str, signer: LinkSigner | None
) -> tuple[dict[str, str], dict[str, str]]:
    """A recipient's placeholder values and ``List-Unsubscribe`` headers, links as the engine makes them
    (without ``signer``: the same links carrying the bare id, for B0)."""
    token = signer.sign({"s": supporter_id, "m": ledger_id}) if signer else str(ledger_id)
    unsubscribe_url = f"{sender.base_url}/u/{token}"
    mailto = f"mailto:{sender.from_email}?subject={quote('unsubscribe ' + token)}"
    values = {
        "first_name": name.split()[0],
        "name": name,
        "governorate": "",
        "action_url": f"{sender.base_url}/{code}/{SLUG}",
        "unsubscribe_url": unsubscribe_url,
    }
    headers = {
        "List-Unsubscribe": f"<{unsubscribe_url}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return values, headers


def html_value(value: str, rtl: bool) -> str:
    escaped = escape(value, quote=True)
    if rtl and not value.startswith("http") and _LATIN.search(value):
        return f'<span dir="ltr">{escaped}</span>'
    return escaped


def personalization(
    alert: Alert, email: str, name: str, values: dict[str, str], headers: dict[str, str], ledger_id: int
) -> dict[str, Any]:
    substitutions: dict[str, str] = {}
    for mark, placeholder in alert.markers:
        value = values.get(placeholder, "")
        substitutions[mark + "t"] = value
        substitutions[mark + "h"] = html_value(value, alert.rtl)
    return {
        "to": [{"email": email, "name": name}],
        "substitutions": substitutions,
        "headers": headers,
        "custom_args": {LEDGER_ARG: str(ledger_id)},
    }


def message_fields(sender: Sender, code: str, subject: str, text: str, html: str) -> dict[str, Any]:
    """What every request of a locale shares, as the engine's requests carry it."""
    return {
        "from": {"email": sender.from_email, "name": sender.from_name},
        "subject": subject,
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "headers": {"List-Id": f"<{SLUG}.{sender.from_email.rpartition('@')[2]}>", "Content-Language": code},
        "categories": ["alert"],
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
            "ganalytics": {"enable": False},
        },
    }


def keepalive_client() -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30.0),
    )


# B0 and B0+sign: one process


def run_b0(settings: Settings, recipients: int, sign: bool) -> dict[str, Any]:
    """Send ``recipients`` synthetic supporters (numbered as the seeded ones) the alert; the figures."""
    sender = Sender.from_settings(settings)
    headers = {"Authorization": f"Bearer {sender.api_key}", "Content-Type": "application/json"}
    by_locale: dict[str, list[int]] = {code: [] for code in CODES}
    for index in range(recipients):
        by_locale[CODES[index % len(CODES)]].append(index)
    before, started = os.times(), time.perf_counter()
    alerts = Alerts(sender.base_url)
    signer = LinkSigner(settings.require_secret_keys()[0]) if sign else None
    requests = refused = 0
    with keepalive_client() as client:
        for code, indexes in by_locale.items():
            if not indexes:
                continue
            alert = alerts.get(code)
            fields = message_fields(sender, code, alert.subject, alert.text, alert.html)
            name = NAMES[code]
            for start in range(0, len(indexes), BATCH):
                people = []
                for index in indexes[start : start + BATCH]:
                    values, extra = recipient_values(sender, code, index + 1, index + 1, name, signer)
                    people.append(personalization(alert, address(index), name, values, extra, index + 1))
                response = client.post(
                    sender.api_url, json={"personalizations": people, **fields}, headers=headers
                )
                requests += 1
                refused += response.status_code != 202
    seconds, after = time.perf_counter() - started, os.times()
    return {
        "seconds": seconds,
        "cpu": (after.user - before.user) + (after.system - before.system),
        "requests": requests,
        "refused": refused,
    }


# B3 and B1: Celery workers


def make_app(broker_url: str) -> Celery:
    """The baselines' Celery app, configured as the engine's (late acknowledgement, prefetch 1, JSON)."""
    app = Celery("bench_baselines", broker=broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
        worker_send_task_events=False,
    )
    return app


app = make_app(os.environ.get("MAILER_BROKER_URL") or "redis://127.0.0.1:6379/0")


class _Worker:
    """What a worker process keeps between tasks: the database, rendered alerts, the signer, a client."""

    def __init__(self) -> None:
        from mailer.store import Database  # the worker's imports, not B0's

        settings = Settings.from_env()
        self.db = Database(settings.database_url, settings.require_vault())
        self.sender = Sender.from_settings(settings)
        self.alerts = Alerts(settings.base_url)
        self.signer = LinkSigner(settings.require_secret_keys()[0])
        self.headers = {"Authorization": f"Bearer {self.sender.api_key}", "Content-Type": "application/json"}
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = keepalive_client()
        return self._client

    def supporters(self, ids: Sequence[int]) -> Iterator[tuple[int, str, str, str]]:
        """(id, email, name, locale) of each supporter, decrypted as the engine reads them."""
        from sqlalchemy import select

        from mailer.store.models import Supporter

        with self.db.session() as session:
            for row in session.scalars(select(Supporter).where(Supporter.id.in_(list(ids)))):
                yield row.id, row.email, row.name, row.locale

    def message(
        self, supporter_id: int, email: str, name: str, code: str
    ) -> tuple[dict[str, Any], dict[str, str], Any]:
        """One recipient's whole message (rendered once per locale, personalised here), its headers, and
        the rendered email."""
        alert = self.alerts.get(code)
        values, headers = recipient_values(self.sender, code, supporter_id, supporter_id, name, self.signer)
        rendered = alert.prepared.personalise(values)
        fields = message_fields(self.sender, code, rendered.subject, rendered.text, rendered.html)
        return fields, headers, rendered


_state: tuple[int, _Worker] | None = None


def worker() -> _Worker:
    """One per process: a forked pool child builds its own (it must not share its parent's connections)."""
    global _state
    if _state is None or _state[0] != os.getpid():
        _state = (os.getpid(), _Worker())
    return _state[1]


@app.task(name="bench.b3_send")  # type: ignore[untyped-decorator]
def b3_send(supporter_ids: list[int]) -> int:
    """B3: a batch of ids, one kept-alive request per recipient."""
    state = worker()
    refused = 0
    for supporter_id, email, name, code in state.supporters(supporter_ids):
        fields, headers, _ = state.message(supporter_id, email, name, code)
        body = {
            "personalizations": [
                {
                    "to": [{"email": email, "name": name}],
                    "headers": headers,
                    "custom_args": {LEDGER_ARG: str(supporter_id)},
                }
            ],
            **fields,
        }
        response = state.client.post(state.sender.api_url, json=body, headers=state.headers)
        refused += response.status_code != 202
    if refused:
        log.warning("B3: %d requests refused", refused)
    return refused


@app.task(name="bench.b1_send")  # type: ignore[untyped-decorator]
def b1_send(supporter_id: int) -> int:
    """B1: one recipient, through the ``sendgrid`` package's helpers and its client (a new connection)."""
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Content, CustomArg, From, Header, Mail, To

    state = worker()
    for _, email, name, code in state.supporters([supporter_id]):
        _, headers, rendered = state.message(supporter_id, email, name, code)
        mail = Mail(
            from_email=From(state.sender.from_email, state.sender.from_name),
            to_emails=To(email, name),
            subject=rendered.subject,
            plain_text_content=Content("text/plain", rendered.text),
            html_content=Content("text/html", rendered.html),
        )
        # Per recipient, in its personalization (SendGrid's document types the message-level custom_args
        # as a string, and the helper puts them there unless told otherwise).
        for header, value in headers.items():
            mail.add_header(Header(header, value, p=0))
        mail.add_custom_arg(CustomArg(LEDGER_ARG, str(supporter_id), p=0))
        client = SendGridAPIClient(
            api_key=state.sender.api_key, host=state.sender.api_url.removesuffix("/v3/mail/send")
        )
        try:
            client.send(mail)
        except HTTPError as err:
            log.warning("B1: refused (%s)", err)
            return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["b0"])
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--sign", action="store_true", help="B0+sign: sign each recipient's unsubscribe link")
    arguments = parser.parse_args()
    print(json.dumps(run_b0(Settings.from_env(), arguments.recipients, arguments.sign)), flush=True)


if __name__ == "__main__":
    main()
