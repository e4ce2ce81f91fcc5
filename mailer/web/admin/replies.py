"""Answers: which officials answer each campaign's letters (replies that came back, what writers told us),
and the replies themselves for coordinators."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, g

from mailer import answers, campaigns, inbound, letters, targets
from mailer.i18n import format_date
from mailer.web.admin import access, audit, bp, page
from mailer.web.base import web


@bp.get("/replies")
@access("viewer")
def replies_page() -> Any:
    db = web().runtime.db
    code = g.locale.code
    titles = {
        o["slug"]: o["title"].get(code) or o["title"].get("en", o["slug"]) for o in targets.list_targets(db)
    }
    sections = [
        {
            "summary": summary,
            "responses": (responses := answers.official_responses(db, summary.slug)),
            "total": answers.campaign_total(responses),
            "replies": inbound.campaign_replies(db, summary.slug, limit=50),
        }
        for summary in campaigns.list_campaigns(db)
    ]
    return page("admin/replies.html", sections=sections, when=_day, titles=titles)


@bp.get("/replies/<int:reply_id>")
@access("coordinator")
def reply_read(reply_id: int) -> Any:
    reply = inbound.coordinator_reply(web().runtime.db, reply_id)
    if reply is None:
        abort(404)
    audit(
        "reply.read", f"inbound:{reply_id}"
    )  # an official's answer may name the writer: who read it is kept
    return page(
        "admin/reply.html", reply=reply, reply_id=reply_id, when=_day(dt.datetime.fromisoformat(reply.date))
    )


def _day(moment: dt.datetime) -> str:
    return format_date(moment.astimezone(letters.BAGHDAD).date(), g.locale.code)
