"""Signing in and out: the password, the second factor, setting one up, and the person's own account."""

from __future__ import annotations

from typing import Any

import segno
from flask import g, make_response, redirect, request, url_for
from limits import parse

from mailer import accounts
from mailer.errors import MailerError
from mailer.locales import LOCALE_CODES
from mailer.web.admin import (
    ANYONE,
    COOKIE,
    ENROLMENT,
    LANGUAGE_COOKIE,
    SECOND_FACTOR,
    access,
    audit,
    bp,
    now,
    page,
    problem_text,
    safe_next,
    set_session_cookie,
)
from mailer.web.base import web
from mailer.web.limits import client_bucket

LIMITS = {
    # Argon2 makes each guess slow; these make guessing at scale impossible from one network or at one
    # account (a locked-out person waits a quarter of an hour, never longer).
    "admin_login_ip": parse("10/15minutes"),
    "admin_login_account": parse("20/hour"),
    "admin_code": parse("5/5minutes"),  # six digits: five tries per sign-in
}


def _too_many(retry_after: int) -> tuple[str, int, dict[str, str]]:
    body, status = page("admin/message.html", 429, message_key="slow_down")
    return body, status, {"Retry-After": str(retry_after)}


@bp.get("/login")
@access(ANYONE)
def login() -> Any:
    if g.person is not None and g.person.complete:
        return redirect(safe_next(request.args.get("next")))
    return page("admin/login.html", next=request.args.get("next", ""), failed=False)


@bp.post("/login")
@access(ANYONE)
def login_submit() -> Any:
    throttle = web().throttle
    address = request.form.get("email", "")[:320]
    next_path = request.form.get("next", "")
    for name, key in (
        ("admin_login_ip", client_bucket(web().client_ip())),
        ("admin_login_account", address.strip().lower()),
    ):
        allowed, retry_after = throttle.hit(name, key, LIMITS[name])
        if not allowed:
            return _too_many(retry_after)
    account = accounts.authenticate(web().runtime.db, address, request.form.get("password", ""))
    if account is None:
        # One answer for an unknown address and a wrong password: nobody learns who has an account.
        return page("admin/login.html", 400, next=next_path, failed=True)
    token = accounts.open_session(web().runtime.db, account, now())
    g.person = accounts.signed_in(web().runtime.db, token, now())
    if account.two_factor:
        target = url_for("admin.second_factor", next=next_path)
    else:
        audit("session.sign_in", f"account {account.id}")
        target = url_for("admin.enrol") if account.role == "admin" else safe_next(next_path)
    return set_session_cookie(make_response(redirect(target)), token)


@bp.get("/login/code")
@access(SECOND_FACTOR)
def second_factor() -> Any:
    return page("admin/code.html", next=request.args.get("next", ""), failed=False)


@bp.post("/login/code")
@access(SECOND_FACTOR)
def second_factor_submit() -> Any:
    person = g.person
    allowed, retry_after = web().throttle.hit("admin_code", str(person.session_id), LIMITS["admin_code"])
    if not allowed:
        accounts.close_session(web().runtime.db, request.cookies.get(COOKIE, ""))
        return _too_many(retry_after)
    next_path = request.form.get("next", "")
    if not accounts.check_code(web().runtime.db, person.account.id, request.form.get("code", ""), now()):
        return page("admin/code.html", 400, next=next_path, failed=True)
    try:
        token = accounts.complete_session(web().runtime.db, request.cookies.get(COOKIE, ""), now())
    except MailerError:
        return redirect(url_for("admin.login"))
    audit("session.sign_in", f"account {person.account.id}", second_factor=True)
    return set_session_cookie(make_response(redirect(safe_next(next_path))), token)


def _enrolment_page(status: int = 200, failed: bool = False) -> tuple[str, int]:
    db = web().runtime.db
    enrolment = accounts.pending_enrolment(db, g.person.account.id) or accounts.start_enrolment(
        db, g.person.account.id
    )
    qr = segno.make(enrolment.uri, error="m")
    return page(
        "admin/enrol.html",
        status,
        qr=qr.svg_data_uri(scale=5, border=2),
        secret=" ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4)),
        failed=failed,
    )


@bp.get("/account/two-factor")
@access(ENROLMENT)
def enrol() -> Any:
    if g.person.account.two_factor:
        return redirect(url_for("admin.account"))
    return _enrolment_page()


@bp.post("/account/two-factor")
@access(ENROLMENT)
def enrol_submit() -> Any:
    person = g.person
    allowed, retry_after = web().throttle.hit("admin_code", str(person.session_id), LIMITS["admin_code"])
    if not allowed:
        return _too_many(retry_after)
    if not accounts.confirm_enrolment(
        web().runtime.db, person.account.id, request.form.get("code", ""), now()
    ):
        return _enrolment_page(400, failed=True)
    audit("account.two_factor", f"account {person.account.id}")
    token = accounts.restart_sessions(web().runtime.db, person.account.id, now())
    return set_session_cookie(make_response(redirect(url_for("admin.account", done="two_factor"))), token)


@bp.post("/logout")
@access(ENROLMENT)
def logout() -> Any:
    accounts.close_session(web().runtime.db, request.cookies.get(COOKIE, ""))
    audit("session.sign_out", f"account {g.person.account.id}")
    response = make_response(redirect(url_for("admin.login")))
    response.delete_cookie(COOKIE, path="/admin/")
    return response


@bp.post("/logout/everywhere")
@access(ENROLMENT)
def logout_everywhere() -> Any:
    count = accounts.close_all_sessions(web().runtime.db, g.person.account.id)
    audit("session.sign_out_everywhere", f"account {g.person.account.id}", sessions=count)
    response = make_response(redirect(url_for("admin.login")))
    response.delete_cookie(COOKIE, path="/admin/")
    return response


@bp.post("/language")
@access(ANYONE)
def language() -> Any:
    code = request.form.get("code", "")
    response = make_response(redirect(safe_next(request.form.get("next"))))
    if code in LOCALE_CODES:
        if g.person is not None:
            accounts.set_locale(web().runtime.db, g.person.account.id, code)
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            path="/admin/",
            max_age=365 * 86400,
            httponly=True,
            samesite="Strict",
            secure=web().runtime.settings.base_url.startswith("https://"),
        )
    return response


@bp.get("/account")
@access("viewer")
def account() -> Any:
    return page("admin/account.html", done=request.args.get("done", ""), problem=None)


@bp.post("/account/password")
@access("viewer")
def change_password() -> Any:
    person = g.person
    new = request.form.get("new", "")
    if new != request.form.get("again", ""):
        return page("admin/account.html", 400, done="", problem="mismatch")
    try:
        accounts.change_password(
            web().runtime.db, person.account.id, request.form.get("current", ""), new, person.session_id
        )
    except MailerError as error:
        return page("admin/account.html", 400, done="", problem=problem_text(error))
    audit("account.password", f"account {person.account.id}")
    return redirect(url_for("admin.account", done="password"))
