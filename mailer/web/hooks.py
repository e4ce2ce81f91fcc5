"""The providers' doors: SendGrid's signed Event Webhook (stored at once, applied by the workers), and
SendGrid Inbound Parse (the message stored at once, read by the sweep)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, request
from sendgrid.helpers.eventwebhook import EventWebhookHeader

from mailer import events, inbound
from mailer.web.base import web
from mailer.web.public import QueueWhenBack

bp = Blueprint("hooks", __name__)


@bp.post("/webhooks/sendgrid")
def sendgrid_webhook() -> Any:
    rt = web().runtime
    verifier = rt.webhook_verifier
    if verifier is None:
        return Response("webhook not configured\n", status=403, mimetype="text/plain")
    raw = request.get_data(cache=False)
    try:
        batch = verifier.verify(
            raw,
            request.headers.get(EventWebhookHeader.SIGNATURE),
            request.headers.get(EventWebhookHeader.TIMESTAMP),
            rt.clock(),
        )
    except events.WebhookRejected as rejected:
        return Response(f"{rejected}\n", status=403, mimetype="text/plain")
    stored = events.store_events(rt.db, batch, rt.clock())
    if stored:  # the heavy part, after the answer's data is safe
        QueueWhenBack(rt.backend).enqueue_apply_events(stored)
    return {"received": len(batch), "stored": len(stored)}


#: Where SendGrid Inbound Parse posts: the secret follows, so that the address alone is a credential.
INBOUND_PREFIX = "/webhooks/inbound/"
#: Room for the form's other fields (envelope, SPF, charsets...) beside the message itself.
_FORM_ROOM = 256 * 1024


def inbound_body_cap(max_message_bytes: int) -> int:
    return max_message_bytes + _FORM_ROOM


def _authorised(secret: str) -> bool:
    """The secret in the address and the basic-auth pair both match (compared in constant time)."""
    settings = web().runtime.settings
    expected_secret, expected_auth = settings.inbound_parse_secret, settings.inbound_parse_auth
    if not expected_secret or not expected_auth:
        return False
    auth = request.authorization
    given = f"{auth.username}:{auth.password}" if auth and auth.type == "basic" else ""
    secret_ok = hmac.compare_digest(secret.encode(), expected_secret.encode())
    return hmac.compare_digest(given.encode(), expected_auth.encode()) and secret_ok


def message_from_parse_form(form: Mapping[str, str]) -> bytes | None:
    """The message as SendGrid Inbound Parse posts it: whole in ``email`` ("POST the raw, full MIME
    message", which this door asks for), or, when that box was left unticked, rebuilt from ``headers``
    and the ``text`` part (attachments are then not kept)."""
    raw = form.get("email")
    if raw:
        return raw.encode("utf-8", "surrogateescape")
    headers = form.get("headers")
    if not headers:
        return None
    kept = [
        line
        for line in headers.replace("\r\n", "\n").split("\n")
        if not line.lower().startswith(("content-type:", "content-transfer-encoding:", "mime-version:"))
    ]
    text = form.get("text") or inbound.html_to_text(form.get("html") or "")
    head = "\r\n".join(kept).strip()
    body = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return (
        f"{head}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    ).encode()


def _envelope_recipients(form: Mapping[str, str]) -> list[str]:
    try:
        envelope = json.loads(form.get("envelope") or "{}")
    except ValueError:
        return []
    to = envelope.get("to") if isinstance(envelope, dict) else None
    return [str(a) for a in to if isinstance(a, str)][:20] if isinstance(to, list) else []


@bp.post(INBOUND_PREFIX + "<secret>")
def inbound_parse(secret: str) -> Any:
    rt = web().runtime
    # Before the body is read: a stranger's 10 MB costs us nothing but the refusal.
    if not _authorised(secret):
        return Response(
            "unauthorised\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Basic realm="inbound"'},
        )
    raw = message_from_parse_form(request.form)
    if raw is None:
        return Response("no message in the form (email or headers)\n", status=400, mimetype="text/plain")
    try:
        stored = rt.receive_inbound(raw, "sendgrid", _envelope_recipients(request.form))
    except inbound.InboundRejected as rejected:
        # Answered 200: SendGrid would retry a refusal for three days, and it will never be accepted.
        return {"stored": False, "refused": str(rejected)}
    return {"stored": stored is not None}
