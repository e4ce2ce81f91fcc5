"""End to end in a real browser: Debian's chromium driven by Playwright (nothing is downloaded).

Opens the Sorani page, checks it is right-to-left, fills and submits the form (the page's own JavaScript
solves the proof-of-work), follows the confirmation link found in the outbox, and finds one letter per
official in the outbox, each in that official's language. Screenshots of the page in the four languages
are saved to test-artifacts/ (not committed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.store.models import Letter

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.integration


@pytest.fixture
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, which installs Debian's package")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def test_write_confirm_and_deliver_from_the_sorani_page(
    browser: object, live_server: str, runtime: Runtime
) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 1400})  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    for code in ("en", "ar", "ckb", "kmr"):
        page.goto(f"{live_server}/{code}/protect-hrds-iraq")
        page.screenshot(path=str(ARTIFACTS / f"action-page-{code}.png"), full_page=True)

    page.goto(f"{live_server}/ckb/protect-hrds-iraq")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).direction") == "rtl"
    page.fill("#name", "شیلان ئەحمەد")
    page.fill("#email", "shilan@example.org")
    page.fill("#note", "تکایە ئەم دۆسیەیە دابخەن.")
    page.select_option("#governorate", "Basra")
    page.check("input[name=share][value=name_email]")
    page.click("#letter-form button[type=submit]")
    page.wait_for_selector("h1")
    assert "/ckb/protect-hrds-iraq" in page.url

    (confirmation,) = sorted(runtime.settings.outbox_dir.glob("confirm-*.eml"))
    text = (
        message_from_bytes(confirmation.read_bytes(), policy=policy.default)
        .get_body(("plain",))
        .get_content()
    )  # type: ignore[union-attr]
    link = re.search(r"https://act\.example\.org(/confirm/\S+)", text)
    assert link, text
    page.goto(live_server + link.group(1))
    assert page.evaluate("document.documentElement.dir") == "rtl"
    page.click("button[type=submit]")
    page.wait_for_selector("h1")

    letters = [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in runtime.settings.outbox_dir.glob("letter-*.eml")
    ]
    with runtime.db.session() as session:
        readers = {t.email: t.letter_locale for t in repo.list_targets(session)}
    assert len(letters) == 6  # four fixed officials, two for Basra
    for letter in letters:
        address = letter["To"].addresses[0].addr_spec
        assert letter["Content-Language"] == readers[address], address
    with runtime.db.session() as session:
        letter_row = session.scalars(select(Letter)).one()
    assert letter_row.status == "confirmed"
