"""The dashboard end to end in Debian's chromium (Playwright): a whole campaign run from the browser.

The first admin is made with the command line; the admin signs in and sets up the second factor by
reading the key off the page; creates a coordinator, who imports a list with bad rows, launches a tag
segment in Arabic (right-to-left) after the confirmation statement, and watches the progress move while
the test runs the queued batches one by one; erases a person; a viewer sees no address and cannot launch;
the admin reads it all in the audit log. Every page is also shot in the four languages at phone width
(test-artifacts/dashboard/, not committed), and no request ever leaves our own origin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from mailer import accounts, privacy
from mailer.runtime import Runtime
from tests.factories import RecordingBackend
from tests.test_cli_users import users
from tests.web.conftest import MORNING
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

SHOTS = ARTIFACTS / "dashboard"
ADMIN_PASSWORD = "the first admin's long phrase"
VIEWER_PASSWORD = "a viewer who only reads"
CSV_ROWS = ["email,name,locale,governorate,tags"]
CSV_ROWS += [f"lawyer{i:02d}@example.net,محامي {i},ar,Basra,lawyers" for i in range(12)]
CSV_ROWS += [
    "teacher@example.net,Teacher,en,Baghdad,teachers",
    "broken-address,Bad Row,ar,Basra,lawyers",
    "nowhere@example.net,Nowhere,ar,Atlantis,lawyers",
]


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def switch_language(page: Any, code: str) -> None:
    page.click(f"form.languages button[value={code}]")
    page.wait_for_load_state()


def test_a_campaign_run_from_the_dashboard(
    browser: Any,  # noqa: F811
    live_server: str,
    runtime: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    recorder = RecordingBackend()
    runtime.__dict__["backend"] = recorder  # the test plays the workers, one batch at a time
    runtime.settings = dataclasses.replace(runtime.settings, batch_size=5)
    made = users(
        ["add", "admin@example.org", "--role", "admin", "--password-stdin"], env, tmp_path, ADMIN_PASSWORD
    )
    assert made.returncode == 0, made.stderr
    made = users(
        ["add", "viewer@example.org", "--role", "viewer", "--password-stdin"], env, tmp_path, VIEWER_PASSWORD
    )
    assert made.returncode == 0, made.stderr

    requests: list[str] = []

    def new_page(width: int = 1100) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        return page

    # The admin: password, then the second factor set up from the key shown on the page.
    admin = new_page()
    admin.goto(f"{live_server}/admin/")
    assert "/admin/login" in admin.url
    sign_in(admin, live_server, "admin@example.org", ADMIN_PASSWORD)
    assert admin.url.endswith("/admin/account/two-factor")
    shoot(admin, "enrol-en")
    key = admin.inner_text("#secret").replace(" ", "")
    admin.fill("#code", accounts.current_code(key, MORNING.timestamp()))
    admin.click("main form button[type=submit]")
    admin.wait_for_load_state()
    assert "/admin/account" in admin.url

    # ... creates a coordinator, whose first password is shown once.
    admin.goto(f"{live_server}/admin/accounts")
    admin.fill("#new-email", "coordinator@example.org")
    admin.select_option("#new-role", "coordinator")
    admin.click("form[action$='/admin/accounts'] button[type=submit]")
    admin.wait_for_load_state()
    first_password = admin.inner_text("#first-password").strip()
    assert len(first_password) >= 12

    # The coordinator works in Arabic: right-to-left.
    coordinator = new_page()
    sign_in(coordinator, live_server, "coordinator@example.org", first_password)
    switch_language(coordinator, "ar")
    assert coordinator.evaluate("document.documentElement.dir") == "rtl"
    assert coordinator.evaluate("getComputedStyle(document.querySelector('main')).direction") == "rtl"

    csv_file = tmp_path / "lawyers.csv"
    csv_file.write_text("\n".join(CSV_ROWS) + "\n", encoding="utf-8")
    coordinator.goto(f"{live_server}/admin/supporters")
    coordinator.set_input_files("#file", str(csv_file))
    coordinator.click("form[action$='/supporters/import'] button[type=submit]")
    coordinator.wait_for_load_state()
    rejected = coordinator.locator("section.report tbody tr")
    assert rejected.count() == 2  # the two bad rows, by number; the others are in
    assert "١٥" in rejected.nth(0).inner_text()  # row 15, in the page's digits
    shoot(coordinator, "import-report-ar")

    coordinator.goto(f"{live_server}/admin/mailouts/new")
    coordinator.check("input[name=locale][value=ar]")
    coordinator.check("input[name=tag][value=lawyers]")
    coordinator.click("form[action$='/mailouts/plan'] button[type=submit]")
    coordinator.wait_for_load_state()
    statement = coordinator.inner_text("#statement")
    assert "١٢" in statement, statement  # twelve alerts, said before anything is written
    assert recorder.batches == []
    shoot(coordinator, "mailout-confirm-ar")
    coordinator.click("form[action$='/mailouts/launch'] button[type=submit]")
    coordinator.wait_for_load_state()
    assert re.search(r"/admin/mailouts/\d+$", coordinator.url)
    assert coordinator.inner_text("[data-field=done]") == "٠"

    # The progress moves without a reload while the "workers" send batch after batch.
    seen = []
    while recorder.batches:
        runtime.send_batch(recorder.batches.pop(0))
        coordinator.wait_for_function(
            "previous => document.querySelector('[data-field=done]').textContent !== previous",
            arg=coordinator.inner_text("[data-field=done]"),
        )
        seen.append(coordinator.inner_text("[data-field=done]"))
    assert seen[:2] == ["٥", "١٠"]
    coordinator.wait_for_function("document.querySelector('#progress').dataset.state === 'finished'")
    assert coordinator.inner_text("[data-field=done]") == "١٢"
    assert len(list(runtime.settings.outbox_dir.glob("alert-*.eml"))) == 12
    coordinator.wait_for_selector("#timeline-chart canvas")  # the report's chart, drawn by uPlot
    shoot(coordinator, "mailout-finished-ar")

    # One person erased, with a confirmation first.
    coordinator.goto(f"{live_server}/admin/supporters")
    coordinator.fill("#find-email", "lawyer03@example.net")
    coordinator.click("form[action$='/supporters/find'] button[type=submit]")
    coordinator.wait_for_load_state()
    coordinator.check("form.danger input[name=confirm]")
    coordinator.click("form.danger button[type=submit]")
    coordinator.wait_for_load_state()
    assert privacy.find_supporter(runtime.db, "lawyer03@example.net") is None

    # A viewer: counts, never an address, and no way to launch.
    viewer = new_page(390)
    sign_in(viewer, live_server, "viewer@example.org", VIEWER_PASSWORD)
    for path in ("/admin/", "/admin/supporters", "/admin/mailouts", "/admin/mailouts/1"):
        viewer.goto(live_server + path)
        assert "example.net" not in viewer.content(), path
    assert viewer.locator("a[href$='/admin/mailouts/new']").count() == 0
    answer = viewer.goto(f"{live_server}/admin/mailouts/new")
    assert answer is not None
    assert answer.status == 403

    # The admin reads it all in the audit log (a new code: the clock moved on).
    runtime.clock = lambda: MORNING + dt.timedelta(minutes=1)
    admin.goto(f"{live_server}/admin/audit")
    actions = admin.locator("tbody td:nth-child(3)").all_inner_texts()
    for action in ("account.add", "supporters.import", "mailout.launch", "supporter.find", "supporter.erase"):
        assert action in actions, actions
    assert "lawyer03" not in admin.content()
    shoot(admin, "audit-en")

    # Every page in the four languages at phone width, for people to look at.
    phone = new_page(390)
    sign_in(phone, live_server, "coordinator@example.org", first_password)
    for code in ("en", "ar", "ckb", "kmr"):
        switch_language(phone, code)
        for name, path in (
            ("overview", "/admin/"),
            ("supporters", "/admin/supporters"),
            ("mailouts", "/admin/mailouts"),
            ("mailout-new", "/admin/mailouts/new"),
            ("mailout", "/admin/mailouts/1"),
            ("letters", "/admin/letters"),
            ("suppressions", "/admin/suppressions"),
            ("campaign", "/admin/campaigns/protect-hrds-iraq"),
            ("edit", "/admin/campaigns/protect-hrds-iraq/edit/alert/" + code),
            ("account", "/admin/account"),
        ):
            phone.goto(live_server + path)
            assert phone.evaluate("document.documentElement.lang") == code
            overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} in {code} is wider than a phone"
            shoot(phone, f"{name}-{code}-phone")
    login = new_page(390)
    for code in ("en", "ar", "ckb", "kmr"):
        login.goto(f"{live_server}/admin/login")
        switch_language(login, code)
        shoot(login, f"login-{code}-phone")

    assert requests
    assert [url for url in requests if not url.startswith(live_server)] == []
