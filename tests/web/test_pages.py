"""The action pages through Flask's test client: languages, hostile input, abuse defences, double opt-in."""

from __future__ import annotations

import base64
import dataclasses
import re
import secrets
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits import parse
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest

from mailer.runtime import Runtime
from mailer.store.models import Letter, Message
from mailer.web import create_app
from mailer.web import public as web
from mailer.web.page_cache import COUNTER_TTL
from tests.web.conftest import Clock, csrf_of
from tests.web.proofs import encode, solved_proof

PAGE = "/{code}/protect-hrds-iraq"


def good_form(token: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "post_id": secrets.token_urlsafe(8),  # a page load of its own, as the page's random value says
        "name": "Rojda Şêxo",
        "email": "rojda@example.com",
        "governorate": "Duhok",
        "share": "name",
        "subject": "Dozên li dijî parêzvanan rakin",
        "body": "Birêz, ji kerema xwe dozan rakin.",
        "note": "",
        "website": "",
    } | changes


def count(runtime: Runtime, model: type) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("code", "direction"), [("en", "ltr"), ("ar", "rtl"), ("ckb", "rtl"), ("kmr", "ltr")]
)
def test_action_page_in_each_language(client: FlaskClient, code: str, direction: str) -> None:
    response = client.get(PAGE.format(code=code))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<html lang="{code}" dir="{direction}">' in html
    assert 'lang="ckb" dir="rtl"' in html  # the language switcher names each language in itself
    assert "کوردیی ناوەندی" in html
    assert "Kurmancî" in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "googleapis" not in html


@pytest.mark.parametrize(("spelled", "code"), [("ckb-IQ", "ckb"), ("CKB", "ckb"), ("ar_IQ", "ar")])
def test_another_spelling_of_a_language_serves_that_language(
    client: FlaskClient, spelled: str, code: str
) -> None:
    html = client.get(PAGE.format(code=spelled)).get_data(as_text=True)
    assert f'<html lang="{code}" dir="rtl">' in html


def test_hostile_input_gets_a_message_in_the_page_language_and_nothing_is_stored(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="kmr")).get_data(as_text=True))
    for field, value in [
        ("name", "Rojda\r\nBcc: x@example.org"),
        ("note", "x" * 50_000),
        ("note", "a\u202eb"),
        ("name", "Roj\u200bda"),
        ("note", "<b>bold</b>"),
    ]:
        response = client.post(PAGE.format(code="kmr"), data=good_form(token, **{field: value}))
        assert response.status_code == 400, field
        html = response.get_data(as_text=True)
        assert 'class="problem"' in html
        assert f'id="{field}-problem"' in html
    assert count(runtime, Letter) == 0
    assert count(runtime, Message) == 0


def test_a_whole_note_of_100_kb_is_refused_before_anything_runs(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    response = client.post(PAGE.format(code="en"), data=good_form(token, note="x" * 100_000))
    assert response.status_code == 413
    assert "Too much text" in response.get_data(as_text=True)  # our page, not the framework's
    assert count(runtime, Letter) == 0


@pytest.mark.parametrize(("code", "direction"), [("ar", "rtl"), ("ckb", "rtl"), ("kmr", "ltr")])
def test_an_oversize_form_is_answered_in_the_page_language(
    client: FlaskClient, code: str, direction: str
) -> None:
    token = csrf_of(client.get(PAGE.format(code=code)).get_data(as_text=True))
    response = client.post(PAGE.format(code=code), data=good_form(token, note="x" * 100_000))
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert f'<html lang="{code}" dir="{direction}">' in html
    assert "Request Entity Too Large" not in html


def test_no_csrf_token_no_letter(client: FlaskClient, runtime: Runtime) -> None:
    response = client.post(PAGE.format(code="en"), data=good_form(""))
    assert response.status_code == 400
    assert count(runtime, Letter) == 0


def test_the_honeypot_answers_like_success_and_stores_nothing(client: FlaskClient, runtime: Runtime) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    response = client.post(PAGE.format(code="en"), data=good_form(token, website="http://spam.example.com"))
    assert response.status_code == 200
    assert count(runtime, Letter) == 0


def outbox(runtime: Runtime, kind: str) -> list[Path]:
    return sorted(runtime.settings.outbox_dir.glob(f"{kind}-*.eml"))


def test_double_opt_in_through_the_pages(
    client: FlaskClient, runtime: Runtime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = csrf_of(client.get(PAGE.format(code="kmr")).get_data(as_text=True))
    response = client.post(PAGE.format(code="kmr"), data=good_form(token))
    assert response.status_code == 200
    assert outbox(runtime, "letter") == []
    (confirmation,) = outbox(runtime, "confirm")
    link = re.search(
        r"https://act\.example\.org(/confirm/[\w.\-]+)", confirmation.read_text(errors="replace")
    )
    assert link
    page = client.get(link.group(1))
    assert page.status_code == 200
    assert outbox(runtime, "letter") == []  # a GET never sends: mail scanners follow links
    sent = client.post(link.group(1), data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert sent.status_code == 200
    assert len(outbox(runtime, "letter")) == 7  # four fixed officials, three for Duhok
    again = client.post(link.group(1), data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert again.status_code == 200
    assert len(outbox(runtime, "letter")) == 7
    assert 'class="counter"' not in client.get(PAGE.format(code="ar")).get_data(as_text=True)
    monkeypatch.setattr(web, "COUNTER_FROM", 7)
    clock.advance(seconds=COUNTER_TTL.total_seconds())  # each process draws the page again this often
    counter = client.get(PAGE.format(code="ar")).get_data(as_text=True)
    assert "٧ خطابات" in counter  # seven letters, in Arabic-Indic digits, with the plural for 3-10
    assert "١٬٠٠٠" in counter  # of the goal of 1,000
    assert '<progress max="1000" value="7"' in counter


def test_pages_with_a_token_in_their_address_are_never_cached(client: FlaskClient) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    answers = [
        client.get("/confirm/forged.token.value"),
        client.post("/confirm/forged.token.value", data={"csrf_token": token}),
        client.get("/u/forged.token.value"),
        client.post("/u/forged.token.value", data={"csrf_token": token}),
        client.post("/u/forged.token.value", data={"List-Unsubscribe": "One-Click"}),
    ]
    assert [a.headers.get("Cache-Control") for a in answers] == ["no-store"] * len(answers)
    assert all(a.headers["Referrer-Policy"] == "same-origin" for a in answers)


def session_cookie(client: FlaskClient) -> str:
    response = client.get(PAGE.format(code="en"))  # the form's CSRF token lives in the session
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return cookie


def test_the_session_cookie_is_secure_when_the_site_is_https(client: FlaskClient) -> None:
    assert "; Secure" in session_cookie(client)  # the tests' MAILER_BASE_URL is https://


def test_a_letter_can_be_sent_from_the_page_over_https(runtime: Runtime, app: Flask) -> None:
    """Behind https, Flask-WTF wants a same-origin Referer on a POST: the page's policy lets the browser
    send it to us (and to nobody else), so the form works on a real site."""
    client = app.test_client()
    base = "https://act.example.org"
    page = client.get(PAGE.format(code="kmr"), base_url=base)
    assert page.headers["Referrer-Policy"] == "same-origin"
    answer = client.post(
        PAGE.format(code="kmr"),
        data=good_form(csrf_of(page.get_data(as_text=True))),
        base_url=base,
        headers={"Referer": base + PAGE.format(code="kmr")},  # what a browser sends under same-origin
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert len(outbox(runtime, "confirm")) == 1


def test_the_session_cookie_works_on_a_plain_http_site(app: Flask, runtime: Runtime) -> None:
    local = Runtime(dataclasses.replace(runtime.settings, base_url="http://localhost:8000"))
    local.__dict__["db"] = runtime.db
    assert "; Secure" not in session_cookie(create_app(local).test_client())


def test_forged_confirmation_links_send_nothing(client: FlaskClient, runtime: Runtime) -> None:
    page = client.get("/confirm/forged.token.value")
    assert page.status_code == 400  # the page says the link does not work, and offers no button
    assert "confirm_submit" not in page.get_data(as_text=True)
    home = client.get(PAGE.format(code="en"))
    response = client.post(
        "/confirm/forged.token.value", data={"csrf_token": csrf_of(home.get_data(as_text=True))}
    )
    assert response.status_code == 400
    assert outbox(runtime, "letter") == []


def test_without_javascript_a_stricter_limit_per_ip(client: FlaskClient, runtime: Runtime) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    answers = [
        client.post(PAGE.format(code="en"), data=good_form(token, email=f"p{n}@example.org"))
        for n in range(7)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    # The test clock reads 10:00 in Baghdad, on the hour: the hour's window closes in 3600 seconds.
    assert [a.headers.get("Retry-After") for a in answers] == [None] * 5 + ["3600"] * 2


def test_many_letters_from_one_ip_with_proofs_get_429_and_when_to_retry(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    answers = [
        client.post(
            PAGE.format(code="en"), data=good_form(token, email=f"w{n}@example.org", altcha=solved_proof())
        )
        for n in range(22)
    ]
    assert [a.status_code for a in answers] == [200] * 20 + [429] * 2
    assert [a.headers.get("Retry-After") for a in answers[20:]] == ["3600", "3600"]
    assert "Too many attempts" in answers[-1].get_data(as_text=True)
    assert count(runtime, Letter) == 20


def test_a_replayed_proof_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    proof = solved_proof()
    first = client.post(PAGE.format(code="en"), data=good_form(token, email="a@example.org", altcha=proof))
    again = client.post(PAGE.format(code="en"), data=good_form(token, email="b@example.org", altcha=proof))
    assert (first.status_code, again.status_code) == (200, 400)
    assert "anti-robot" in again.get_data(as_text=True)
    assert count(runtime, Letter) == 1


def test_the_same_post_twice_gets_the_same_answer_and_one_confirmation(
    client: FlaskClient, runtime: Runtime
) -> None:
    """A double click: the browser shows the second answer, which must be as true as the first."""
    token = csrf_of(client.get(PAGE.format(code="ar")).get_data(as_text=True))
    form = good_form(token, altcha=solved_proof())
    first = client.post(PAGE.format(code="ar"), data=form)
    again = client.post(PAGE.format(code="ar"), data=form)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.get_data(as_text=True) == first.get_data(as_text=True)
    assert count(runtime, Letter) == 1
    assert len(outbox(runtime, "confirm")) == 1


def test_the_same_post_twice_without_javascript_makes_one_letter(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    form = good_form(token)
    answers = [client.post(PAGE.format(code="en"), data=form) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert count(runtime, Letter) == 1
    assert len(outbox(runtime, "confirm")) == 1


def test_the_same_letter_from_a_new_page_load_is_a_new_letter(client: FlaskClient, runtime: Runtime) -> None:
    """Someone who reloads the page and writes again means it: only the very same post is folded."""
    for _ in range(2):
        token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
        assert client.post(PAGE.format(code="en"), data=good_form(token)).status_code == 200
    assert count(runtime, Letter) == 2


FIELDS = ["algorithm", "challenge", "number", "salt", "signature"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(encode(FIELDS), id="a JSON list"),
        pytest.param(encode(" ".join(FIELDS)), id="a JSON string"),
        pytest.param(
            encode({"algorithm": "SHA-256", "challenge": "0" * 64, "number": 1, "salt": 5, "signature": "x"}),
            id="a number as salt",
        ),
        pytest.param(
            encode(
                {"algorithm": "SHA-256", "challenge": "0" * 64, "number": "1", "salt": "s", "signature": []}
            ),
            id="a list as signature",
        ),
        pytest.param(encode(None), id="JSON null"),
        pytest.param("not base64 at all!", id="not base64"),
        pytest.param("////", id="base64 of bytes that are not UTF-8"),
        pytest.param(encode([[]]).replace("=", "") + "=", id="broken padding"),
    ],
)
def test_a_malformed_proof_gets_the_form_again(client: FlaskClient, runtime: Runtime, payload: str) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    response = client.post(PAGE.format(code="en"), data=good_form(token, altcha=payload))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "anti-robot check failed" in html
    assert 'value="Rojda Şêxo"' in html  # what the supporter wrote is still there
    assert count(runtime, Letter) == 0


def test_a_proof_nested_too_deep_gets_the_form_again(client: FlaskClient) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    for depth in (100, 5000):
        payload = base64.b64encode(("[" * depth + "]" * depth).encode()).decode()
        response = client.post(PAGE.format(code="en"), data=good_form(token, altcha=payload))
        assert response.status_code == 400, depth


def test_an_invalid_form_for_an_unknown_campaign_is_not_found(client: FlaskClient) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    for problem in ({"name": ""}, {"altcha": "not base64 at all!"}):
        response = client.post("/en/no-such-campaign", data=good_form(token, **problem))
        assert response.status_code == 404, problem
        assert "Page not found" in response.get_data(as_text=True)


def test_a_spoofed_forwarded_for_header_does_not_escape_the_limit(client: FlaskClient) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    codes = [
        client.post(
            PAGE.format(code="en"),
            data=good_form(token, email=f"q{n}@example.org"),
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(6)
    ]
    assert codes[-1] == 429


def test_one_address_gets_few_confirmations_and_the_page_does_not_tell(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    answers = [
        client.post(PAGE.format(code="en"), data=good_form(token, email="target@example.net"))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.get_data(as_text=True) for a in answers}) == 1  # the same page every time
    assert len(outbox(runtime, "confirm")) == 3


def test_a_flood_of_letters_to_one_campaign_trips_its_breaker(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A1: letters from many addresses to one campaign: past the campaign's hourly cap the form pauses,
    answers 429 with when to come back, and stores nothing more."""
    monkeypatch.setitem(web.LIMITS, "letters_per_campaign", parse("3/hour"))
    token = csrf_of(client.get(PAGE.format(code="en")).get_data(as_text=True))
    answers = [
        client.post(
            PAGE.format(code="en"),
            data=good_form(token, email=f"writer{n}@example.net"),
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},  # a different client each time
        )
        for n in range(5)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 3600
    assert len(outbox(runtime, "confirm")) == 3
    other = client.get("/en/").status_code  # the rest of the site stays up
    assert other == 200


def test_our_own_error_pages_in_the_language_of_the_address(app: Flask) -> None:
    def bad(locale: str) -> str:
        raise BadRequest()

    def broken(locale: str) -> str:
        raise RuntimeError("a bug, with a supporter@example.org in its message")

    app.add_url_rule("/<locale>/test-bad", "test_bad", bad)
    app.add_url_rule("/<locale>/test-broken", "test_broken", broken)
    client = app.test_client()
    cases = [
        ("/ar/no-such/page", "get", 404, "الصفحة غير موجودة"),
        ("/ckb/test-bad", "get", 400, None),
        ("/kmr/test-broken", "get", 500, None),
        ("/ar/protect-hrds-iraq", "put", 405, None),
    ]
    for path, method, status, words in cases:
        code = path.split("/")[1]
        response = getattr(client, method)(path, headers={"Accept-Language": "en"})
        html = response.get_data(as_text=True)
        assert response.status_code == status, path
        assert f'<html lang="{code}"' in html, path
        assert "<h1>" in html, path
        for leak in ("Traceback", "example.org", "Werkzeug", "Internal Server Error", "Bad Request"):
            assert leak not in html, (path, leak)
        if words:
            assert words in html
    assert "Allow" in client.put("/ar/protect-hrds-iraq").headers


def test_the_webhook_gets_plain_errors(client: FlaskClient) -> None:
    response = client.get("/webhooks/sendgrid")
    assert response.status_code == 404  # only POST is routed there
    assert response.mimetype == "text/plain"


def test_a_favicon_for_browsers_that_ask_and_pages_that_point_at_it(client: FlaskClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert 'rel="icon"' in client.get(PAGE.format(code="en")).get_data(as_text=True)


@pytest.mark.parametrize("code", ["en", "ar", "ckb", "kmr"])
def test_a_shared_link_previews_in_the_page_language(client: FlaskClient, code: str) -> None:
    html = client.get(PAGE.format(code=code)).get_data(as_text=True)
    tags = dict(re.findall(r'<meta (?:property|name)="((?:og|twitter):[a-z:]+)" content="([^"]*)"', html))
    page_url = f"https://act.example.org/{code}/protect-hrds-iraq"
    assert tags["og:url"] == page_url
    assert tags["og:title"] in html.split("<h1>", 1)[1]  # the page's own title
    assert tags["og:description"]
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["og:image"].startswith(f"https://act.example.org/{code}/protect-hrds-iraq/share-image?v=")
    image = client.get(tags["og:image"].removeprefix("https://act.example.org"))
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    assert "max-age" in image.headers["Cache-Control"]
    again = client.get(
        tags["og:image"].removeprefix("https://act.example.org"),
        headers={"If-None-Match": image.headers["ETag"]},
    )
    assert again.status_code == 304
    others = {c for c in ("en", "ar", "ckb", "kmr") if c != code}
    assert {
        f'hreflang="{c}" href="https://act.example.org/{c}/protect-hrds-iraq"' in html for c in others
    } == {True}


def test_no_share_image_for_a_campaign_that_does_not_exist(client: FlaskClient) -> None:
    assert client.get("/en/no-such-campaign/share-image").status_code == 404


def test_the_thank_you_page_asks_to_share_in_the_supporter_language(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = csrf_of(client.get(PAGE.format(code="ar")).get_data(as_text=True))
    assert client.post(PAGE.format(code="ar"), data=good_form(token)).status_code == 200
    (confirmation,) = outbox(runtime, "confirm")
    link = re.search(
        r"https://act\.example\.org(/confirm/[\w.\-]+)", confirmation.read_text(errors="replace")
    )
    assert link
    page = client.get(link.group(1))
    done = client.post(link.group(1), data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    html = done.get_data(as_text=True)
    links = re.findall(r'<a href="([^"]+)" rel="noopener noreferrer" class="share-(\w+)"', html)
    assert [service for _, service in links] == ["whatsapp", "telegram", "facebook", "x", "email"]
    page_url = quote("https://act.example.org/ar/protect-hrds-iraq", safe="")
    for href, _ in links:
        assert page_url in href.replace("&amp;", "&")
    whatsapp = unquote(links[0][0].replace("&amp;", "&"))
    assert "اكتب إلى المسؤولين" in whatsapp  # the Arabic page's share line
    assert "<script" not in html.split("<main>", 1)[1]  # plain links: nothing of theirs is loaded


@pytest.mark.parametrize(
    ("code", "days"), [("en", "7 days"), ("ar", "٧ أيام"), ("ckb", "٧ ڕۆژ"), ("kmr", "7 rojan")]
)
def test_the_privacy_notice_says_what_the_settings_do(
    app: Flask, runtime: Runtime, code: str, days: str
) -> None:
    settings = dataclasses.replace(
        runtime.settings,
        retain_letter_days=7,
        privacy_contact="privacy@example.net",
        transport="smtp",
        from_name="Example <Solidarity>",
    )
    local = Runtime(settings)
    local.__dict__["db"] = runtime.db
    client = create_app(local).test_client()
    html = client.get(f"/{code}/privacy").get_data(as_text=True)
    assert f'<html lang="{code}"' in html
    assert days in html  # MAILER_RETAIN_LETTER_DAYS, in the page's digits and plural
    assert 'href="mailto:privacy@example.net"' in html
    assert "<bdi>Example &lt;Solidarity&gt;</bdi>" in html  # escaped, whatever the translation
    assert "SendGrid" not in html  # this installation sends through its own server
    # Every public page links to it, in its own language.
    for path in (PAGE.format(code=code), f"/{code}/", f"/{code}/privacy"):
        assert f'href="/{code}/privacy"' in client.get(path).get_data(as_text=True), path
