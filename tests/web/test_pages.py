"""The action pages through Flask's test client: languages, hostile input, abuse defences, double opt-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from mailer.runtime import Runtime
from mailer.store.models import Letter, Message
from tests.web.conftest import csrf_of

PAGE = "/{code}/protect-hrds-iraq"


def good_form(token: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": token,
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
    assert count(runtime, Letter) == 0


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


def test_double_opt_in_through_the_pages(client: FlaskClient, runtime: Runtime) -> None:
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
    counter = client.get(PAGE.format(code="ar")).get_data(as_text=True)
    assert "٧" in counter  # seven letters, in Arabic-Indic digits


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
    codes = [
        client.post(PAGE.format(code="en"), data=good_form(token, email=f"p{n}@example.org")).status_code
        for n in range(7)
    ]
    assert codes == [200] * 5 + [429] * 2


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
