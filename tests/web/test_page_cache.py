"""The action page drawn once per process and language: the same page for every visitor, a coordinator's
reload or edit at once, the counter after its few seconds, one entry per language."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer import campaigns, letters
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.store.models import Letter, Message
from mailer.web import public
from mailer.web.page_cache import COUNTER_TTL, ActionPageCache
from tests.web.conftest import Clock, csrf_of
from tests.web.test_pages import good_form

SLUG = "protect-hrds-iraq"
PAGE = "/{code}/" + SLUG
#: What changes from one visitor to the next: the form's CSRF token and its post id.
OWN_VALUES = re.compile(r'name="(csrf_token|post_id)" value="[^"]*"')


def builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every time the page's content is read from the database (campaign, language)."""
    calls: list[tuple[str, str]] = []
    real = letters.action_page

    def counted(db: Any, slug: str, code: str, greeting_name: str) -> letters.ActionPage:
        calls.append((slug, code))
        return real(db, slug, code, greeting_name)

    monkeypatch.setattr(letters, "action_page", counted)
    return calls


def html(client: FlaskClient, code: str) -> str:
    response = client.get(PAGE.format(code=code))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def add_sent_letters(runtime: Runtime, count: int) -> None:
    """Letters of the campaign handed to the provider, as the counter counts them."""
    with runtime.db.session() as session:
        campaign = repo.get_campaign(session, SLUG)
        for _ in range(count):
            letter = Letter(
                campaign_id=campaign.id, locale="en", share="name", targets=[], status="confirmed"
            )
            session.add(letter)
            session.flush()
            session.add(
                Message(
                    idempotency_key=f"letter:{letter.id}:bench",
                    kind="letter",
                    letter_id=letter.id,
                    locale="en",
                    content_locale="en",
                    status="sent",
                )
            )


def test_the_page_is_drawn_once_and_each_visitor_gets_their_own_token(
    app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = builds(monkeypatch)
    first, second = app.test_client(), app.test_client()
    one, two = html(first, "kmr"), html(second, "kmr")
    assert calls == [(SLUG, "kmr")]
    assert OWN_VALUES.sub("", one) == OWN_VALUES.sub("", two)
    assert csrf_of(one) != csrf_of(two)
    # The second visitor's token, taken from the kept page, is theirs: their letter is accepted.
    response = second.post(PAGE.format(code="kmr"), data=good_form(csrf_of(two)))
    assert response.status_code == 200
    with runtime.db.session() as session:
        assert session.query(Letter).count() == 1


def test_a_reload_or_an_edit_shows_on_the_next_request(app: Flask, runtime: Runtime, tmp_path: Path) -> None:
    client = app.test_client()
    assert "In March 2022" in html(client, "en")
    # A coordinator reloads the folder with a new text (the clock has not moved).
    folder = tmp_path / SLUG
    shutil.copytree(demo_dir() / "campaigns" / SLUG, folder)
    page = folder / "page.en.md"
    page.write_text(page.read_text().replace("In March 2022", "In the spring of 2022"))
    campaigns.load_campaign(runtime.db, folder)
    assert "In the spring of 2022" in html(client, "en")
    # ... then edits it in the dashboard.
    text = campaigns.content_text(runtime.db, SLUG, "page", "en")
    campaigns.save_content(runtime.db, SLUG, "page", "en", text.replace("spring", "autumn"))
    assert "In the autumn of 2022" in html(client, "en")


def test_the_counter_is_read_again_after_its_few_seconds(
    app: Flask, runtime: Runtime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(public, "COUNTER_FROM", 1)
    add_sent_letters(runtime, 3)
    client = app.test_client()
    assert "3 letters sent" in html(client, "en")
    add_sent_letters(runtime, 2)
    clock.advance(seconds=COUNTER_TTL.total_seconds() - 1)
    assert "3 letters sent" in html(client, "en")  # a crowd's requests share one count
    clock.advance(seconds=1)
    assert "5 letters sent" in html(client, "en")


def test_each_language_has_its_own_entry(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = builds(monkeypatch)
    client = app.test_client()
    english, arabic, english_again = html(client, "en"), html(client, "ar"), html(client, "en")
    assert calls == [(SLUG, "en"), (SLUG, "ar")]
    assert '<html lang="en" dir="ltr">' in english
    assert "In March 2022" in english
    assert '<html lang="ar" dir="rtl">' in arabic
    assert "في آذار/مارس ٢٠٢٢" in arabic
    assert "In March 2022" not in arabic
    assert OWN_VALUES.sub("", english_again) == OWN_VALUES.sub("", english)


def test_the_cache_keeps_a_bounded_number_of_pages(
    app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = builds(monkeypatch)
    cache = ActionPageCache(runtime.db, runtime.clock, max_entries=2)
    for code in ("en", "ar", "en", "ckb", "ar"):  # "ckb" pushes out "ar", the least recently used
        cache.get(SLUG, code, "friend")
    assert calls == [(SLUG, "en"), (SLUG, "ar"), (SLUG, "ckb"), (SLUG, "ar")]
