"""Accessibility and weight of the public pages, in Debian's chromium driven by Playwright.

Each public page, in the four languages, is checked by axe-core: our vendored copy (vendor/axe-core, its
digest checked first), injected from the file, so nothing is fetched. A "serious" or "critical" violation
fails, with its rule, the elements and axe's help. Also checked: the keyboard reaches the form's fields in
order with a visible focus, the page reflows at 320 CSS px, and the action page loads nothing from a third
party and weighs under 100 KB (document, stylesheets and scripts).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from mailer.runtime import Runtime
from mailer.store.models import Supporter
from mailer.supporters import import_supporters_text
from tests.web.test_browser import browser  # noqa: F401  (the fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response

pytestmark = pytest.mark.integration

VENDOR = Path(__file__).parent / "vendor" / "axe-core"
CODES = ("en", "ar", "ckb", "kmr")
SLUG = "protect-hrds-iraq"
BLOCKING = ("serious", "critical")
MAX_BYTES = 100_000  # 100 KB: the action page must load quickly on a poor connection
NAMES = {"en": "Sam Jones", "ar": "زينب علي", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Amed"}


@dataclass(frozen=True)
class Site:
    """The live server's address and the runtime behind it (its outbox, its database)."""

    url: str
    runtime: Runtime


@pytest.fixture(autouse=True)
def _once(database_url: str) -> None:
    """The pages are the same on every database: checked once, on the embedded default (they are slow)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("checked on SQLite only")


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core, refused unless it is byte for byte the published file its SHA256SUMS and README name: a
    changed file would make every check below mean something else."""
    sums = {name: digest for digest, name in map(str.split, (VENDOR / "SHA256SUMS").read_text().splitlines())}
    script = VENDOR / "axe.min.js"
    actual = hashlib.sha256(script.read_bytes()).hexdigest()
    assert actual == sums.get(script.name), f"{script.name} has sha256 {actual}, SHA256SUMS says {sums}"
    assert actual in (VENDOR / "README.md").read_text(), "the README does not give axe.min.js's digest"
    assert "Mozilla Public License" in (VENDOR / "LICENSE").read_text()
    return script


@pytest.fixture
def site(live_server: str, runtime: Runtime) -> Site:
    """The pages' reaching functions need both: the address to visit, the outbox and database behind it."""
    return Site(live_server, runtime)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    """A browser context as a visitor has it (the page's Content-Security-Policy in force)."""
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    yield made
    made.close()


@pytest.fixture
def axe_context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    """A context that lets axe in: our CSP (script-src 'self') refuses an injected inline script, and
    bypassing it changes nothing axe looks at."""
    made = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    yield made
    made.close()


# Reaching each page as a visitor does.


def action(page: Page, site: Site, code: str) -> None:
    page.goto(f"{site.url}/{code}/{SLUG}")


def action_with_errors(page: Page, site: Site, code: str) -> None:
    action(page, site, code)
    page.click("#send")  # nothing filled in: the server answers with the error summary
    page.wait_for_selector("#error-summary")
    page.wait_for_load_state("load")


def check_inbox(page: Page, site: Site, code: str) -> None:
    action(page, site, code)
    page.fill("#name", NAMES[code])
    page.fill("#email", f"reader-{code}@example.org")
    page.wait_for_function("document.getElementById('altcha').value !== ''")
    page.click("#send")
    page.wait_for_selector("#letter-form", state="detached")
    page.wait_for_load_state("load")


def confirmation_path(runtime: Runtime) -> str:
    """The path of the link in the (only) confirmation email in the outbox."""
    (mail,) = sorted(runtime.settings.outbox_dir.glob("confirm-*.eml"))
    body = message_from_bytes(mail.read_bytes(), policy=policy.default).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    link = re.search(r"https://act\.example\.org(/confirm/\S+)", text)
    assert link, text
    return link.group(1)


def confirm(page: Page, site: Site, code: str) -> None:
    check_inbox(page, site, code)
    page.goto(site.url + confirmation_path(site.runtime))


def confirmed(page: Page, site: Site, code: str) -> None:
    confirm(page, site, code)
    page.click("main form button[type=submit]")
    page.wait_for_selector("main form", state="detached")


def unsubscribe_path(runtime: Runtime, code: str) -> str:
    """An unsubscribe link as a mailout carries it, for a supporter who reads ``code``."""
    import_supporters_text(
        runtime.db,
        f"email,name,locale,governorate,tags\nreader-{code}@example.org,Reader,{code},,\n",
        "x.csv",
    )
    with runtime.db.session() as session:
        supporter = session.scalar(select(Supporter.id).where(Supporter.locale == code))
    assert supporter is not None
    return "/u/" + runtime.signer.sign("unsubscribe", {"s": supporter})


def unsubscribe(page: Page, site: Site, code: str) -> None:
    page.goto(site.url + unsubscribe_path(site.runtime, code))


def unsubscribed(page: Page, site: Site, code: str) -> None:
    unsubscribe(page, site, code)
    page.check("input[name=erase]")  # the answer then also says what was erased
    page.click("main form button[type=submit]")
    page.wait_for_selector("main form", state="detached")


def index(page: Page, site: Site, code: str) -> None:
    page.set_extra_http_headers({"Accept-Language": code})
    page.goto(site.url + "/")  # redirected to the campaigns in the browser's language
    assert urlsplit(page.url).path == f"/{code}/"


def not_found(page: Page, site: Site, code: str) -> None:
    response = page.goto(f"{site.url}/{code}/no-such-campaign")
    assert response is not None
    assert response.status == 404


def privacy_notice(page: Page, site: Site, code: str) -> None:
    page.goto(f"{site.url}/{code}/privacy")
    page.wait_for_selector("main h2")


PAGES: dict[str, Callable[[Page, Site, str], None]] = {
    "action": action,
    "action-with-errors": action_with_errors,
    "check-inbox": check_inbox,
    "confirm": confirm,
    "confirmed": confirmed,
    "unsubscribe": unsubscribe,
    "unsubscribed": unsubscribed,
    "index": index,
    "not-found": not_found,
    "privacy": privacy_notice,
}


def serious_violations(page: Page, axe: Path) -> list[dict[str, Any]]:
    """axe's violations with a "serious" or "critical" impact, in the page as it is now."""
    page.add_script_tag(path=str(axe))
    results: dict[str, Any] = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert results["passes"], "axe checked nothing"  # it did run its rules on this page
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per rule: what it asks, how bad, and each element's selector and markup."""
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} [{violation['impact']}] {violation['help']} ({violation['helpUrl']})"
        )
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    {target} [{node.get('impact')}]: {node['html'][:200]}")
            lines.append("        " + node["failureSummary"].replace("\n", "\n        "))
    return "\n".join(lines)


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("name", PAGES)
def test_no_serious_accessibility_violation(
    axe_context: BrowserContext, site: Site, axe_script: Path, name: str, code: str
) -> None:
    """What a screen reader, a keyboard or low vision most needs is there (axe's serious and critical rules),
    on every public page a supporter can reach, in each language and direction."""
    page = axe_context.new_page()
    PAGES[name](page, site, code)
    assert page.evaluate("document.documentElement.lang") == code  # the language meant, not a fallback
    violations = serious_violations(page, axe_script)
    if violations:
        pytest.fail(f"{name} in {code}:\n{describe(violations)}", pytrace=False)


FOCUSED = """() => {
  const e = document.activeElement, s = getComputedStyle(e);
  return {id: e.id, tag: e.tagName, visible: e.matches(':focus-visible'),
          outline: s.outlineStyle, width: parseFloat(s.outlineWidth)};
}"""


@pytest.mark.parametrize("code", CODES)
def test_the_keyboard_reaches_the_form_in_order_with_a_visible_focus(
    context: BrowserContext, site: Site, code: str
) -> None:
    """Someone without a mouse reaches the fields in reading order and always sees where they are."""
    page = context.new_page()
    action(page, site, code)
    wanted = ["name", "email", "governorate", "send"]
    stops: list[dict[str, Any]] = []
    for _ in range(80):  # the language links, the text's links, every field: far fewer than this
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
        if stops[-1]["id"] == "send":
            break
    order = [s["id"] for s in stops if s["id"] in wanted]
    assert order == wanted, "the Tab stops: " + " ".join(s["id"] or s["tag"].lower() for s in stops)
    for stop in stops:
        if stop["id"] in wanted:
            assert stop["visible"], stop
            assert stop["outline"] != "none", stop
            assert stop["width"] > 0, stop


WIDE_CONTROLS = """(width) => Array.from(document.querySelectorAll('input, select, textarea, button, a'))
  .filter((e) => e.getClientRects().length && !e.closest('[aria-hidden=true]'))
  .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > width; })
  .map((e) => e.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("code", CODES)
def test_the_action_page_reflows_at_320_css_pixels(context: BrowserContext, site: Site, code: str) -> None:
    """WCAG 1.4.10 (Reflow): content usable at 320 CSS px wide, with no horizontal scrolling. Zooming a
    1280 px window to 400% (or 640 px to 200%) is exactly a 320 CSS px layout viewport, so the page is laid
    out at a 320x640 viewport; device_scale_factor only changes pixel density, and CSS `zoom` on the body
    is non-standard and leaves media queries and the viewport as they were. 640 px (200% of 1280) is
    checked too. The form is checked as it is first shown and with its error summary."""
    page = context.new_page()
    for width in (640, 320):
        page.set_viewport_size({"width": width, "height": 640})
        for state, reach in (("first shown", action), ("with errors", action_with_errors)):
            reach(page, site, code)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{state} at {width} px: {scroll_width} px wide"
            assert page.evaluate(WIDE_CONTROLS, width) == [], f"{state} at {width} px"


@pytest.mark.parametrize("code", CODES)
def test_the_action_page_is_light_and_loads_nothing_from_a_third_party(
    context: BrowserContext, site: Site, code: str
) -> None:
    """Every request the page makes is to our own origin, and its document, stylesheets and scripts weigh
    under 100 KB. The page's CSP stays in force: chromium still reports a request the CSP refuses (it
    fails with "csp"), so a reference to a third party is seen here, and the weight is the visitor's."""
    page = context.new_page()
    requested: list[str] = []
    responses: list[Response] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda response: responses.append(response))
    page.goto(f"{site.url}/{code}/{SLUG}", wait_until="networkidle")
    page.wait_for_function("document.getElementById('altcha').value !== ''")  # its fetch is done
    kinds = ("document", "stylesheet", "script")
    weights = {r.url: len(r.body()) for r in responses if r.request.resource_type in kinds}

    ours = urlsplit(site.url)
    foreign = [url for url in requested if urlsplit(url)[:2] != ours[:2]]
    assert foreign == [], f"requests to another origin: {foreign}"
    total = sum(weights.values())
    files = ", ".join(f"{urlsplit(url).path} {size}" for url, size in weights.items())
    print(f"\n{code}: {total} bytes in {len(weights)} files of {len(requested)} requests ({files})")
    assert total < MAX_BYTES, f"{code}: {total} bytes: {files}"
