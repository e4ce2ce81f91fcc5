"""The coordinators' dashboard under ``/admin/``: the same use-cases as the command line, for a browser.

Every view declares who may reach it (:func:`access`); the blueprint's guard refuses any view that does
not, so a new page cannot be left open by mistake. Unsafe requests must come from our own pages (CSRF
token, and the browser's ``Sec-Fetch-Site``/``Origin`` when it sends them). The session is a random token
in a ``SameSite=Strict``, ``HttpOnly`` cookie (``Secure`` behind https) whose hash is a database row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from babel import negotiate_locale
from flask import Blueprint, Response, abort, current_app, g, redirect, request, url_for

from mailer import accounts
from mailer.errors import MailerError
from mailer.i18n import translations
from mailer.locales import LOCALE_CODES, REGISTRY
from mailer.supporters import MAX_IMPORT_BYTES
from mailer.web.base import web

UPLOAD_MAX_BYTES = MAX_IMPORT_BYTES + 1024 * 1024  # a supporters' CSV, and the form around it
UPLOAD_PATHS = frozenset({"/admin/supporters/import"})
COOKIE = "mailer_admin"
LANGUAGE_COOKIE = "mailer_admin_lang"
#: Who may reach a view, from the least: the sign-in pages, the second factor's page, the enrolment
#: an admin owes before anything else, then the roles.
ANYONE, SECOND_FACTOR, ENROLMENT = "anyone", "second_factor", "enrolment"
LEVELS = (ANYONE, SECOND_FACTOR, ENROLMENT, *accounts.ROLES)

bp = Blueprint("admin", __name__)
View = TypeVar("View", bound=Callable[..., Any])


def access(level: str) -> Callable[[View], View]:
    """Declare who may reach a view (put it under the route decorator)."""
    if level not in LEVELS:
        raise ValueError(f"unknown access level {level!r}")

    def mark(view: View) -> View:
        view.admin_access = level  # type: ignore[attr-defined]
        return view

    return mark


def now() -> dt.datetime:
    return web().runtime.clock()


def _same_site() -> bool:
    """Whether an unsafe request comes from one of our own pages, as far as the browser tells."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    ours = {_origin(request.host_url), _origin(web().runtime.settings.base_url)}
    return origin != "null" and _origin(origin) in ours


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _language() -> str:
    person = g.get("person")
    if person is not None and person.account.locale in LOCALE_CODES:
        return str(person.account.locale)
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LOCALE_CODES:
        return str(chosen)
    found = negotiate_locale(
        [lang.replace("-", "_") for lang in request.accept_languages.values()], list(LOCALE_CODES)
    )
    return found or "en"


def safe_next(target: str | None) -> str:
    """Only a path of the dashboard itself: never a redirect to another site (``//evil``, ``/\\evil``)."""
    if (
        target
        and target.startswith("/admin/")
        and not target.startswith(("//", "/\\"))
        and "\\" not in target
        and all(ch.isprintable() for ch in target)
    ):
        return target
    return url_for("admin.overview")


@bp.before_request
def _guard() -> Any:
    if not web().runtime.vault.can_read:
        # A process with the key's write-only form (the public pages in production) has no dashboard:
        # the dashboard runs where the full key is, ideally reachable only from the team's network.
        abort(404)
    if request.method not in ("GET", "HEAD") and not _same_site():
        abort(403)
    view = current_app.view_functions.get(request.endpoint or "")
    level = getattr(view, "admin_access", None)
    if level is None:  # deny by default: a view that does not say who may see it is seen by nobody
        abort(404 if view is None else 403)
    person = accounts.signed_in(web().runtime.db, request.cookies.get(COOKIE), now())
    g.person = person
    g.locale = REGISTRY[_language()]
    if level == ANYONE:
        return None
    if person is None:
        if request.method == "GET":
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return forbidden()
    if not person.complete:
        return None if level == SECOND_FACTOR else redirect(url_for("admin.second_factor"))
    if level == SECOND_FACTOR:
        return redirect(url_for("admin.overview"))
    if person.must_enrol:
        return None if level == ENROLMENT else redirect(url_for("admin.enrol"))
    if level == ENROLMENT:
        return None
    if not accounts.role_allows(person.account.role, level):
        return forbidden()
    return None


def forbidden() -> tuple[str, int]:
    return page("admin/message.html", 403, message_key="forbidden")


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A dashboard page in the person's language, with what the layout needs."""
    person = g.get("person")
    role = person.account.role if person is not None and person.complete else None
    return web().render(
        template,
        status,
        person=person,
        role=role,
        can=lambda needed: role is not None and accounts.role_allows(role, needed),
        **context,
    )


def audit(action: str, subject: str = "", **detail: Any) -> None:
    """Append what the signed-in person just changed to the audit log."""
    person = g.get("person")
    accounts.record(
        web().runtime.db,
        person.account.id if person is not None else None,
        action,
        subject,
        detail,
        origin=web().client_ip(),
        now=now(),
    )


def set_session_cookie(response: Response, token: str) -> Response:
    response.set_cookie(
        COOKIE,
        token,
        path="/admin/",
        httponly=True,
        samesite="Strict",
        secure=web().runtime.settings.base_url.startswith("https://"),
    )
    return response


def problem_text(error: MailerError) -> str:
    return error.render(translations(g.locale.code))


from mailer.web.admin import auth, content, directory, people, replies, runs, team  # noqa: E402  (views register on bp)

__all__ = [
    "ANYONE",
    "COOKIE",
    "UPLOAD_MAX_BYTES",
    "access",
    "auth",
    "bp",
    "content",
    "directory",
    "people",
    "replies",
    "runs",
    "team",
]
