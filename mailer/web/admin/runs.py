"""The overview, and mailouts: a new one (segment, fallbacks, schedule in Baghdad time, the dry run's
numbers, then a confirmation that says what will happen), its live progress, its controls and results."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, g, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from mailer import campaigns, events, letters, mailouts, sending, supporters
from mailer.errors import N_, MailerError, MailoutError, NotFoundError
from mailer.governorates import GOVERNORATES, governorate_name
from mailer.i18n import format_number
from mailer.locales import LOCALE_CODES, REGISTRY
from mailer.transports import Mailbox
from mailer.web.admin import access, audit, bp, now, page, problem_text
from mailer.web.base import web

BAGHDAD = ZoneInfo("Asia/Baghdad")
ACTIVE = ("running", "scheduled", "paused")


@bp.get("/")
@access("viewer")
def overview() -> Any:
    db = web().runtime.db
    campaign_rows = [
        (summary, campaigns.completeness(db, summary.slug)) for summary in campaigns.list_campaigns(db)
    ]
    recent = mailouts.recent_mailouts(db, 20, web().runtime.clock)
    week = letters.letters_per_official_since(db, now() - dt.timedelta(days=7))
    return page(
        "admin/overview.html",
        campaigns=campaign_rows,
        counts=supporters.supporter_counts(db),
        active=[m for m in recent if m.status in ACTIVE],
        week=sorted(week.items(), key=lambda kv: -kv[1]),
        governorate_label=lambda key: governorate_name(key, g.locale.code) if key else None,
    )


@bp.get("/mailouts")
@access("viewer")
def mailout_list() -> Any:
    return page("admin/mailouts.html", mailouts=mailouts.recent_mailouts(web().runtime.db, 100))


def _form_choices() -> dict[str, Any]:
    db = web().runtime.db
    code = g.locale.code
    return {
        "campaign_choices": [
            (c.slug, c.title.get(code) or c.title.get("en") or c.slug) for c in campaigns.list_campaigns(db)
        ],
        "governorate_choices": [(key, governorate_name(key, code)) for key in GOVERNORATES],
        "tag_choices": list(supporters.supporter_counts(db).by_tag),
        "locale_choices": [REGISTRY[c] for c in LOCALE_CODES],
    }


def _new_page(status: int = 200, problem: str | None = None, form: MultiDict[str, str] | None = None) -> Any:
    return page(
        "admin/mailout_new.html", status, problem=problem, form=form or MultiDict(), **_form_choices()
    )


@bp.get("/mailouts/new")
@access("coordinator")
def mailout_new() -> Any:
    return _new_page()


class LaunchRequest:
    """The new-mailout form, read and checked the way the command line reads its options."""

    def __init__(self, form: MultiDict[str, str]) -> None:
        self.slug = form.get("campaign", "")
        self.segment = mailouts.parse_segment(
            [
                f"{key}={value}"
                for key in mailouts.SEGMENT_KEYS
                for value in form.getlist(key)
                if value.strip()
            ]
        )
        self.fallbacks = mailouts.parse_fallbacks(
            [
                f"{code}={form.get('fallback_' + code)}"
                for code in LOCALE_CODES
                if form.get("fallback_" + code)
            ]
        )
        self.at = _baghdad_time(form.get("at", ""))


def _baghdad_time(text: str) -> dt.datetime | None:
    """A ``datetime-local`` value, read as Baghdad time (what coordinators think in), in UTC."""
    if not text.strip():
        return None
    try:
        local = dt.datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise MailoutError(N_("the start time %(value)s is not a date and time"), value=text) from error
    if local.tzinfo is not None:
        raise MailoutError(N_("the start time %(value)s is not a date and time"), value=text)
    moment = local.replace(tzinfo=BAGHDAD).astimezone(dt.UTC)
    if moment < now() - dt.timedelta(minutes=1):
        raise MailoutError(N_("the start time %(value)s is in the past"), value=text)
    return moment


@bp.post("/mailouts/plan")
@access("coordinator")
def mailout_plan() -> Any:
    """The dry run: what a launch would send, in numbers, and a button that launches exactly that."""
    try:
        wanted = LaunchRequest(request.form)
        plan = mailouts.plan_mailout(web().runtime.db, wanted.slug, wanted.segment, wanted.fallbacks)
    except MailerError as error:
        return _new_page(400, problem_text(error), request.form)
    if plan.total == 0:
        return _new_page(400, "empty", request.form)
    return page(
        "admin/mailout_confirm.html",
        plan=plan,
        form=request.form,
        at=wanted.at.astimezone(BAGHDAD) if wanted.at else None,
        content_languages=sorted(set(plan.content_locales.values()), key=list(LOCALE_CODES).index),
    )


@bp.post("/mailouts/launch")
@access("coordinator")
def mailout_launch() -> Any:
    rt = web().runtime
    try:
        wanted = LaunchRequest(request.form)
        rt.check_can_send()  # before anything is written
        result = mailouts.launch_mailout(
            rt.db,
            rt.backend,
            wanted.slug,
            wanted.segment,
            wanted.fallbacks,
            clock=rt.clock,
            batch_size=rt.settings.batch_size,
            at=wanted.at,
        )
    except MailerError as error:
        return _new_page(400, problem_text(error), request.form)
    audit(
        "mailout.launch",
        f"mailout {result.mailout_id}",
        campaign=wanted.slug,
        segment=wanted.segment,
        fallbacks=wanted.fallbacks,
        new_messages=result.new_messages,
        at=wanted.at.isoformat() if wanted.at else None,
    )
    return redirect(url_for("admin.mailout_detail", mailout_id=result.mailout_id))


@bp.post("/mailouts/test")
@access("coordinator")
def mailout_test() -> Any:
    """One message per enabled language to the signed-in person's own address, outside any mailout."""
    rt = web().runtime
    slug = request.form.get("campaign", "")
    try:
        codes = campaigns.enabled_locales(rt.db, slug)
        results = sending.send_test(
            rt.db,
            rt.transport,
            rt.renderer,
            rt.sender,
            slug,
            Mailbox(addr_spec=g.person.account.email),
            codes,
        )
    except MailerError as error:
        return _new_page(400, problem_text(error), request.form)
    audit("mailout.test", slug, locales=codes)
    return page("admin/mailout_tested.html", results=results, slug=slug)


def _status_or_404(mailout_id: int) -> mailouts.MailoutStatus:
    try:
        return mailouts.mailout_status(web().runtime.db, mailout_id, web().runtime.clock)
    except NotFoundError:
        abort(404)


def _detail_page(mailout_id: int, status: int = 200, problem: str | None = None) -> tuple[str, int]:
    mailout = _status_or_404(mailout_id)
    return page(
        "admin/mailout.html",
        status,
        mailout=mailout,
        # Why it stopped by itself (the provider refused our key, ...): the first thing to tell.
        mailout_reason=MailerError.from_json(mailout.status_reason) if mailout.status_reason else None,
        report=events.mailout_report(web().runtime.db, mailout_id, now()),
        timeline=events.mailout_timeline(web().runtime.db, mailout_id),
        columns=events.DELIVERY_COLUMNS,
        problem=problem,
    )


@bp.get("/mailouts/<int:mailout_id>")
@access("viewer")
def mailout_detail(mailout_id: int) -> Any:
    return _detail_page(mailout_id)


@bp.get("/mailouts/<int:mailout_id>/status.json")
@access("viewer")
def mailout_status_json(mailout_id: int) -> Any:
    """The counts for the page's live view, with each number already written the page's way (Babel's
    CLDR formats: Arabic-Indic digits where the language uses them)."""
    status = _status_or_404(mailout_id)
    code = g.locale.code
    return {
        "status": status.status,
        "total": status.total,
        "done": status.done,
        "text": {
            "total": format_number(status.total, code),
            "done": format_number(status.done, code),
            "by_locale": {
                loc: {state: format_number(n, code) for state, n in counts.items()}
                for loc, counts in status.by_locale.items()
            },
        },
    }


@bp.post("/mailouts/<int:mailout_id>/<any(pause, resume, cancel):action>")
@access("coordinator")
def mailout_control(mailout_id: int, action: str) -> Any:
    rt = web().runtime
    _status_or_404(mailout_id)
    detail: dict[str, Any] = {}
    try:
        if action == "pause":
            mailouts.pause_mailout(rt.db, mailout_id)
        elif action == "resume":
            mailouts.resume_mailout(rt.db, rt.backend, mailout_id, batch_size=rt.settings.batch_size)
        else:
            if request.form.get("confirm") != "yes":
                return redirect(url_for("admin.mailout_detail", mailout_id=mailout_id, ask="cancel"))
            detail["cancelled"] = mailouts.cancel_mailout(rt.db, mailout_id, clock=rt.clock)
    except MailerError as error:
        return _detail_page(mailout_id, 400, problem_text(error))
    audit(f"mailout.{action}", f"mailout {mailout_id}", **detail)
    return redirect(url_for("admin.mailout_detail", mailout_id=mailout_id))
