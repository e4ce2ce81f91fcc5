"""Letters and officials (letters per official per day, pending confirmations, bounced officials and a
way to correct them, the directory) and suppressions (search, add, remove, with reasons and scopes)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import g, redirect, request, url_for

from mailer import events, letters, targets
from mailer.errors import N_, MailerError
from mailer.fields import FieldProblem, check_address
from mailer.governorates import governorate_name
from mailer.web.admin import access, audit, bp, now, page, problem_text
from mailer.web.admin.people import upload_name
from mailer.web.base import web

BAGHDAD = ZoneInfo("Asia/Baghdad")
CHART_DAYS = 28


def _letters_page(status: int = 200, **context: Any) -> tuple[str, int]:
    db = web().runtime.db
    today = now().astimezone(BAGHDAD).date()
    days = [today - dt.timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    by_official = letters.letters_by_official_and_day(db, now() - dt.timedelta(days=CHART_DAYS), BAGHDAD)
    officials = targets.list_targets(db)
    bounced = {row["email"] for row in events.list_suppressions(db) if row["scope"] == "target"}
    code = g.locale.code
    defaults: dict[str, Any] = {"report": None, "problem": None, "corrected": None}
    return page(
        "admin/letters.html",
        status,
        day_labels=[day.isoformat() for day in days],
        series={slug: [per_day.get(day, 0) for day in days] for slug, per_day in sorted(by_official.items())},
        pending=letters.pending_confirmations(db),
        officials=[
            {
                **o,
                "shown_institution": o["institution"].get(code) or o["institution"].get("en", ""),
                "shown_governorate": governorate_name(o["governorate"], code) if o["governorate"] else None,
                "bounced": o["status"] == "bounced" or o["email"] in bounced,
            }
            for o in officials
        ],
        statuses=targets.STATUSES,
        **{**defaults, **context},
    )


@bp.get("/letters")
@access("viewer")
def letters_page() -> Any:
    return _letters_page()


@bp.post("/officials/import")
@access("coordinator")
def officials_import() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _letters_page(400, problem="no_file")
    name = upload_name(upload.filename, "officials.yaml")
    try:
        report = targets.import_targets_bytes(web().runtime.db, upload.read(), name)
    except MailerError as error:
        return _letters_page(400, problem=problem_text(error))
    audit(
        "officials.import",
        name,
        created=report.created,
        updated=report.updated,
        rejected=len(report.rejected),
    )
    return _letters_page(report=report)


@bp.post("/officials/<slug>")
@access("coordinator")
def official_update(slug: str) -> Any:
    email = request.form.get("email") or None
    status = request.form.get("status") or None
    try:
        changed = targets.update_target(web().runtime.db, slug, email=email, status=status)
    except MailerError as error:
        return _letters_page(400, problem=problem_text(error))
    audit("official.update", f"official {slug}", status=changed["status"], address_changed=email is not None)
    return redirect(url_for("admin.letters_page", corrected=slug))


# Suppressions


def _suppressions_page(status: int = 200, **context: Any) -> tuple[str, int]:
    rows = events.list_suppressions(web().runtime.db)
    query = request.values.get("q", "").strip().lower()[:320]
    shown = [r for r in rows if query in r["email"].lower()] if query else rows
    by_reason: dict[str, int] = {}
    for row in rows:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    defaults: dict[str, Any] = {"problem": None, "done": None}
    return page(
        "admin/suppressions.html",
        status,
        rows=shown[:500],
        more=max(0, len(shown) - 500),
        total=len(rows),
        by_reason=by_reason,
        query=query,
        scopes=events.SCOPES,
        **{**defaults, **context},
    )


@bp.get("/suppressions")
@access("viewer")
def suppressions_page() -> Any:
    return _suppressions_page()


@bp.post("/suppressions/search")
@access("coordinator")
def suppressions_search() -> Any:
    """A search by address goes in the POST body: never an address in a URL."""
    return _suppressions_page()


def _address() -> str:
    try:
        return check_address(request.form.get("email", ""))
    except FieldProblem as problem:
        raise MailerError(
            N_("%(address)s: %(reason)s"), address=request.form.get("email", ""), reason=problem
        ) from problem


@bp.post("/suppressions/add")
@access("coordinator")
def suppression_add() -> Any:
    try:
        address = _address()
        added = events.add_suppression(web().runtime.db, address, request.form.get("scope", ""), "manual")
    except MailerError as error:
        return _suppressions_page(400, problem=problem_text(error))
    audit("suppression.add", "", scope=request.form.get("scope"), added=added)
    return _suppressions_page(done="added" if added else "already")


@bp.post("/suppressions/remove")
@access("coordinator")
def suppression_remove() -> Any:
    if request.form.get("confirm") != "yes":
        return _suppressions_page(400, problem="confirm_remove")
    try:
        address = _address()
        removed = events.remove_suppression(
            web().runtime.db, address, request.form.get("scope", ""), request.form.get("reason") or None
        )
    except MailerError as error:
        return _suppressions_page(400, problem=problem_text(error))
    audit(
        "suppression.remove",
        "",
        scope=request.form.get("scope"),
        reason=request.form.get("reason"),
        removed=removed,
    )
    return _suppressions_page(done="removed")
