"""`mailer users`: the dashboard's accounts (the first admin is made here)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from mailer import accounts
from mailer.cli.common import JsonOption, emit_json, fail, out, plain, reports_errors, runtime
from mailer.cli.localized import App
from mailer.cli.tables import fitted_table, whole
from mailer.errors import N_
from mailer.i18n import _

users_app = App(help=N_("Accounts for the dashboard: add, list, remove, reset a password."))

RoleOption = Annotated[
    str,
    typer.Option("--role", help=N_("viewer, coordinator or admin (each may do what the one before may).")),
]
DemoOption = Annotated[
    Path | None, typer.Option("--demo", help=N_("The accounts of `mailer demo`'s database in this folder."))
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help=N_("Read the password from the first line of standard input.")),
]


def _read_password(from_stdin: bool) -> str:
    """From a prompt (typed twice, never echoed) or from stdin (for scripts: never on the command line,
    where other users of the machine could read it)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail(_("--password-stdin: standard input holds no password"))
    else:
        password = typer.prompt(_("Password"), hide_input=True, confirmation_prompt=True)
    return str(password)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@users_app.command(
    "add", help=N_("Add an account (an admin sets up two-factor sign-in at their first sign-in).")
)
@reports_errors
def users_add(
    email: str,
    role: RoleOption = "coordinator",
    password_stdin: PasswordStdin = False,
    demo: DemoOption = None,
) -> None:
    accounts.check_role(role)
    password = accounts.check_password(_read_password(password_stdin))
    with runtime(demo=demo) as rt:
        account = accounts.add_account(rt.db, email, role, password, _now())
        accounts.record(rt.db, None, "account.add", f"account {account.id}", {"role": role})
    out.print(
        plain(_("Account %(email)s added (%(role)s).") % {"email": account.email, "role": account.role})
    )


@users_app.command("list", help=N_("Every account, its role and whether it has a second factor."))
@reports_errors
def users_list(as_json: JsonOption = False, demo: DemoOption = None) -> None:
    with runtime(demo=demo) as rt:
        rows = accounts.list_accounts(rt.db)
    if as_json:
        emit_json([row.to_json() for row in rows])
        return
    table = fitted_table(
        _("Accounts"),
        whole(_("Address"), (row.email for row in rows)),
        _("Role"),
        _("Two-factor"),
        _("Since"),
    )
    for row in rows:
        table.add_row(
            plain(row.email),
            row.role,
            _("yes") if row.two_factor else _("no"),
            row.created_at.strftime("%Y-%m-%d"),
        )
    out.print(table)


@users_app.command(
    "remove", help=N_("Remove an account: it can never sign in again (the audit log keeps its name).")
)
@reports_errors
def users_remove(email: str, demo: DemoOption = None) -> None:
    with runtime(demo=demo) as rt:
        account = accounts.remove_account(rt.db, email, _now())
        accounts.record(rt.db, None, "account.remove", f"account {account.id}")
    out.print(plain(_("Account %(email)s removed.") % {"email": account.email}))


@users_app.command("reset-password", help=N_("Set a new password; every session of the account ends."))
@reports_errors
def users_reset_password(
    email: str,
    password_stdin: PasswordStdin = False,
    reset_two_factor: Annotated[
        bool,
        typer.Option("--reset-two-factor", help=N_("Also forget the second factor (a lost phone).")),
    ] = False,
    demo: DemoOption = None,
) -> None:
    password = accounts.check_password(_read_password(password_stdin))
    with runtime(demo=demo) as rt:
        account = accounts.reset_password(rt.db, email, password, reset_two_factor)
        accounts.record(
            rt.db,
            None,
            "account.reset_password",
            f"account {account.id}",
            {"two_factor_reset": reset_two_factor},
        )
    out.print(plain(_("New password set for %(email)s; its sessions ended.") % {"email": account.email}))
