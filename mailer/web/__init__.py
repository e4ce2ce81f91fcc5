"""The web edge: one Flask app, a blueprint per audience.

- :mod:`mailer.web.public`: the action pages, the letter's confirmation, unsubscribing;
- :mod:`mailer.web.admin`: the coordinators' dashboard under ``/admin/``;
- :mod:`mailer.web.hooks`: the providers' webhooks under ``/webhooks/``.

Views are thin: they parse a request, call the same use-cases the command line calls, and render.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from mailer import events
from mailer.runtime import Runtime
from mailer.web import admin, hooks, public
from mailer.web.base import Web, request_locale, web
from mailer.web.limits import make_throttle

FORM_MAX_BYTES = 64 * 1024
#: Nothing from third parties: no fonts, scripts or captchas that would learn who visits.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(runtime: Runtime) -> Flask:
    """The Flask application over one Runtime (its database, transport, task backend and settings)."""
    app = Flask(__name__, static_folder=str(Path(__file__).parent / "static"))
    secure = runtime.settings.base_url.startswith("https://")
    app.config.update(
        SECRET_KEY=runtime.settings.require_secret_keys()[0],
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=events.MAX_WEBHOOK_BYTES,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
    )
    # Shared by every process: Redis with a broker, else the database (never one worker's memory).
    throttle = make_throttle(
        runtime.db,
        runtime.settings.broker_url,
        runtime.settings.require_secret_keys()[0],
        lambda: runtime.clock(),
    )
    app.extensions["mailer"] = Web(runtime, throttle)

    @app.before_request
    def _install_language() -> None:
        g.locale = request_locale()
        # Pages take small forms; the event webhook and the dashboard's upload (for someone signed in, as
        # far as can be told before the form is read) may send more.
        if request.path == "/webhooks/sendgrid":
            request.max_content_length = None
        elif request.path.startswith(hooks.INBOUND_PREFIX):  # a whole message, in a multipart form
            request.max_content_length = hooks.inbound_body_cap(runtime.settings.inbound_max_bytes)
            request.max_form_memory_size = request.max_content_length
        elif request.path in admin.UPLOAD_PATHS and request.cookies.get(admin.COOKIE):
            request.max_content_length = admin.UPLOAD_MAX_BYTES
        else:
            request.max_content_length = FORM_MAX_BYTES

    # After the size limit above: CSRFProtect reads the form in a before_request of its own.
    csrf = CSRFProtect(app)
    csrf.exempt(hooks.bp)
    # RFC 8058's one-click POST carries no CSRF token; the view checks the page's own token itself.
    csrf.exempt(public.unsubscribe_submit)

    @app.get("/favicon.ico")
    def _favicon() -> Response:
        # Browsers ask for it whatever the page says; the pages themselves point at the SVG.
        return app.send_static_file("favicon.ico")

    app.register_blueprint(public.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # same-origin: Flask-WTF checks an https POST's Referer against our own host (CSRF), and no
        # other site ever learns which page, or which token in its address, a visitor came from.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.endpoint in public.TOKEN_ENDPOINTS or request.path.startswith("/admin/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> tuple[str, int]:
        return public.message("expired", 400)

    # Our own pages, in the page's language, for every error a person can meet; machines calling the
    # webhooks get one plain line.
    def _answer(key: str, status: int, plain: str) -> Any:
        if request.path.startswith("/webhooks/"):
            return Response(plain + "\n", status=status, mimetype="text/plain")
        return public.message(key, status)

    @app.errorhandler(400)
    def _bad_request(error: Any) -> Any:
        return _answer("bad_request", 400, "bad request")

    @app.errorhandler(404)
    def _missing(error: Any) -> Any:
        return _answer("missing", 404, "not found")

    @app.errorhandler(405)
    def _not_allowed(error: Any) -> Any:
        response = app.make_response(_answer("missing", 405, "method not allowed"))
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods or ()))
        return response

    @app.errorhandler(413)
    def _too_large(error: Any) -> Any:
        return _answer("too_large", 413, "request body too large")

    @app.errorhandler(429)
    def _too_many(error: Any) -> Any:
        response = app.make_response(_answer("slow_down", 429, "too many requests"))
        response.headers["Retry-After"] = str(getattr(error, "retry_after", None) or 60)
        return response

    @app.errorhandler(500)
    def _broken(error: Any) -> Any:
        # Whatever failed is logged by Flask with its traceback; the person gets a page, never the trace.
        try:
            return _answer("broken", 500, "internal error")
        except Exception:  # the page itself cannot be drawn (templates or catalogs unreadable)
            return Response("internal error\n", status=500, mimetype="text/plain")

    return app


__all__ = ["create_app", "web"]
