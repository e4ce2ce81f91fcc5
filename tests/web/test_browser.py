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


def confirmation_path(confirmation: Path) -> str:
    """The confirmation link's path, read from the plain part of the email in the outbox."""
    text = (
        message_from_bytes(confirmation.read_bytes(), policy=policy.default)
        .get_body(("plain",))
        .get_content()
    )  # type: ignore[union-attr]
    link = re.search(r"https://act\.example\.org(/confirm/\S+)", text)
    assert link, text
    return link.group(1)


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
    page.goto(live_server + confirmation_path(confirmation))
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


def confirmations(runtime: Runtime) -> list[Path]:
    return sorted(runtime.settings.outbox_dir.glob("confirm-*.eml"))


def test_a_mistake_is_summarised_at_the_top_with_every_value_kept(
    browser: object, live_server: str, runtime: Runtime
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(f"{live_server}/ar/protect-hrds-iraq")
    page.fill("#name", "\u200fزينب علي")  # a name typed with a right-to-left mark
    page.fill("#email", "zainab@")
    page.fill("#note", "أرجو إسقاط الدعاوى.")
    page.select_option("#governorate", "Basra")
    page.evaluate("document.getElementById('subject').value = ''")  # inside the folded letter
    page.click("#send")
    page.wait_for_selector("#error-summary")
    page.wait_for_load_state("load")  # the page's deferred script has run

    assert page.evaluate("document.activeElement.id") == "error-summary"  # read first, from the top
    assert page.title().startswith("خطأ")
    assert page.input_value("#name") == "\u200fزينب علي"
    assert page.input_value("#note") == "أرجو إسقاط الدعاوى."
    assert page.input_value("#governorate") == "Basra"
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert page.get_attribute("#email", "aria-describedby") == "email-problem"
    assert page.get_attribute("#name", "aria-invalid") is None
    links = page.locator("#error-summary a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == ["#email", "#subject"]
    links.first.click()
    assert page.evaluate("document.activeElement.id") == "email"
    assert page.get_attribute("details.letter-text", "open") is not None  # opened to show its problem
    page.evaluate("document.querySelector('details.letter-text').open = false")
    links.nth(1).click()  # the link opens the fold and puts the cursor in the subject
    assert page.evaluate("document.activeElement.id") == "subject"
    assert page.input_value("#body") != ""  # the letter's text is kept
    assert confirmations(runtime) == []


@pytest.mark.parametrize("wait_for_proof", [False, True], ids=["proof-pending", "proof-ready"])
def test_a_double_click_sends_one_confirmation_and_says_so(
    browser: object, live_server: str, runtime: Runtime, wait_for_proof: bool
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(f"{live_server}/kmr/protect-hrds-iraq")
    page.fill("#name", "Rojda Amed")
    page.fill("#email", "rojda@example.org")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    if wait_for_proof:
        page.wait_for_function("document.getElementById('altcha').value !== ''")
    page.dblclick("#send")
    page.wait_for_url("**/kmr/protect-hrds-iraq")
    page.wait_for_selector("main h1")
    assert page.locator("#letter-form").count() == 0  # the answer page, not the form again
    assert len(posts) == 1  # the button is pressed once (the server would also answer a repeat truly)
    assert len(confirmations(runtime)) == 1


def test_who_the_letter_reaches_narrows_to_the_chosen_governorate(browser: object, live_server: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(f"{live_server}/en/protect-hrds-iraq")
    groups = page.locator("#reaches .local")
    every = groups.count()
    assert every >= 2
    assert page.locator("#reaches .local:visible").count() == every  # nothing chosen: all of them
    page.select_option("#governorate", "Erbil")
    visible = page.locator("#reaches .local:visible")
    assert visible.count() == 1
    assert "Erbil" in (visible.first.get_attribute("data-governorates") or "")
    page.select_option("#governorate", "Dhi Qar")  # adds no official of its own
    assert page.locator("#reaches .local:visible").count() == 0
    page.select_option("#governorate", "")
    assert page.locator("#reaches .local:visible").count() == every


def test_without_javascript_the_form_still_lists_everyone_and_keeps_the_choice(
    browser: object, live_server: str
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{live_server}/ckb/protect-hrds-iraq")
    every = page.locator("#reaches .local").count()
    assert page.locator("#reaches .local:visible").count() == every
    page.select_option("#governorate", "Basra")
    page.click("#send")  # no name, no address: the server answers with the summary
    assert page.locator("#error-summary li").count() == 2
    assert page.url.endswith("#error-summary")  # the browser itself moves the focus there
    # The browser moves the focus once the page has loaded; under load that can come after the click returns.
    page.wait_for_function(
        "document.activeElement && document.activeElement.id === 'error-summary'", timeout=10_000
    )
    assert page.evaluate("document.activeElement.id") == "error-summary"
    visible = page.locator("#reaches .local:visible")
    assert visible.count() == 1
    assert "Basra" in (visible.first.get_attribute("data-governorates") or "")
    context.close()


@pytest.mark.parametrize("code", ["en", "ar", "ckb", "kmr"])
def test_the_action_page_on_a_phone(browser: object, live_server: str, code: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(f"{live_server}/{code}/protect-hrds-iraq")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"action-page-phone-{code}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    # The form starts within the second screen: what happened is read, then one scroll to write.
    assert page.evaluate("document.getElementById('name').getBoundingClientRect().top") < 2 * 844
    assert page.locator("details.letter-text").get_attribute("open") is None  # the letter is folded
    expected = "rtl" if code in ("ar", "ckb") else "ltr"
    assert page.evaluate("getComputedStyle(document.getElementById('write')).direction") == expected


@pytest.mark.parametrize("code", ["en", "ar", "ckb", "kmr"])
def test_thank_you_privacy_and_error_pages_on_a_phone(
    browser: object, live_server: str, runtime: Runtime, code: str
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/{code}/protect-hrds-iraq")
    page.fill("#name", "Sara Example")
    page.fill("#email", "sara@example.org")
    page.click("#send")
    page.wait_for_selector("main h1")
    page.screenshot(path=str(ARTIFACTS / f"check-inbox-phone-{code}.png"), full_page=True)
    (confirmation,) = confirmations(runtime)
    page.goto(live_server + confirmation_path(confirmation))
    page.click("button[type=submit]")
    page.wait_for_selector(".share-links")
    page.screenshot(path=str(ARTIFACTS / f"thank-you-phone-{code}.png"), full_page=True)
    assert page.locator(".share-links a").count() == 5
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("footer a")  # the privacy notice, from the page's footer, in the page's language
    page.wait_for_url(f"**/{code}/privacy")
    page.screenshot(path=str(ARTIFACTS / f"privacy-phone-{code}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.documentElement.lang") == code
    page.goto(f"{live_server}/{code}/no-such-page/at-all")
    page.screenshot(path=str(ARTIFACTS / f"not-found-phone-{code}.png"), full_page=True)
    assert page.evaluate("document.documentElement.lang") == code
