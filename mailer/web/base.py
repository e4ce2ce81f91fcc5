"""What every door of the web edge shares: the runtime, the shared throttle, the client's address and
language, and pages rendered in that language."""

from __future__ import annotations

from typing import Any

from babel import negotiate_locale
from flask import current_app, g, request, url_for
from flask_wtf.csrf import generate_csrf

from mailer.accounts import PASSWORD_MIN
from mailer.errors import LocaleError
from mailer.i18n import format_number, format_share, translations
from mailer.letters import CONFIRM_MAX_AGE
from mailer.locales import LOCALE_CODES, REGISTRY, Locale, get_locale
from mailer.runtime import Runtime
from mailer.web.limits import Throttle
from mailer.web.page_cache import ActionPageCache


class Web:
    """The installation behind the Flask app: one per app, found by :func:`web`."""

    def __init__(self, runtime: Runtime, throttle: Throttle) -> None:
        self.runtime = runtime
        self.throttle = throttle
        # The app's clock, read at each use: tests move it after the app is made.
        self.pages = ActionPageCache(runtime.db, lambda: runtime.clock())

    def client_ip(self) -> str:
        """Only the hops we were told to trust: a client can write anything into X-Forwarded-For."""
        hops = self.runtime.settings.proxy_hops
        if hops:
            forwarded = [
                p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()
            ]
            if len(forwarded) >= hops:
                return forwarded[-hops]
        return request.remote_addr or "unknown"

    def render(self, template: str, status: int = 200, **context: Any) -> tuple[str, int]:
        """A page in ``g.locale`` (one Jinja environment per language: no shared state between requests)."""
        if "locale" not in g:  # an error raised before our own before_request (CSRF)
            g.locale = request_locale()
        code = g.locale.code
        tr = translations(code)
        helpers = {
            "url_for": url_for,
            "csrf_token": generate_csrf,
            "error_text": lambda e: e.render(tr),
            "reason_text": lambda e: e.render_reason(tr),
            "number": lambda n: format_number(n, code),
            "percent": lambda share: format_share(share, code),
            "locales": [REGISTRY[c] for c in LOCALE_CODES],
            "registry": REGISTRY,
            "request": request,
            "confirm_hours": CONFIRM_MAX_AGE // 3600,
            "password_min": PASSWORD_MIN,
        }
        return self.runtime.renderer.render_page(template, {**helpers, **context}, code), status


def web() -> Web:
    return current_app.extensions["mailer"]  # type: ignore[no-any-return]


def request_locale() -> Locale:
    """The page's language: from the address (also one that matched no page: "/ar/nothing" is answered in
    Arabic), else the browser's preference, else English."""
    first = request.path.strip("/").split("/", 1)[0]
    for spelled in ((request.view_args or {}).get("locale"), first):
        if spelled:
            try:
                return get_locale(str(spelled))  # any spelling: "ckb-IQ" and "CKB" are Sorani
            except LocaleError:
                pass
    code = negotiate_locale(
        [lang.replace("-", "_") for lang in request.accept_languages.values()], list(LOCALE_CODES)
    )
    return REGISTRY.get(str(code), REGISTRY["en"])
