"""The dashboard through Flask's test client: who may reach what, signing in with a second factor,
sessions, roles, CSRF and cross-site requests, and the pages' use-cases with their audit lines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mailer import accounts, privacy, supporters
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.vault import Vault
from mailer.web import create_app
from mailer.web.admin import ANYONE, COOKIE
from tests.conftest import DATA_KEY
from tests.web.conftest import MORNING, PASSWORD, Clock, add, csrf_of, enrol, form_page, give_code, log_in

RANK = {"viewer": 0, "coordinator": 1, "admin": 2}
SUPPORTERS_CSV = (
    "email,name,locale,governorate,tags\n"
    "sara@example.net,Sara,ar,Basra,lawyers\n"
    "jwan@example.net,Jwan,ckb,Sulaymaniyah,lawyers;students\n"
    "not-an-address,Bad,ar,Basra,\n"
    "tom@example.net,Tom,en,Baghdad,\n"
    "x@example.net,Nobody,xx,Basra,\n"
)


# Who may reach what: every route, enumerated from the app itself


def admin_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, concrete path, access level) of every dashboard route; a route without a level fails."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin/"):
            continue
        level = getattr(app.view_functions[rule.endpoint], "admin_access", None)
        assert level is not None, f"{rule.rule} does not say who may reach it"
        values = {
            name: (1 if type(converter).__name__ == "IntegerConverter" else "pause")
            for name, converter in rule._converters.items()
        }
        path = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, path, level))
    return found


def test_every_dashboard_route_declares_who_may_reach_it(app: Flask) -> None:
    routes = admin_routes(app)
    assert len(routes) > 20
    assert {level for _, _, level in routes} >= {ANYONE, "viewer", "coordinator", "admin"}


def test_nobody_unauthenticated_reaches_a_protected_route(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    csrf = form_page(client, "/admin/login")
    for method, path, level in admin_routes(app):
        if level == ANYONE:
            continue
        if method == "GET":
            answer = client.get(path)
            assert answer.status_code == 302, path
            assert answer.headers["Location"].startswith("/admin/login"), path
        else:
            answer = client.open(path, method=method, data={"csrf_token": csrf})
            assert answer.status_code == 403, (method, path)


def test_a_role_reaches_nothing_above_it(
    app: Flask, signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    for role in ("viewer", "coordinator"):
        client = signed_in(role)
        csrf = form_page(client)
        for method, path, level in admin_routes(app):
            # The order written out here, not taken from the code under test.
            if level not in RANK or RANK[level] <= RANK[role]:
                continue
            answer = client.open(path, method=method, data={"csrf_token": csrf})
            assert answer.status_code == 403, (role, method, path)


def test_every_unsafe_request_needs_our_csrf_token_and_our_origin(
    app: Flask, signed_in: Callable[[str], FlaskClient]
) -> None:
    client = signed_in("admin")
    csrf = form_page(client)
    for method, path, _level in admin_routes(app):
        if method == "GET":
            continue
        assert client.open(path, method=method, data={}).status_code == 400, (method, path)
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "https://evil.example.com"},
            {"Origin": "null"},
        ):
            answer = client.open(path, method=method, data={"csrf_token": csrf}, headers=headers)
            assert answer.status_code == 403, (method, path, headers)
    # The browser's own page, same origin: accepted.
    same = client.post(
        "/admin/language",
        data={"csrf_token": csrf, "code": "ar"},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    )
    assert same.status_code == 302


def test_dashboard_answers_are_never_cached_and_keep_the_strict_policy(
    signed_in: Callable[[str], FlaskClient],
) -> None:
    client = signed_in("viewer")
    answer = client.get("/admin/")
    assert answer.headers["Cache-Control"] == "no-store"
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


# Signing in


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
    app: Flask, runtime: Runtime, clock: Clock
) -> None:
    add(runtime, "coord@example.org", "coordinator")
    client = app.test_client()
    wrong = log_in(client, "coord@example.org", "not the password at all")
    unknown = log_in(client, "nobody@example.org", PASSWORD)
    assert wrong.status_code == unknown.status_code == 400
    strip = re.compile(r'name="csrf_token" value="[^"]+"')
    assert strip.sub("", wrong.get_data(as_text=True)) == strip.sub("", unknown.get_data(as_text=True))
    assert COOKIE not in (wrong.headers.get("Set-Cookie") or "")


def test_guessing_passwords_is_slowed_down_per_network(app: Flask, runtime: Runtime, clock: Clock) -> None:
    add(runtime, "coord@example.org", "coordinator")
    client = app.test_client()
    answers = [log_in(client, "coord@example.org", f"guess number {n:04d}").status_code for n in range(10)]
    assert answers == [400] * 10
    blocked = log_in(client, "coord@example.org")  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    clock.advance(minutes=16)
    assert log_in(client, "coord@example.org").status_code == 302


def test_an_admin_sets_up_a_second_factor_before_anything_else(
    app: Flask, runtime: Runtime, clock: Clock
) -> None:
    add(runtime, "admin@example.org", "admin")
    client = app.test_client()
    assert log_in(client, "admin@example.org").headers["Location"] == "/admin/account/two-factor"
    for path in ("/admin/", "/admin/supporters", "/admin/accounts"):
        assert client.get(path).headers["Location"] == "/admin/account/two-factor"
    page = client.get("/admin/account/two-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page  # the QR code, drawn here: no third party sees the secret
    key = enrol(client, clock)
    assert client.get("/admin/accounts").status_code == 200
    # Next time the code is owed, and a code is good once.
    other = app.test_client()
    assert log_in(other, "admin@example.org").headers["Location"].startswith("/admin/login/code")
    assert other.get("/admin/").headers["Location"] == "/admin/login/code"
    replayed = give_code(other, key, clock)
    assert replayed.status_code == 400, "the code used for the enrolment was accepted again"
    clock.advance(seconds=30)
    assert give_code(other, key, clock).status_code == 302
    assert other.get("/admin/accounts").status_code == 200


def test_the_session_token_changes_once_the_code_is_given(app: Flask, runtime: Runtime, clock: Clock) -> None:
    """Whoever saw the token issued after the password alone holds nothing once the code is given."""
    add(runtime, "admin@example.org", "admin")
    first = app.test_client()
    log_in(first, "admin@example.org")
    key = enrol(first, clock)
    clock.advance(seconds=30)
    browser = app.test_client()
    log_in(browser, "admin@example.org")
    early = browser.get_cookie(COOKIE, path="/admin/")
    assert early is not None
    give_code(browser, key, clock)
    late = browser.get_cookie(COOKIE, path="/admin/")
    assert late is not None
    assert late.value != early.value
    thief = app.test_client()
    thief.set_cookie(COOKIE, early.value, path="/admin/")
    assert thief.get("/admin/").status_code == 302


def test_five_wrong_codes_end_the_sign_in(app: Flask, runtime: Runtime, clock: Clock) -> None:
    add(runtime, "admin@example.org", "admin")
    first = app.test_client()
    log_in(first, "admin@example.org")
    enrol(first, clock)
    client = app.test_client()
    log_in(client, "admin@example.org")
    csrf = csrf_of(client.get("/admin/login/code").get_data(as_text=True))
    answers = [
        client.post("/admin/login/code", data={"csrf_token": csrf, "code": f"{n:06d}"}).status_code
        for n in range(6)
    ]
    assert answers[:5] == [400] * 5
    assert answers[5] == 429
    assert client.get("/admin/").headers["Location"].startswith("/admin/login")


def test_sessions_expire_when_idle_and_after_a_day_s_work(
    signed_in: Callable[[str], FlaskClient], clock: Clock
) -> None:
    client = signed_in("coordinator")
    for _ in range(24):  # active all day (11 h 36 min), never idle for long
        clock.advance(minutes=29)
        assert client.get("/admin/").status_code == 200
    clock.advance(minutes=29)
    assert client.get("/admin/").status_code == 302, "a session outlived its 12 hours"
    client = signed_in("viewer")
    clock.advance(minutes=31)
    assert client.get("/admin/").status_code == 302, "an idle session stayed open"


def test_sign_out_everywhere_ends_every_browser(
    app: Flask, signed_in: Callable[[str], FlaskClient], clock: Clock
) -> None:
    laptop = signed_in("coordinator")
    phone = app.test_client()
    log_in(phone, "coordinator@example.org")
    assert phone.get("/admin/").status_code == 200
    laptop.post("/admin/logout/everywhere", data={"csrf_token": form_page(laptop)})
    assert phone.get("/admin/").status_code == 302
    assert laptop.get("/admin/").status_code == 302


def test_next_never_leaves_the_dashboard(app: Flask, runtime: Runtime, clock: Clock) -> None:
    add(runtime, "coord@example.org", "coordinator")
    for target in ("//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com", "/admin/\\x"):
        client = app.test_client()
        page = client.get("/admin/login").get_data(as_text=True)
        answer = client.post(
            "/admin/login",
            data={
                "csrf_token": csrf_of(page),
                "email": "coord@example.org",
                "password": PASSWORD,
                "next": target,
            },
        )
        assert answer.headers["Location"] == "/admin/", target


def test_the_language_is_remembered_for_the_person(
    app: Flask, signed_in: Callable[[str], FlaskClient], clock: Clock
) -> None:
    client = signed_in("viewer")
    client.post("/admin/language", data={"csrf_token": form_page(client), "code": "ckb", "next": "/admin/"})
    page = client.get("/admin/").get_data(as_text=True)
    assert '<html lang="ckb" dir="rtl"' in page
    other = app.test_client()  # another browser, same person
    log_in(other, "viewer@example.org")
    assert '<html lang="ckb" dir="rtl"' in other.get("/admin/").get_data(as_text=True)


def test_every_page_an_admin_opens_has_a_plain_title_and_one_heading_in_every_language(
    app: Flask, signed_in: Callable[[str], FlaskClient]
) -> None:
    """A tab's title is text, never markup a template put in the wrong block."""
    client = signed_in("admin")
    pages = [path for method, path, level in admin_routes(app) if method == "GET" and level != ANYONE]
    for code in ("en", "ar", "ckb", "kmr"):
        client.post("/admin/language", data={"csrf_token": form_page(client), "code": code})
        for path in pages:
            answer = client.get(path)
            if answer.status_code != 200 or answer.mimetype != "text/html":
                continue
            html = answer.get_data(as_text=True)
            title = re.search(r"<title>(.*?)</title>", html, re.S)
            assert title, (code, path)
            assert "<" not in title.group(1), (code, path)
            assert title.group(1).strip(), (code, path)
            assert html.count("<h1") == 1, (code, path)


# Roles and personal data


def test_a_viewer_sees_counts_but_never_an_address(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    supporters.import_supporters_text(runtime.db, SUPPORTERS_CSV, "list.csv")
    client = signed_in("viewer")
    for path in ("/admin/", "/admin/supporters", "/admin/mailouts"):
        page = client.get(path).get_data(as_text=True)
        assert "example.net" not in page, path
    assert "lawyers" in client.get("/admin/supporters").get_data(as_text=True)
    csrf = form_page(client)
    assert (
        client.post(
            "/admin/supporters/find", data={"csrf_token": csrf, "email": "sara@example.net"}
        ).status_code
        == 403
    )


def test_an_import_reports_bad_rows_and_keeps_the_good_ones(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    client = signed_in("coordinator")
    answer = client.post(
        "/admin/supporters/import",
        data={
            "csrf_token": form_page(client),
            "file": (io.BytesIO(SUPPORTERS_CSV.encode()), "../../etc/list.csv"),
        },
        content_type="multipart/form-data",
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    rows = re.findall(r'<td class="num">(\d+)</td><td dir="ltr">(\w+)</td>', page)
    assert rows == [("4", "email"), ("6", "locale")]
    assert "Import of list.csv" in page
    assert supporters.supporter_counts(runtime.db).total == 3
    # A file in another encoding is refused whole, with the reason.
    refused = client.post(
        "/admin/supporters/import",
        data={
            "csrf_token": form_page(client),
            "file": (io.BytesIO("email\n\xe9".encode("latin-1")), "x.csv"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400
    assert "not UTF-8" in refused.get_data(as_text=True)


def test_a_coordinator_finds_exports_and_erases_one_person_and_the_log_names_nobody(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    supporters.import_supporters_text(runtime.db, SUPPORTERS_CSV, "list.csv")
    client = signed_in("coordinator")
    csrf = form_page(client)
    found = client.post("/admin/supporters/find", data={"csrf_token": csrf, "email": "SARA@example.net"})
    assert "Sara" in found.get_data(as_text=True)
    export = client.post("/admin/supporters/export", data={"csrf_token": csrf, "email": "sara@example.net"})
    assert json.loads(export.get_data())["supporter"]["name"] == "Sara"
    assert "attachment" in export.headers["Content-Disposition"]
    unconfirmed = client.post(
        "/admin/supporters/erase", data={"csrf_token": csrf, "email": "sara@example.net"}
    )
    assert unconfirmed.status_code == 400
    assert privacy.find_supporter(runtime.db, "sara@example.net") is not None
    erased = client.post(
        "/admin/supporters/erase", data={"csrf_token": csrf, "email": "sara@example.net", "confirm": "yes"}
    )
    assert erased.status_code == 200
    assert privacy.find_supporter(runtime.db, "sara@example.net") is None
    log = accounts.audit_log(runtime.db)
    assert [row.action for row in log[:4]] == [
        "supporter.erase",
        "supporter.export",
        "supporter.find",
        "session.sign_in",
    ]
    assert "sara" not in json.dumps([row.__dict__ for row in log], default=str).lower()


def test_the_list_export_is_safe_to_open_in_a_spreadsheet(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    supporters.import_supporters_text(
        runtime.db,
        # An address may start with "=": a spreadsheet would run it.
        "email,name,locale,governorate,tags\n=1+2@example.net,Fatima,ar,Basra,lawyers\ng@example.net,Gul,kmr,Duhok,\n",
        "list.csv",
    )
    client = signed_in("coordinator")
    answer = client.post(
        "/admin/supporters/list.csv", data={"csrf_token": form_page(client), "tag": "lawyers"}
    )
    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0] == "email,name,locale,governorate,tags,subscribed,created_at"
    assert len(lines) == 2, "the tag segment was not applied"
    assert lines[1].startswith("'=1+2@example.net,Fatima,ar,Basra,lawyers,True,")


# Mailouts


def test_a_coordinator_launches_a_tag_segment_after_a_statement_of_what_will_happen(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    supporters.import_supporters_text(runtime.db, SUPPORTERS_CSV, "list.csv")
    client = signed_in("coordinator")
    csrf = form_page(client, "/admin/mailouts/new")
    plan = client.post(
        "/admin/mailouts/plan",
        data={"csrf_token": csrf, "campaign": "protect-hrds-iraq", "tag": "lawyers", "fallback_ckb": "ar"},
    )
    page = plan.get_data(as_text=True)
    assert plan.status_code == 200, page[:2000]
    statement = re.search(r'id="statement">(.*?)</p>', page, re.S)
    assert statement is not None
    words = re.sub(r"<[^>]+>|\s+", " ", statement.group(1)).split()
    assert words[:3] == ["Send", "2", "alerts."]
    warning = re.search(r'id="draft-warning">(.*?)</div>', page, re.S)
    assert warning is not None, "the seed's Arabic is a draft: the coordinator is told before launching"
    assert "العربية" in warning.group(1)
    assert accounts.audit_log(runtime.db)[0].action == "session.sign_in", "the dry run wrote something"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    launched = client.post("/admin/mailouts/launch", data=hidden)
    assert launched.status_code == 302
    detail = client.get(launched.headers["Location"])
    status = client.get(launched.headers["Location"] + "/status.json").get_json()
    assert detail.status_code == 200
    assert status["total"] == 2
    audit = accounts.audit_log(runtime.db)[0]
    assert audit.action == "mailout.launch"
    assert audit.detail["segment"] == {"tag": ["lawyers"]}


def test_a_launch_with_a_missing_translation_is_refused_with_the_reason(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    supporters.import_supporters_text(runtime.db, SUPPORTERS_CSV, "list.csv")
    client = signed_in("coordinator")
    answer = client.post(
        "/admin/mailouts/plan",
        data={"csrf_token": form_page(client), "campaign": "protect-hrds-iraq", "at": "2020-01-01T09:00"},
    )
    assert answer.status_code == 400
    assert "in the past" in answer.get_data(as_text=True)


# Accounts, and the log nobody rewrites


def test_an_admin_adds_a_coordinator_who_signs_in_with_the_first_password(
    app: Flask, signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    admin = signed_in("admin")
    page = admin.post(
        "/admin/accounts",
        data={
            "csrf_token": form_page(admin, "/admin/accounts"),
            "email": "new@example.org",
            "role": "coordinator",
        },
    ).get_data(as_text=True)
    found = re.search(r'id="first-password">([^<]+)<', page)
    assert found
    newcomer = app.test_client()
    assert log_in(newcomer, "new@example.org", found.group(1)).status_code == 302
    assert newcomer.get("/admin/mailouts/new").status_code == 200
    assert newcomer.get("/admin/accounts").status_code == 403
    row = next(a for a in accounts.list_accounts(runtime.db) if a.email == "new@example.org")
    admin.post(f"/admin/accounts/{row.id}/remove", data={"csrf_token": form_page(admin, "/admin/accounts")})
    assert newcomer.get("/admin/").status_code == 302, "a removed account's session lived on"
    assert log_in(newcomer, "new@example.org", found.group(1)).status_code == 400
    actions = [r.action for r in accounts.audit_log(runtime.db)]
    assert actions[:2] == ["account.remove", "session.sign_in"]
    assert "account.add" in actions


def test_the_last_admin_cannot_be_removed_or_demoted(runtime: Runtime) -> None:
    add(runtime, "only@example.org", "admin")
    with pytest.raises(accounts.AccountError):
        accounts.remove_account(runtime.db, "only@example.org", MORNING)
    with pytest.raises(accounts.AccountError):
        accounts.change_role(runtime.db, "only@example.org", "viewer")


def test_the_audit_log_is_append_only_in_the_database(runtime: Runtime) -> None:
    accounts.record(runtime.db, None, "test.entry", "mailout 1")
    for statement in ("UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry"):
        with runtime.db.session() as session, pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
    assert [r.action for r in accounts.audit_log(runtime.db)] == ["test.entry"]


def test_rekeying_moves_accounts_and_the_log_to_the_new_key(runtime: Runtime) -> None:
    """The one column of the log the database lets change: an origin re-encrypted under a new key."""
    add(runtime, "coord@example.org", "coordinator")
    accounts.record(runtime.db, None, "test.entry", "", origin="192.0.2.7")
    new_key = runtime.vault.rotated_key()
    both = Database(runtime.db.url, Vault.parse(f"{new_key},{DATA_KEY}"))
    both.check_current()
    result = privacy.rekey(both)
    assert result.values == 2  # the account's address and the entry's origin
    assert result.retired_keys == [runtime.vault.current.kid]
    both.dispose()
    only = Database(runtime.db.url, Vault.parse(new_key))
    assert accounts.audit_log(only)[0].origin == "192.0.2.7"
    assert accounts.authenticate(only, "coord@example.org", PASSWORD) is not None
    only.dispose()


def test_a_write_only_process_has_no_dashboard(runtime: Runtime, app: Flask) -> None:
    """The public pages run with the key's write-only form: there the dashboard does not exist at all."""
    add(runtime, "coord@example.org", "coordinator")
    write_only = Runtime(dataclasses.replace(runtime.settings, data_key=runtime.vault.public_form()))
    client = create_app(write_only).test_client()
    assert client.get("/admin/login").status_code == 404
    assert client.post("/admin/login", data={}).status_code in (400, 404)
    assert client.get("/en/protect-hrds-iraq").status_code == 200
    write_only.close()


def test_an_admin_purges_what_retention_no_longer_allows(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime, clock: Clock
) -> None:
    """The sweep's hourly purge, on demand, with what is due shown first; keys are only named, never shown."""
    from mailer import letters

    client = signed_in("admin")
    page = client.get("/admin/accounts").get_data(as_text=True)
    assert runtime.vault.current.kid in page
    assert (runtime.settings.data_key or "x") not in page
    form = letters.check_form(
        {
            "name": "Old Writer",
            "email": "old@example.net",
            "governorate": "Basra",
            "share": "name",
            "subject": "Drop the lawsuits",
            "body": "Dear officials, please drop the lawsuits against the Basra defenders.",
        },
        "protect-hrds-iraq",
        "en",
    )
    letters.start_letter(runtime.db, runtime.backend, form, clock=lambda: MORNING - dt.timedelta(days=5))
    due = client.get("/admin/accounts").get_data(as_text=True)
    assert re.search(r"past their link.s expiry</dt><dd>1</dd>", due), due
    client.post("/admin/retention/purge", data={"csrf_token": form_page(client, "/admin/accounts")})
    assert accounts.audit_log(runtime.db)[0].action == "privacy.purge"
    assert accounts.audit_log(runtime.db)[0].detail["unconfirmed_letters"] == 1
    after = client.get("/admin/accounts").get_data(as_text=True)
    assert re.search(r"past their link.s expiry</dt><dd>0</dd>", after)


def test_answers_show_each_official_s_rate_to_viewers_and_the_reply_itself_to_coordinators(
    signed_in: Callable[[str], FlaskClient], runtime: Runtime
) -> None:
    from sqlalchemy import select

    from mailer import inbound, letters
    from mailer.store.models import Message
    from mailer.tokens import AddressTags
    from tests.factories import prefilled_letter
    from tests.inbound_helpers import sample

    started = letters.start_letter(
        runtime.db, runtime.backend, prefilled_letter(runtime, "ckb", share="name")
    )
    letters.confirm_letter_id(runtime.db, runtime.backend, started.letter_id)
    with runtime.db.session() as session:
        first = session.scalars(select(Message).where(Message.kind == "letter").order_by(Message.id)).first()
        assert first is not None
        letter_row, official = first.id, first.target_id
    tags = AddressTags(runtime.settings.require_secret_keys(), "reply@in.example.org")
    raw = sample(
        "outlook-reply-ar.eml", to=tags.address("r", letter_row), message_id="<letter.1.x@example.org>"
    )
    inbound.receive(runtime.db, raw, "pipe", MORNING, max_bytes=1_000_000)
    inbound.process_inbound(runtime.db, inbound.InboundContext(tags, runtime.signer), MORNING)
    (reply,) = inbound.campaign_replies(runtime.db, "protect-hrds-iraq")
    assert official is not None

    viewer = signed_in("viewer")
    page = viewer.get("/admin/replies").get_data(as_text=True)
    assert "100%" in page  # one letter to that official, answered
    assert f"/admin/replies/{reply.id}" not in page
    assert viewer.get(f"/admin/replies/{reply.id}").status_code == 403
    coordinator = signed_in("coordinator")
    assert f"/admin/replies/{reply.id}" in coordinator.get("/admin/replies").get_data(as_text=True)
    read = coordinator.get(f"/admin/replies/{reply.id}").get_data(as_text=True)
    assert "تسلمنا رسالتكم" in read
    assert accounts.audit_log(runtime.db)[0].action == "reply.read"
