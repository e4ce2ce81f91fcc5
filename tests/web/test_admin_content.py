"""The dashboard's campaign texts, officials, suppressions and charts through Flask's test client."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from mailer import accounts, campaigns, events, mailouts, supporters, targets
from mailer.runtime import Runtime
from mailer.web.admin.content import PREVIEW_POLICY
from tests.web.conftest import form_page

SLUG = "protect-hrds-iraq"
STATIC = Path(__file__).resolve().parents[2] / "mailer" / "web" / "static"


def editor_text(client: FlaskClient, kind: str = "alert", locale: str = "en") -> tuple[str, str]:
    page = client.get(f"/admin/campaigns/{SLUG}/edit/{kind}/{locale}").get_data(as_text=True)
    found = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)
    assert found, page[:1000]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return html.unescape(found.group(1)), token.group(1)


def test_previews_are_framed_only_by_us_and_run_nothing(signed_in: Callable[[str], FlaskClient]) -> None:
    client = signed_in("viewer")
    page = client.get(f"/admin/campaigns/{SLUG}").get_data(as_text=True)
    frames = re.findall(r"<iframe [^>]*>", page)
    assert len(frames) == 12  # alert, letter and action page in each of the four languages
    assert all('sandbox=""' in frame for frame in frames)
    preview = client.get(f"/admin/campaigns/{SLUG}/preview/alert/ar")
    assert preview.status_code == 200
    assert preview.headers["Content-Security-Policy"] == PREVIEW_POLICY
    assert "sandbox" in PREVIEW_POLICY
    assert "script-src" not in PREVIEW_POLICY  # default-src 'none': no script at all
    assert 'dir="rtl"' in preview.get_data(as_text=True)
    assert client.get(f"/admin/campaigns/{SLUG}/preview/alert/xx").status_code == 404
    assert client.get("/admin/campaigns/no-such-campaign").status_code == 404


def test_an_edit_is_checked_like_a_load_and_saved_as_a_new_version(
    signed_in: Callable[[str], FlaskClient],
    runtime: Runtime,
) -> None:
    client = signed_in("coordinator")
    text, token = editor_text(client)
    assert text.startswith('---\nsubject: "Protect Human Rights Defenders in Iraq, NOW!"\n')
    broken = text.replace("{first_name}", "{frist_name}", 1)
    preview = client.post(
        f"/admin/campaigns/{SLUG}/preview/alert/en", data={"csrf_token": token, "text": broken}
    )
    assert preview.headers["Content-Security-Policy"] == PREVIEW_POLICY
    shown = preview.get_data(as_text=True)
    assert "line 6: " in shown, shown  # ---, subject, preheader, ---, a blank line, then "Dear {first_name}"
    assert "{frist_name}" in shown
    refused = client.post(
        f"/admin/campaigns/{SLUG}/edit/alert/en", data={"csrf_token": token, "text": broken}
    )
    assert refused.status_code == 400
    assert 'data-line="6"' in refused.get_data(as_text=True)
    assert campaigns.content_versions(runtime.db, SLUG)[("alert", "en")] == 1

    supporters.import_supporters_text(
        runtime.db, "email,name,locale,governorate\na@example.net,A,en,Basra\n", "a.csv"
    )
    launched = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {"locale": ["en"]}, {})
    edited = text.replace("Dear {first_name},", "Dear {first_name}, thank you for reading.", 1)
    saved = client.post(f"/admin/campaigns/{SLUG}/edit/alert/en", data={"csrf_token": token, "text": edited})
    assert saved.status_code == 302
    assert campaigns.content_versions(runtime.db, SLUG)[("alert", "en")] == 2
    assert "thank you for reading" in editor_text(client)[0]
    with runtime.db.session() as session:  # the mailout launched before keeps the text it launched with
        from mailer.store import repository as repo

        mailout = repo.get_mailout(session, launched.mailout_id)
        assert "thank you for reading" not in repo.mailout_alert(session, mailout, "en").body
    entry = accounts.audit_log(runtime.db)[0]
    assert (entry.action, entry.detail) == ("campaign.edit", {"kind": "alert", "locale": "en", "version": 2})
    # Saving the same text again makes no new version; reloading the folder does not bump unchanged texts.
    client.post(f"/admin/campaigns/{SLUG}/edit/alert/en", data={"csrf_token": token, "text": edited})
    assert campaigns.content_versions(runtime.db, SLUG)[("alert", "ar")] == 1
    assert campaigns.content_versions(runtime.db, SLUG)[("alert", "en")] == 2


def test_a_campaign_text_cannot_smuggle_markup_into_the_dashboard(
    signed_in: Callable[[str], FlaskClient],
    runtime: Runtime,
) -> None:
    """T3: whatever a text holds, the preview shows it as text, in a frame that runs nothing."""
    client = signed_in("coordinator")
    text, token = editor_text(client, "letter", "ckb")
    hostile = text + '\n<script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3))\n'
    preview = client.post(
        f"/admin/campaigns/{SLUG}/preview/letter/ckb", data={"csrf_token": token, "text": hostile}
    )
    body = preview.get_data(as_text=True)
    assert "<script>" not in body
    assert "<img" not in body
    assert 'href="javascript:' not in body
    assert preview.headers["Content-Security-Policy"] == PREVIEW_POLICY


def test_officials_are_corrected_and_imported_from_the_dashboard(
    signed_in: Callable[[str], FlaskClient],
    runtime: Runtime,
) -> None:
    client = signed_in("coordinator")
    token = form_page(client, "/admin/letters")
    targets.update_target(runtime.db, "supreme-judicial-council", status="bounced")
    page = client.get("/admin/letters").get_data(as_text=True)
    assert 'class="flagged"' in page
    bad = client.post(
        "/admin/officials/supreme-judicial-council", data={"csrf_token": token, "email": "not an address"}
    )
    assert bad.status_code == 400
    fixed = client.post(
        "/admin/officials/supreme-judicial-council",
        data={"csrf_token": token, "email": "sjc.new@example.org"},
    )
    assert fixed.status_code == 302
    row = next(t for t in targets.list_targets(runtime.db) if t["slug"] == "supreme-judicial-council")
    assert (row["email"], row["status"]) == ("sjc.new@example.org", "active")
    assert (
        client.post(
            "/admin/officials/nobody-here", data={"csrf_token": token, "status": "retired"}
        ).status_code
        == 400
    )
    upload = client.post(
        "/admin/officials/import",
        data={
            "csrf_token": token,
            "file": (
                __import__("io").BytesIO(b"- slug: x\n  email: nope\n"),
                "officials.yaml",
            ),
        },
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200
    assert re.findall(r'<td class="num">(\d+)</td><td dir="ltr">(\w+)</td>', upload.get_data(as_text=True))


def test_suppressions_are_searched_added_and_removed_with_consent(
    signed_in: Callable[[str], FlaskClient],
    runtime: Runtime,
) -> None:
    client = signed_in("coordinator")
    token = form_page(client, "/admin/suppressions")
    added = client.post(
        "/admin/suppressions/add",
        data={"csrf_token": token, "email": "Gone@Example.net", "scope": "supporter"},
    )
    assert added.status_code == 200
    assert (
        client.post(
            "/admin/suppressions/add", data={"csrf_token": token, "email": "<b>@x", "scope": "supporter"}
        ).status_code
        == 400
    )
    found = client.post("/admin/suppressions/search", data={"csrf_token": token, "q": "gone@"}).get_data(
        as_text=True
    )
    assert "gone@example.net" in found
    not_yet = client.post(
        "/admin/suppressions/remove",
        data={"csrf_token": token, "email": "gone@example.net", "scope": "supporter"},
    )
    assert not_yet.status_code == 400
    assert len(events.list_suppressions(runtime.db)) == 1
    client.post(
        "/admin/suppressions/remove",
        data={"csrf_token": token, "email": "gone@example.net", "scope": "supporter", "confirm": "yes"},
    )
    assert events.list_suppressions(runtime.db) == []
    assert [r.action for r in accounts.audit_log(runtime.db)[:2]] == ["suppression.remove", "suppression.add"]


def test_event_fields_reach_the_dashboard_as_text(
    signed_in: Callable[[str], FlaskClient],
    runtime: Runtime,
) -> None:
    """H9: what a provider (or an attacker behind it) puts in a field is shown, never run."""
    from mailer.store import repository as repo

    with runtime.db.session() as session:
        repo.add_suppression(
            session,
            runtime.vault.address_index("evil@example.net"),
            "supporter",
            "hard_bounce",
            '550 <script>alert("x")</script><img src=x onerror=alert(1)>',
            email="evil@example.net",
        )
    page = signed_in("coordinator").get("/admin/suppressions").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page
    assert "<img src=x" not in page


def test_the_vendored_chart_library_is_the_published_one() -> None:
    folder = STATIC / "vendor" / "uplot"
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert "MIT" in (folder / "LICENSE").read_text()
