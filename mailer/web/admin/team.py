"""Admins' pages: the accounts (add, change a role, remove) and the audit log."""

from __future__ import annotations

import secrets
from typing import Any

from flask import g, redirect, request, url_for

from mailer import accounts, privacy
from mailer.errors import MailerError
from mailer.web.admin import access, audit, bp, now, page, problem_text
from mailer.web.base import web

AUDIT_PAGE = 100


def _accounts_page(status: int = 200, **context: Any) -> tuple[str, int]:
    rt = web().runtime
    defaults: dict[str, Any] = {"problem": None, "created": None, "password": None, "purged": None}
    return page(
        "admin/accounts.html",
        status,
        accounts=accounts.list_accounts(rt.db),
        roles=accounts.ROLES,
        # The keys are made and rotated on the command line only: a key shown in a browser would live on in
        # its memory and history. Here, which keys are in use, and what retention would delete now.
        key_ids=list(rt.vault.kids()),
        current_key=rt.vault.current.kid,
        retention=rt.retention,
        due=privacy.purge(rt.db, rt.retention, now(), dry_run=True),
        **{**defaults, **context},
    )


@bp.get("/accounts")
@access("admin")
def account_list() -> Any:
    return _accounts_page()


@bp.post("/accounts")
@access("admin")
def account_add() -> Any:
    """A new account with a one-time password shown once to the admin, who passes it on by a safe channel;
    the person changes it after signing in."""
    password = secrets.token_urlsafe(12)
    try:
        account = accounts.add_account(
            web().runtime.db, request.form.get("email", ""), request.form.get("role", ""), password, now()
        )
    except MailerError as error:
        return _accounts_page(400, problem=problem_text(error))
    audit("account.add", f"account {account.id}", role=account.role)
    return _accounts_page(created=account, password=password)


@bp.post("/accounts/<int:account_id>/role")
@access("admin")
def account_role(account_id: int) -> Any:
    try:
        target = accounts.get_account(web().runtime.db, account_id)
        changed = accounts.change_role(web().runtime.db, target.email, request.form.get("role", ""))
    except MailerError as error:
        return _accounts_page(400, problem=problem_text(error))
    audit("account.role", f"account {account_id}", role=changed.role)
    return redirect(url_for("admin.account_list"))


@bp.post("/accounts/<int:account_id>/remove")
@access("admin")
def account_remove(account_id: int) -> Any:
    if account_id == g.person.account.id:
        return _accounts_page(400, problem="self")
    try:
        target = accounts.get_account(web().runtime.db, account_id)
        accounts.remove_account(web().runtime.db, target.email, now())
    except MailerError as error:
        return _accounts_page(400, problem=problem_text(error))
    audit("account.remove", f"account {account_id}")
    return redirect(url_for("admin.account_list"))


@bp.post("/retention/purge")
@access("admin")
def retention_purge() -> Any:
    """What the sweep does every hour, now (after an import of old data, before an audit...)."""
    report = privacy.purge(web().runtime.db, web().runtime.retention, now())
    audit("privacy.purge", "", **report.as_dict())
    return _accounts_page(purged=report)


@bp.get("/audit")
@access("admin")
def audit_log() -> Any:
    before = request.args.get("before", type=int)
    rows = accounts.audit_log(web().runtime.db, before, AUDIT_PAGE)
    older = rows[-1].id if len(rows) == AUDIT_PAGE else None
    return page("admin/audit.html", rows=rows, older=older)
