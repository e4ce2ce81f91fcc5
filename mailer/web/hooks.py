"""The providers' doors: SendGrid's signed Event Webhook (stored at once, applied by the workers)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from sendgrid.helpers.eventwebhook import EventWebhookHeader

from mailer import events
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
