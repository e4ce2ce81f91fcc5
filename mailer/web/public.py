"""The public pages: action pages in four languages, the letter's confirmation, and unsubscribing.

Views parse input, call one use-case in :mod:`mailer.letters` or :mod:`mailer.events`, and render the
answer in the page's language. Defences: CSRF tokens (Flask-WTF), a honeypot field, a self-hosted ALTCHA
proof-of-work (with a stricter rate limit for browsers without JavaScript, as in Tor Browser's safest
mode), rate limits per client IP (IPv6 clients counted per /64), a cap on confirmation emails per mailbox
per day, and answers that never tell whether an address is known. The counters and the spent proofs are
shared by every process of the installation (:mod:`mailer.web.limits`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any, cast

from altcha import v1 as altcha_v1
from flask import Blueprint, Response, abort, g, redirect, request, url_for
from flask_wtf.csrf import generate_csrf, validate_csrf
from limits import parse
from markupsafe import Markup
from wtforms import ValidationError

from mailer import answers, campaigns, events, inbound, letters, privacy, sharing
from mailer.errors import N_, MailerError, NotFoundError
from mailer.fields import mailbox_key
from mailer.governorates import GOVERNORATES, find_governorate, governorate_name
from mailer.i18n import format_date, format_list, translations
from mailer.locales import REGISTRY, get_locale
from mailer.tasking import BULK_QUEUE, QueueUnavailable, TaskBackend
from mailer.web.base import web
from mailer.web.limits import KeyedHash, client_bucket
from mailer.web.page_cache import PageWithHoles, SharedPage

log = logging.getLogger(__name__)

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
TOKEN_ENDPOINTS = frozenset(
    {
        "public.confirm_page",
        "public.confirm_submit",
        "public.unsubscribe_page",
        "public.unsubscribe_submit",
        "public.reply_page",
        "public.answer_page",
        "public.answer_submit",
    }
)

bp = Blueprint("public", __name__)


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


def message(title_key: str, status: int = 200) -> tuple[str, int]:
    return web().render("web/message.html", status, title_key=title_key, detail=None)


def too_many(retry_after: int) -> tuple[str, int, dict[str, str]]:
    body, status = message("slow_down", 429)
    return body, status, {"Retry-After": str(retry_after)}


def page_locale(code: str) -> str:
    try:
        return get_locale(code).code
    except MailerError:
        abort(404)


@bp.get("/")
def home() -> Any:
    return redirect(url_for("public.campaign_list", locale=g.locale.code))


@bp.get("/<locale>/")
def campaign_list(locale: str) -> Any:
    page_locale(locale)
    rows = [
        (c.slug, c.title.get(g.locale.code) or next(iter(c.title.values())))
        for c in campaigns.list_campaigns(web().runtime.db)
    ]
    return web().render("web/index.html", campaigns=rows)


@bp.get("/<locale>/privacy")
def privacy_notice(locale: str) -> Any:
    page_locale(locale)
    notice = privacy.notice(web().runtime.settings)
    return web().render(
        "web/privacy.html",
        notice=notice,
        # Markup built here and escaped here: the sentences around them are the translators'.
        organisation=Markup("<bdi>{}</bdi>").format(notice.organisation),
        contact=Markup('<a href="mailto:{0}" dir="ltr">{0}</a>').format(notice.contact),
    )


@bp.get("/altcha/challenge")
def altcha_challenge() -> Any:
    expires = dt.datetime.now(dt.UTC) + CHALLENGE_LIFETIME
    options = altcha_v1.ChallengeOptions(
        hmac_key=web().runtime.settings.require_secret_keys()[0], max_number=CHALLENGE_MAX, expires=expires
    )
    challenge = altcha_v1.create_challenge(options)
    return {
        "algorithm": challenge.algorithm,
        "challenge": challenge.challenge,
        "maxnumber": CHALLENGE_MAX,
        "salt": challenge.salt,
        "signature": challenge.signature,
    }


def proof_is_valid(payload: str, submission: str) -> bool:
    """A solved challenge, not expired, and never used before (by any process of this installation) for
    another post. The same post sent twice (a double click) carries the same proof: that is the same
    letter asking again, answered as the first time, not a replay."""
    proof = read_proof(payload)
    if proof is None:
        return False
    ok, _ = altcha_v1.verify_solution(
        cast(altcha_v1.PayloadType, proof),
        web().runtime.settings.require_secret_keys()[0],
        check_expires=True,
    )
    if not ok:
        return False
    throttle = web().throttle
    if not throttle.spend_once("altcha_post", f"{proof['signature']}\x1f{submission}", PROOF_SPENT_SECONDS):
        return True
    return throttle.spend_once("altcha", proof["signature"], PROOF_SPENT_SECONDS)


def submission_key(slug: str, raw: dict[str, str]) -> str:
    """Names one form post: the page load it came from (a random ``post_id`` in the form) and every
    field. Keyed, so the stored name tells nothing about what was written."""
    keyed = KeyedHash(web().runtime.settings.require_secret_keys()[0])
    page_load = request.form.get("post_id", "")[:64]
    return keyed("letter", g.locale.code, slug, page_load, *raw.values())


#: The counter shows from this many letters on: "0 letters sent" discourages more than it informs.
COUNTER_FROM = 10


def action_context(
    slug: str, values: dict[str, str], problems: dict[str, MailerError], shared: SharedPage | None = None
) -> dict[str, Any]:
    code = g.locale.code
    # The same for every visitor: built once per process and language, not per request.
    shared = shared or web().pages.get(slug, code, translations(code).gettext("friend"))
    page = shared.page
    # Governorates that add the same officials are named together, once (Erbil, Sulaymaniyah and Halabja).
    by_officials: dict[tuple[letters.Official, ...], list[str]] = {}
    for key, officials in page.local.items():
        by_officials.setdefault(tuple(officials), []).append(key)
    groups = [
        {
            "governorates": keys,
            "names": format_list([governorate_name(k, code) for k in keys], code),
            "officials": list(officials),
        }
        for officials, keys in by_officials.items()
    ]
    chosen = find_governorate(values.get("governorate", "")) or ""
    return {
        "slug": slug,
        "post_id": secrets.token_urlsafe(16),
        "campaign_title": page.title,
        "organisation": page.organisation,
        "organisation_url": page.organisation_url,
        "intro_html": page.intro_html,
        "share_text": page.share_text,
        "available": [REGISTRY[c] for c in page.locales],
        "values": {"subject": page.subject, "body": page.body, **values},
        "problems": problems,
        "counter": page.sent >= COUNTER_FROM,
        "sent": page.sent,
        "goal": page.goal,
        "fixed": page.fixed,
        "groups": groups,
        "chosen": chosen,
        "governorates": [(key, governorate_name(key, code)) for key in GOVERNORATES],
        **share_context(slug, shared.card),
    }


def form_again(slug: str, raw: dict[str, str], problems: dict[str, MailerError]) -> tuple[str, int]:
    """The action page again with the problems beside their fields (a 404 for an unknown campaign)."""
    try:
        return web().render("web/action.html", 400, **action_context(slug, raw, problems))
    except NotFoundError:
        abort(404)


def share_context(slug: str, card: campaigns.ShareCard | None = None) -> dict[str, Any]:
    """What a shared link shows (the page's preview tags) and the links that share it, in the page's
    language; addresses are absolute, from MAILER_BASE_URL, as chats need them."""
    code = g.locale.code
    if card is None:
        card = campaigns.share_card(web().runtime.db, slug, code)
    base = web().runtime.settings.base_url
    page_url = base + url_for("public.action_page", locale=code, slug=slug)
    image_url = (
        base + url_for("public.share_image", locale=code, slug=slug, v=card.image[:16])
        if card.image
        else None
    )
    return {
        "share": card,
        "page_url": page_url,
        "image_url": image_url,
        "share_links": sharing.share_links(page_url, card.text, card.title),
    }


@bp.get("/<locale>/<slug>/share-image")
def share_image(locale: str, slug: str) -> Any:
    code = page_locale(locale)
    try:
        image = campaigns.share_image(web().runtime.db, slug, code)
    except NotFoundError:
        image = None
    if image is None:
        abort(404)
    response = Response(image.data, mimetype=image.media_type)
    response.set_etag(image.digest)
    # Its address carries the digest, so a changed image is a new address: caching it long is safe.
    response.cache_control.public = True
    response.cache_control.max_age = 7 * 24 * 3600
    return response.make_conditional(request)


@bp.get("/<locale>/<slug>")
def action_page(locale: str, slug: str) -> Any:
    page_locale(locale)
    try:
        shared = web().pages.get(slug, g.locale.code, translations(g.locale.code).gettext("friend"))
    except NotFoundError:
        abort(404)
    if locale != g.locale.code:  # another spelling of the language ("EN"): not worth keeping
        return web().render("web/action.html", **action_context(slug, {}, {}, shared))
    if shared.html is None:
        # Drawn once for every visitor: only the form's token and post id are theirs.
        shared.html = PageWithHoles.render(
            ("csrf_token", "post_id"),
            lambda marks: web().render(
                "web/action.html",
                **{
                    **action_context(slug, {}, {}, shared),
                    "csrf_token": lambda: marks["csrf_token"],
                    "post_id": marks["post_id"],
                },
            )[0],
        )
    return shared.html.fill({"csrf_token": generate_csrf(), "post_id": secrets.token_urlsafe(16)})


@bp.post("/<locale>/<slug>")
def action_submit(locale: str, slug: str) -> Any:
    page_locale(locale)
    rt, throttle = web().runtime, web().throttle
    raw = {
        k: request.form.get(k, "")
        for k in ("name", "email", "governorate", "subject", "body", "note", "share", "opt_in")
    }
    if request.form.get("website"):  # the honeypot: people never see it, robots fill it
        return message("check_inbox")
    submission = submission_key(slug, raw)
    proof = request.form.get("altcha", "")
    if proof and not proof_is_valid(proof, submission):
        problems = {
            "altcha": MailerError(N_("the anti-robot check failed; please reload the page and try again"))
        }
        return form_again(slug, raw, problems)
    name = "ip_with_proof" if proof else "ip_without_proof"
    allowed, retry_after = throttle.hit(name, client_bucket(web().client_ip()), LIMITS[name])
    if not allowed:
        return too_many(retry_after)
    if letters.letter_by_submission(rt.db, submission) is not None:
        return message("check_inbox")  # this very post made a letter: its confirmation is on its way
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
        return message("check_inbox")
    try:
        letters.start_letter(rt.db, QueueWhenBack(rt.backend), form, clock=rt.clock, submission=submission)
    except NotFoundError:
        abort(404)
    except MailerError as error:
        return form_again(slug, raw, {"form": error})
    return message("check_inbox")


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Any:
    # A GET never sends: mail scanners follow links. The page shows the letter; its button posts.
    rt = web().runtime
    preview = letters.letter_preview(rt.db, rt.signer, token)
    if preview is None:
        return message("bad_link", 400)
    g.locale = get_locale(preview.locale)
    return web().render("web/confirm.html", token=token, preview=preview)


@bp.post("/confirm/<token>")
def confirm_submit(token: str) -> Any:
    rt = web().runtime
    try:
        result = letters.confirm_letter(rt.db, QueueWhenBack(rt.backend), rt.signer, token, clock=rt.clock)
    except MailerError:
        return message("bad_link", 400)
    g.locale = get_locale(result.locale)
    return web().render("web/confirmed.html", result=result, **share_context(result.campaign))


@bp.get("/u/<token>")
def unsubscribe_page(token: str) -> Any:
    # A GET never unsubscribes (link scanners follow links); the page has one button.
    rt = web().runtime
    link = events.read_unsubscribe_token(rt.db, rt.signer, token)
    if link is not None:
        g.locale = get_locale(link.locale)
    return web().render("web/unsubscribe.html", token=token)


@bp.post("/u/<token>")
def unsubscribe_submit(token: str) -> Any:
    rt = web().runtime
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:  # the page's button carries a CSRF token; RFC 8058's one-click POST cannot
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            return message("expired", 400)
    erase = not one_click and request.form.get("erase") == "1"
    link = events.read_unsubscribe_token(rt.db, rt.signer, token)
    if link is not None:
        g.locale = get_locale(link.locale)
        events.unsubscribe(rt.db, link, "one-click" if one_click else "page", rt.clock())
        if erase:  # asked for on the page, with its own box and the button: never by a scanner
            privacy.erase_supporter(rt.db, link.supporter_id, rt.clock())
    # The same answer for a forged or unknown token: nobody learns who is subscribed.
    if one_click:
        return Response("", status=200)
    return web().render("web/unsubscribed.html", erased=erase)


@bp.get("/replies/<token>")
def reply_page(token: str) -> Any:
    """An official's answer to a supporter's letter, for the supporter who holds the link."""
    rt = web().runtime
    page = inbound.read_reply(rt.db, rt.signer, token)
    if page is None:
        return message("reply_gone", 404)
    g.locale = get_locale(page.locale)
    written = dt.datetime.fromisoformat(page.reply.date).astimezone(letters.BAGHDAD).date()
    return web().render("web/reply.html", page=page, when=format_date(written, g.locale.code))


@bp.get("/answers/<token>")
def answer_page(token: str) -> Any:
    # A GET never records (mail scanners follow the email's buttons): the choice is shown, the button posts.
    rt = web().runtime
    page = answers.answer_page(rt.db, rt.signer, token)
    if page is None:
        return message("bad_link", 400)
    g.locale = get_locale(page.locale)
    chosen = {request.args.get("t", ""): request.args.get("a", "")}
    return web().render("web/answer.html", token=token, page=page, chosen=chosen, answers=answers.ANSWERS)


@bp.post("/answers/<token>")
def answer_submit(token: str) -> Any:
    rt = web().runtime
    page = answers.answer_page(rt.db, rt.signer, token)
    if page is None:
        return message("bad_link", 400)
    g.locale = get_locale(page.locale)
    given = {o["slug"]: request.form.get("answer-" + o["slug"], "") for o in page.officials}
    answers.record_answers(rt.db, rt.signer, token, given, rt.clock())
    return message("answered")
