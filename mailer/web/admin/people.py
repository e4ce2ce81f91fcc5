"""Supporters: counts by segment, an import with its per-row report, one person found, exported or
erased, and a segment's list as a spreadsheet-safe CSV.

An address is only ever sent in a POST body, never in a URL (URLs end up in logs and browser history).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, g, request, stream_with_context

from mailer import mailouts, privacy, supporters
from mailer.errors import MailerError
from mailer.fields import forbidden_character
from mailer.governorates import governorate_name
from mailer.web.admin import access, audit, bp, now, page, problem_text
from mailer.web.base import web


def _counts_page(status: int = 200, **context: Any) -> tuple[str, int]:
    counts = supporters.supporter_counts(web().runtime.db)
    code = g.locale.code
    governorates = [
        (governorate_name(key, code) if key else None, number)
        for key, number in counts.by_governorate.items()
    ]
    defaults = {"report": None, "problem": None, "found": None, "searched": False, "erased": False}
    return page(
        "admin/supporters.html", status, counts=counts, governorates=governorates, **{**defaults, **context}
    )


@bp.get("/supporters")
@access("viewer")
def supporters_page() -> Any:
    return _counts_page()


def upload_name(name: str | None, default: str = "upload.csv") -> str:
    """The uploaded file's name for the report: its last part, printable, short."""
    base = (name or default).replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in base if forbidden_character(ch) is None)[:100]
    return clean or default


@bp.post("/supporters/import")
@access("coordinator")
def supporters_import() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _counts_page(400, problem="no_file")
    name = upload_name(upload.filename)
    try:
        report = supporters.import_supporters_bytes(web().runtime.db, upload.read(), name)
    except MailerError as error:
        return _counts_page(400, problem=problem_text(error))
    audit(
        "supporters.import",
        name,
        rows=report.rows_read,
        created=report.created,
        updated=report.updated,
        rejected=len(report.rejected),
    )
    return _counts_page(report=report)


@bp.post("/supporters/find")
@access("coordinator")
def supporters_find() -> Any:
    address = request.form.get("email", "").strip()[:320]
    found = privacy.find_supporter(web().runtime.db, address) if address else None
    # Reading a person's record is worth a line in the log too (never the address itself).
    audit("supporter.find", f"supporter {found['id']}" if found else "no match")
    return _counts_page(found=found, searched=True, address=address)


@bp.post("/supporters/export")
@access("coordinator")
def supporter_export() -> Any:
    address = request.form.get("email", "").strip()[:320]
    document = privacy.export_person(web().runtime.db, address)
    supporter = document.get("supporter")
    audit("supporter.export", f"supporter {supporter['id']}" if supporter else "no match")
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="person.json"'},
    )


@bp.post("/supporters/erase")
@access("coordinator")
def supporter_erase() -> Any:
    address = request.form.get("email", "").strip()[:320]
    if request.form.get("confirm") != "yes" or not address:
        found = privacy.find_supporter(web().runtime.db, address) if address else None
        return _counts_page(400, found=found, searched=True, address=address, problem="confirm_erase")
    found = privacy.find_supporter(web().runtime.db, address)
    erasure = privacy.erase_person(web().runtime.db, address, now())
    audit(
        "supporter.erase",
        f"supporter {found['id']}" if found else "no match",
        letters=erasure.letters_erased,
        messages_cancelled=erasure.messages_cancelled,
    )
    return _counts_page(erased=True)


@bp.post("/supporters/list.csv")
@access("coordinator")
def supporters_csv() -> Any:
    options = [
        f"{key}={value}"
        for key in mailouts.SEGMENT_KEYS
        for value in request.form.getlist(key)
        if value.strip()
    ]
    try:
        segment = mailouts.parse_segment(options)
    except MailerError as error:
        return _counts_page(400, problem=problem_text(error))
    audit("supporters.export_list", "", segment=segment)
    return Response(
        stream_with_context(privacy.supporters_csv(web().runtime.db, segment)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="supporters.csv"'},
    )
