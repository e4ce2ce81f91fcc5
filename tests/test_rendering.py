"""Rendered alerts per locale against golden files (regenerate on purpose: pytest --update-golden)."""

import datetime as dt
import re
from pathlib import Path

import pytest

from mailer import campaigns
from mailer.content import RLM
from mailer.locales import LOCALE_CODES, REGISTRY
from mailer.rendering import AlertContent, Renderer
from mailer.resources import demo_dir

GOLDEN = Path(__file__).parent / "golden"
SEED = campaigns.parse_campaign_folder(demo_dir() / "campaigns" / "protect-hrds-iraq")
RECIPIENTS = {
    "en": {"first_name": "Sarah", "name": "Sarah Miller", "governorate": "Basra"},
    "ar": {"first_name": "زينب", "name": "زينب حسن", "governorate": "البصرة"},
    "ckb": {"first_name": "شیلان", "name": "شیلان ئەحمەد", "governorate": "هەولێر"},
    "kmr": {"first_name": "Rojda", "name": "Rojda Şêxo", "governorate": "Duhok"},
}


def render(code: str):  # type: ignore[no-untyped-def]
    content = next(c for c in SEED.contents if c.kind == "alert" and c.locale == code)
    prepared = Renderer().render_alert(
        AlertContent(SEED.title[code], content.subject, content.preheader, content.body),
        code,
        dt.date(2026, 11, 27),
        privacy_url=f"https://act.example.org/{code}/privacy",
    )
    values = {
        **RECIPIENTS[code],
        "action_url": f"https://act.example.org/{code}/protect-hrds-iraq?t=TOKEN",
        "unsubscribe_url": "https://act.example.org/u/TOKEN",
    }
    return prepared.personalise(values)


@pytest.mark.parametrize("code", LOCALE_CODES)
def test_alert_matches_golden(code: str, request: pytest.FixtureRequest) -> None:
    email = render(code)
    files = {
        GOLDEN / f"alert.{code}.subject.txt": email.subject + "\n",
        GOLDEN / f"alert.{code}.html": email.html,
        GOLDEN / f"alert.{code}.txt": email.text,
    }
    if request.config.getoption("--update-golden"):
        GOLDEN.mkdir(exist_ok=True)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
    for path, text in files.items():
        assert path.exists(), f"{path.name} is missing: run pytest --update-golden once, and review it"
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from the rendering"


@pytest.mark.parametrize("code", LOCALE_CODES)
def test_direction_on_html_and_every_layout_cell(code: str) -> None:
    locale = REGISTRY[code]
    html = render(code).html
    assert f'<html lang="{code}" dir="{locale.direction}">' in html
    cells = re.findall(r"<td[^>]*>", html)
    assert cells
    assert all(f'dir="{locale.direction}"' in cell for cell in cells)
    align = "right" if locale.is_rtl else "left"
    assert all(f'align="{align}"' in cell for cell in cells if 'align="center"' not in cell)
    assert "<style" not in html  # inlined
    assert "text-align: " + align in html
    assert "@import" not in html
    assert "fonts.googleapis" not in html


@pytest.mark.parametrize("code", LOCALE_CODES)
def test_text_part_and_translated_footer(code: str) -> None:
    email = render(code)
    paragraphs = [p for p in email.text.split("\n\n") if p.strip() and not p.startswith("--")]
    if REGISTRY[code].is_rtl:
        assert all(p.startswith(RLM) for p in paragraphs)
    else:
        assert RLM not in email.text
    assert "https://act.example.org/u/TOKEN" in email.text
    assert RECIPIENTS[code]["first_name"] in email.text
    if code != "en":
        assert "Unsubscribe" not in email.text, "the footer is not translated"
        assert "Unsubscribe" not in email.html


def test_personal_values_are_escaped_in_html() -> None:
    content = next(c for c in SEED.contents if c.kind == "alert" and c.locale == "en")
    prepared = Renderer().render_alert(
        AlertContent("T", "Hello {first_name}", "", content.body), "en", dt.date(2026, 11, 27)
    )
    email = prepared.personalise(
        {"first_name": "<img src=x>", "name": "", "governorate": "", "action_url": "", "unsubscribe_url": ""}
    )
    assert "<img src=x>" not in email.html
    assert "&lt;img src=x&gt;" in email.html
    assert email.subject == "Hello <img src=x>"


def test_the_same_alert_is_rendered_once_and_any_change_renders_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker renders each batch of a mailout from the same snapshot: the last few are kept. A change of
    content, locale, date or privacy address is another email."""
    renderer = Renderer()
    rendered: list[tuple[str, dt.date]] = []
    real = renderer._render_alert

    def counting(content: AlertContent, code: str, sent_on: dt.date, privacy_url: str):  # type: ignore[no-untyped-def]
        rendered.append((code, sent_on))
        return real(content, code, sent_on, privacy_url)

    monkeypatch.setattr(renderer, "_render_alert", counting)
    content = AlertContent("T", "Subject", "", "Body")
    day = dt.date(2026, 11, 27)
    first = renderer.render_alert(content, "ar", day)
    assert renderer.render_alert(AlertContent("T", "Subject", "", "Body"), "ar", day) is first
    renderer.render_alert(content, "en", day)
    renderer.render_alert(content, "ar", day + dt.timedelta(days=1))
    renderer.render_alert(content, "ar", day, privacy_url="https://act.example.org/ar/privacy")
    changed = renderer.render_alert(AlertContent("T", "Subject", "", "Body, edited"), "ar", day)
    assert "edited" in changed.text
    assert len(rendered) == 5
