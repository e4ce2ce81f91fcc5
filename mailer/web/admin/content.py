"""A campaign's texts: every locale side by side, each previewed in a sandboxed frame with its own strict
policy, and edited in the browser with the checks of ``campaign load`` (problems named by line) and a
preview that follows the typing. Saving makes a new version; launched mailouts keep their own copy."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, g, redirect, request, url_for

from mailer import campaigns
from mailer.errors import CampaignError, LocaleError, MailerError, NotFoundError
from mailer.i18n import translations
from mailer.locales import LOCALE_CODES, REGISTRY
from mailer.web.admin import access, audit, bp, now, page, problem_text
from mailer.web.base import web

#: The preview is the campaign's own HTML: it runs nothing, loads nothing, submits nothing, and may only
#: be framed by our dashboard; ``sandbox`` holds even if someone opens it on its own.
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; sandbox"
)


def _checked(slug: str, kind: str, locale: str) -> None:
    if kind not in campaigns.KINDS or locale not in LOCALE_CODES:
        abort(404)
    try:
        campaigns.content_versions(web().runtime.db, slug)
    except NotFoundError:
        abort(404)


def _frame(html: str, status: int = 200) -> Response:
    return Response(
        html, status=status, mimetype="text/html", headers={"Content-Security-Policy": PREVIEW_POLICY}
    )


@bp.get("/campaigns/<slug>")
@access("viewer")
def campaign_page(slug: str) -> Any:
    db = web().runtime.db
    try:
        rows = campaigns.completeness(db, slug)
        versions = campaigns.content_versions(db, slug)
    except NotFoundError:
        abort(404)
    summary = next(c for c in campaigns.list_campaigns(db) if c.slug == slug)
    return page(
        "admin/campaign.html",
        summary=summary,
        rows=rows,
        versions=versions,
        kinds=list(campaigns.KINDS),
        saved=request.args.get("saved", ""),
    )


@bp.get("/campaigns/<slug>/preview/<kind>/<locale>")
@access("viewer")
def content_preview(slug: str, kind: str, locale: str) -> Any:
    _checked(slug, kind, locale)
    rt = web().runtime
    try:
        html = campaigns.preview_html(rt.db, rt.renderer, slug, kind, locale, now().date())
    except NotFoundError:
        return _frame(web().render("preview/problems.html", 404, problems=[], problem_text=str)[0], 404)
    return _frame(html)


def _problems_frame(problems: list[Any]) -> Response:
    tr = translations(g.locale.code)
    body, _ = web().render(
        "preview/problems.html", problems=problems, problem_text=lambda p: MailerError.render(p, tr)
    )
    return _frame(body)


@bp.post("/campaigns/<slug>/preview/<kind>/<locale>")
@access("coordinator")
def draft_preview(slug: str, kind: str, locale: str) -> Any:
    """The editor's text, checked and rendered, into the preview frame (a form posted to the frame: it
    works without JavaScript; with it, the page posts as the coordinator types)."""
    _checked(slug, kind, locale)
    rt = web().runtime
    spec, problems = campaigns.check_content(kind, locale, request.form.get("text", ""))
    if spec is None:
        return _problems_frame(problems)
    return _frame(campaigns.preview_html(rt.db, rt.renderer, slug, kind, locale, now().date(), draft=spec))


def _editor(
    slug: str, kind: str, locale: str, text: str, status: int = 200, problems: list[Any] | None = None
) -> Any:
    tr = translations(g.locale.code)
    return page(
        "admin/content_edit.html",
        status,
        slug=slug,
        kind=kind,
        content_locale=REGISTRY[locale],
        text=text,
        version=campaigns.content_versions(web().runtime.db, slug).get((kind, locale), 0),
        problems=problems or [],
        problem_message=lambda p: MailerError.render(p, tr),
    )


@bp.get("/campaigns/<slug>/edit/<kind>/<locale>")
@access("coordinator")
def content_edit(slug: str, kind: str, locale: str) -> Any:
    _checked(slug, kind, locale)
    return _editor(slug, kind, locale, campaigns.content_text(web().runtime.db, slug, kind, locale))


@bp.post("/campaigns/<slug>/edit/<kind>/<locale>")
@access("coordinator")
def content_save(slug: str, kind: str, locale: str) -> Any:
    _checked(slug, kind, locale)
    text = request.form.get("text", "")
    try:
        version = campaigns.save_content(web().runtime.db, slug, kind, locale, text)
    except CampaignError as error:
        return _editor(slug, kind, locale, text, 400, error.problems)
    except (LocaleError, NotFoundError) as error:
        return _editor(slug, kind, locale, text, 400, [error])
    audit("campaign.edit", f"campaign {slug}", kind=kind, locale=locale, version=version)
    return redirect(url_for("admin.campaign_page", slug=slug, saved=f"{kind}.{locale}"))


__all__ = ["PREVIEW_POLICY", "problem_text"]
