"""`mailer suppressions`: addresses we never mail."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mailer import events
from mailer.cli.common import (
    JsonOption,
    WideOption,
    emit_json,
    out,
    plain,
    reports_errors,
    runtime,
)
from mailer.cli.localized import App
from mailer.cli.tables import fitted_table, whole
from mailer.errors import N_
from mailer.i18n import _, ngettext

suppressions_app = App(help=N_("List, add, remove and export suppressed addresses."))
ScopeOption = Annotated[str, typer.Option("--scope", help=N_("supporter or target"))]


@suppressions_app.command(
    "list",
    help=N_("Every suppressed address, with its reason kept apart (unsubscribe, bounce, complaint, ...)."),
)
@reports_errors
def suppressions_list(as_json: JsonOption = False, wide: WideOption = False) -> None:
    with runtime() as rt:
        rows = events.list_suppressions(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = fitted_table(
        _("Suppressions"),
        whole(_("Address"), (row["email"] for row in rows)),
        *([_("Scope")] if wide else []),
        _("Reason"),
        *([_("Source")] if wide else []),
        _("Since"),
    )
    for row in rows:
        shown = ("email", "scope", "reason", "source") if wide else ("email", "reason")
        table.add_row(*(plain(row[k]) for k in shown), row["created_at"][:16].replace("T", " "))
    out.print(table)


@suppressions_app.command("add", help=N_("Stop all mail to an address (a manual suppression)."))
@reports_errors
def suppressions_add(email: str, scope: ScopeOption = "supporter") -> None:
    with runtime() as rt:
        added = events.add_suppression(rt.db, email, scope)
    out.print(_("Suppressed.") if added else _("Already suppressed."))


@suppressions_app.command(
    "remove",
    help=N_("Lift a suppression (only with the person's consent: it does not resubscribe them to alerts)."),
)
@reports_errors
def suppressions_remove(
    email: str,
    scope: ScopeOption = "supporter",
    reason: Annotated[str | None, typer.Option("--reason", help=N_("Only this reason."))] = None,
) -> None:
    with runtime() as rt:
        removed = events.remove_suppression(rt.db, email, scope, reason)
    out.print(
        ngettext("%(num)d suppression removed.", "%(num)d suppressions removed.", removed) % {"num": removed}
    )


@suppressions_app.command(
    "export",
    help=N_(
        "All suppressions as CSV on stdout; cells that a spreadsheet would run as formulas are neutralised."
    ),
)
@reports_errors
def suppressions_export() -> None:
    with runtime() as rt:
        sys.stdout.write(events.export_suppressions_csv(events.list_suppressions(rt.db)))
