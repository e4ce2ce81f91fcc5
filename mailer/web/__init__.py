"""The web edge: action pages in four languages, confirmation, and the abuse defences around them.

Views parse input, call one use-case in :mod:`mailer.letters`, and render the answer in the page's
language. Defences: CSRF tokens (Flask-WTF), a honeypot field, a self-hosted ALTCHA proof-of-work (with a
stricter rate limit for browsers without JavaScript, as in Tor Browser's safest mode), rate limits per
client IP (taken only from a configured number of trusted proxy hops; IPv6 clients counted per /64), a cap
on confirmation emails per mailbox per day, and answers that never tell whether an address is known. The
counters and the spent proofs are shared by every process of the installation (:mod:`mailer.web.limits`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from altcha import v1 as altcha_v1
from babel import negotiate_locale
from flask import Flask, Response, abort, g, redirect, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf, validate_csrf
from limits import parse
from sendgrid.helpers.eventwebhook import EventWebhookHeader
from wtforms import ValidationError

from mailer import campaigns, events, letters, privacy
from mailer.errors import N_, MailerError, NotFoundError
from mailer.fields import mailbox_key
from mailer.governorates import GOVERNORATES, governorate_name
from mailer.i18n import format_number, translations
from mailer.locales import LOCALE_CODES, REGISTRY, Locale, get_locale
from mailer.runtime import Runtime
from mailer.tasking import BULK_QUEUE, QueueUnavailable, TaskBackend
from mailer.web.limits import client_bucket, make_throttle

log = logging.getLogger(__name__)

FORM_MAX_BYTES = 64 * 1024
CHALLENGE_MAX = 100_000  # a few hundred milliseconds of a phone's time
CHALLENGE_LIFETIME = dt.timedelta(minutes=20)
PROOF_SPENT_SECONDS = 3600  # a spent proof is remembered longer than its challenge lives
PROOF_MAX_CHARS = 1000  # our page sends about 300: anything longer is not a proof
LIMITS = {
    "ip_with_proof": parse("20/hour"),
    "ip_without_proof": parse("5/hour"),  # no JavaScript, no proof-of-work: stricter
    "confirmations_per_address": parse("3/day"),  # the form cannot flood a third party's inbox
    # The breaker: more letters than this to one campaign in an hour, from however many addresses, is an
    # attack on its officials' inboxes (or on the campaign's name); the form pauses and says when to return.
    "letters_per_campaign": parse("1000/hour"),
}
#: Pages whose address carries a token: never kept by a browser's or a proxy's cache.
TOKEN_ENDPOINTS = frozenset({"confirm_page", "confirm_submit", "unsubscribe_page", "unsubscribe_submit"})


def read_proof(payload: str) -> dict[str, Any] | None:
    """The fields of an ALTCHA solution as our page sends them (base64 of a JSON object with string
    fields and a whole number), or None for anything else."""
    if len(payload) > PROOF_MAX_CHARS:
        return None
    try:
        data = json.loads(base64.b64decode(payload, validate=True))
    except (ValueError, RecursionError):  # not base64, not UTF-8, not JSON, or nested too deep
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(data.get(f), str) for f in ("algorithm", "challenge", "salt", "signature")):
        return None
    number = data.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return data


class QueueWhenBack:
    """The task backend for a page whose rows are committed before the queue is asked (a letter and its
    confirmation, a confirmed letter's messages). When the queue refuses, the refusal is logged and the
    person gets the same answer: the sweep queues the waiting rows once the queue is back. After one
    refusal, this request asks no more."""

    def __init__(self, backend: TaskBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.refused: QueueUnavailable | None = None

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = BULK_QUEUE) -> None:
        if self.refused is not None:
            return
        try:
            self.backend.enqueue_send_batch(message_ids, queue)
        except QueueUnavailable as error:
            self.refused = error
            log.error("%s (%d messages wait for the sweep)", error, len(message_ids))

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        try:
            self.backend.enqueue_apply_events(event_ids)
        except QueueUnavailable as error:  # the events are stored: the sweep applies them
            log.error("%s (%d events wait for the sweep)", error, len(event_ids))

    def run_worker(self, queues: Sequence[str], concurrency: int, loglevel: str) -> None:
        self.backend.run_worker(queues, concurrency, loglevel)

    def run_beat(self, interval: float, loglevel: str) -> None:
        self.backend.run_beat(interval, loglevel)


def create_app(runtime: Runtime) -> Flask:
    """The Flask application over one Runtime (its database, transport, task backend and settings)."""
    app = Flask(__name__, static_folder=str(Path(__file__).parent / "static"))
    app.config.update(
        SECRET_KEY=runtime.settings.require_secret_keys()[0],
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=events.MAX_WEBHOOK_BYTES,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.base_url.startswith("https://"),
    )
    # Shared by every process: Redis with a broker, else the database (never one worker's memory).
    throttle = make_throttle(
        runtime.db,
        runtime.settings.broker_url,
        runtime.settings.require_secret_keys()[0],
        lambda: runtime.clock(),
    )
    proxy_hops = runtime.settings.proxy_hops

    def client_ip() -> str:
        # Only the hops we were told to trust: a client can write anything into X-Forwarded-For.
        if proxy_hops:
            forwarded = [
                p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()
            ]
            if len(forwarded) >= proxy_hops:
                return forwarded[-proxy_hops]
        return request.remote_addr or "unknown"

    def page_locale(code: str) -> str:
        try:
            return get_locale(code).code
        except MailerError:
            abort(404)

    def request_locale() -> Locale:
        """The page's language: from the address, else the browser's preference, else English."""
        code = (request.view_args or {}).get("locale") or negotiate_locale(
            [lang.replace("-", "_") for lang in request.accept_languages.values()], list(LOCALE_CODES)
        )
        return REGISTRY.get(str(code), REGISTRY["en"])

    @app.before_request
    def _install_language() -> None:
        g.locale = request_locale()
        # Pages take small forms; only the event webhook may send a large body.
        if request.path != "/webhooks/sendgrid":
            request.max_content_length = FORM_MAX_BYTES

    # After the size limit above: CSRFProtect reads the form in a before_request of its own.
    csrf = CSRFProtect(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        # Nothing from third parties: no fonts, scripts or captchas that would learn who visits.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        # same-origin: Flask-WTF checks an https POST's Referer against our own host (CSRF), and no
        # other site ever learns which page, or which token in its address, a visitor came from.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.endpoint in TOKEN_ENDPOINTS:
            response.headers["Cache-Control"] = "no-store"
        return response

    def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
        # One Jinja environment per language (the renderer's): no shared state between requests.
        if "locale" not in g:  # an error raised before our own before_request (CSRF)
            g.locale = request_locale()
        tr = translations(g.locale.code)
        helpers = {
            "url_for": url_for,
            "csrf_token": generate_csrf,
            "error_text": lambda e: e.render(tr),
            "locales": [REGISTRY[c] for c in LOCALE_CODES],
            "request": request,
        }
        return runtime.renderer.render_page(template, {**helpers, **context}, g.locale.code), status

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> tuple[str, int]:
        return render("web/message.html", 400, title_key="expired", detail=None)

    @app.errorhandler(404)
    def _missing(error: Any) -> tuple[str, int]:
        return render("web/message.html", 404, title_key="missing", detail=None)

    @app.errorhandler(413)
    def _too_large(error: Any) -> Any:
        if request.path.startswith("/webhooks/"):
            return Response("request body too large\n", status=413, mimetype="text/plain")
        return render("web/message.html", 413, title_key="too_large", detail=None)

    def too_many(retry_after: int) -> tuple[str, int, dict[str, str]]:
        body, status = render("web/message.html", 429, title_key="slow_down", detail=None)
        return body, status, {"Retry-After": str(retry_after)}

    @app.get("/")
    def home() -> Any:
        return redirect(url_for("campaign_list", locale=g.locale.code))

    @app.get("/<locale>/")
    def campaign_list(locale: str) -> Any:
        page_locale(locale)
        rows = [
            (c.slug, c.title.get(g.locale.code) or next(iter(c.title.values())))
            for c in campaigns.list_campaigns(runtime.db)
        ]
        return render("web/index.html", campaigns=rows)

    @app.get("/altcha/challenge")
    def altcha_challenge() -> Any:
        expires = dt.datetime.now(dt.UTC) + CHALLENGE_LIFETIME
        options = altcha_v1.ChallengeOptions(
            hmac_key=runtime.settings.require_secret_keys()[0], max_number=CHALLENGE_MAX, expires=expires
        )
        challenge = altcha_v1.create_challenge(options)
        return {
            "algorithm": challenge.algorithm,
            "challenge": challenge.challenge,
            "maxnumber": CHALLENGE_MAX,
            "salt": challenge.salt,
            "signature": challenge.signature,
        }

    def proof_is_valid(payload: str) -> bool:
        """A solved challenge, not expired, and never used before (by any process of this installation)."""
        proof = read_proof(payload)
        if proof is None:
            return False
        ok, _ = altcha_v1.verify_solution(
            cast(altcha_v1.PayloadType, proof), runtime.settings.require_secret_keys()[0], check_expires=True
        )
        return ok and throttle.spend_once("altcha", proof["signature"], PROOF_SPENT_SECONDS)

    def action_context(slug: str, values: dict[str, str], problems: dict[str, MailerError]) -> dict[str, Any]:
        code = g.locale.code
        page = letters.action_page(runtime.db, slug, code, translations(code).gettext("friend"))
        return {
            "slug": slug,
            "campaign_title": page.title,
            "alert_html": page.alert_html,
            "available": [REGISTRY[c] for c in page.locales],
            "values": {"subject": page.subject, "body": page.body, **values},
            "problems": problems,
            "sent": page.sent,
            "sent_text": format_number(page.sent, code),
            "fixed": page.fixed,
            "local": page.local,
            "governorates": [(key, governorate_name(key, code)) for key in GOVERNORATES],
        }

    def form_again(slug: str, raw: dict[str, str], problems: dict[str, MailerError]) -> tuple[str, int]:
        """The action page again with the problems beside their fields (a 404 for an unknown campaign)."""
        try:
            return render("web/action.html", 400, **action_context(slug, raw, problems))
        except NotFoundError:
            abort(404)

    @app.get("/<locale>/<slug>")
    def action_page(locale: str, slug: str) -> Any:
        page_locale(locale)
        try:
            return render("web/action.html", **action_context(slug, {}, {}))
        except NotFoundError:
            abort(404)

    @app.post("/<locale>/<slug>")
    def action_submit(locale: str, slug: str) -> Any:
        page_locale(locale)
        raw = {
            k: request.form.get(k, "")
            for k in ("name", "email", "governorate", "subject", "body", "note", "share", "opt_in")
        }
        if request.form.get("website"):  # the honeypot: people never see it, robots fill it
            return render("web/message.html", 200, title_key="check_inbox", detail=None)
        proof = request.form.get("altcha", "")
        if proof and not proof_is_valid(proof):
            problems = {
                "altcha": MailerError(N_("the anti-robot check failed; please reload the page and try again"))
            }
            return form_again(slug, raw, problems)
        name = "ip_with_proof" if proof else "ip_without_proof"
        allowed, retry_after = throttle.hit(name, client_bucket(client_ip()), LIMITS[name])
        if not allowed:
            return too_many(retry_after)
        try:
            form = letters.check_form(raw, slug, g.locale.code)
        except letters.FormError as error:
            return form_again(slug, raw, error.fields)
        allowed, retry_after = throttle.hit("letters_per_campaign", slug, LIMITS["letters_per_campaign"])
        if not allowed:
            log.warning(
                "campaign %s: more than %s letters; the form pauses", slug, LIMITS["letters_per_campaign"]
            )
            return too_many(retry_after)
        # Per mailbox, not per spelling: victim+1@, Victim@ and v.ictim@ reach the same inbox.
        name = "confirmations_per_address"
        if not throttle.hit(name, mailbox_key(form.email), LIMITS[name])[0]:
            # Same answer as success: the page must not tell whether this address is being used.
            return render("web/message.html", 200, title_key="check_inbox", detail=None)
        try:
            letters.start_letter(runtime.db, QueueWhenBack(runtime.backend), form, clock=runtime.clock)
        except NotFoundError:
            abort(404)
        except MailerError as error:
            return form_again(slug, raw, {"form": error})
        return render("web/message.html", 200, title_key="check_inbox", detail=None)

    @app.get("/confirm/<token>")
    def confirm_page(token: str) -> Any:
        # A GET never sends: mail scanners follow links. The page shows the letter; its button posts.
        preview = letters.letter_preview(runtime.db, runtime.signer, token)
        if preview is None:
            return render("web/message.html", 400, title_key="bad_link", detail=None)
        g.locale = get_locale(preview.locale)
        return render("web/confirm.html", token=token, preview=preview)

    @app.post("/confirm/<token>")
    def confirm_submit(token: str) -> Any:
        try:
            result = letters.confirm_letter(
                runtime.db, QueueWhenBack(runtime.backend), runtime.signer, token, clock=runtime.clock
            )
        except MailerError:
            return render("web/message.html", 400, title_key="bad_link", detail=None)
        g.locale = get_locale(result.locale)
        return render("web/confirmed.html", result=result)

    @app.get("/u/<token>")
    def unsubscribe_page(token: str) -> Any:
        # A GET never unsubscribes (link scanners follow links); the page has one button.
        link = events.read_unsubscribe_token(runtime.db, runtime.signer, token)
        if link is not None:
            g.locale = get_locale(link.locale)
        return render("web/unsubscribe.html", token=token)

    @csrf.exempt  # type: ignore[untyped-decorator]
    @app.post("/u/<token>")
    def unsubscribe_submit(token: str) -> Any:
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if not one_click:  # the page's button carries a CSRF token; RFC 8058's one-click POST cannot
            try:
                validate_csrf(request.form.get("csrf_token"))
            except ValidationError:
                return render("web/message.html", 400, title_key="expired", detail=None)
        erase = not one_click and request.form.get("erase") == "1"
        link = events.read_unsubscribe_token(runtime.db, runtime.signer, token)
        if link is not None:
            g.locale = get_locale(link.locale)
            events.unsubscribe(runtime.db, link, "one-click" if one_click else "page", runtime.clock())
            if erase:  # asked for on the page, with its own box and the button: never by a scanner
                privacy.erase_supporter(runtime.db, link.supporter_id, runtime.clock())
        # The same answer for a forged or unknown token: nobody learns who is subscribed.
        if one_click:
            return Response("", status=200)
        return render("web/unsubscribed.html", erased=erase)

    @csrf.exempt  # type: ignore[untyped-decorator]
    @app.post("/webhooks/sendgrid")
    def sendgrid_webhook() -> Any:
        verifier = runtime.webhook_verifier
        if verifier is None:
            return Response("webhook not configured\n", status=403, mimetype="text/plain")
        raw = request.get_data(cache=False)
        try:
            batch = verifier.verify(
                raw,
                request.headers.get(EventWebhookHeader.SIGNATURE),
                request.headers.get(EventWebhookHeader.TIMESTAMP),
                runtime.clock(),
            )
        except events.WebhookRejected as rejected:
            return Response(f"{rejected}\n", status=403, mimetype="text/plain")
        stored = events.store_events(runtime.db, batch, runtime.clock())
        if stored:
            QueueWhenBack(runtime.backend).enqueue_apply_events(
                stored
            )  # the heavy part, after the answer's data is safe
        return {"received": len(batch), "stored": len(stored)}

    return app
