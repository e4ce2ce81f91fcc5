"""`mailer suppressions`: addresses we never mail."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from mailer import events
from mailer.cli.common import (
    JsonOption,
    emit_json,
    out,
    plain,
    reports_errors,
    runtime,
)
from mailer.i18n import _, ngettext

suppressions_app = typer.Typer(
    help=_("List, add, remove and export suppressed addresses."), no_args_is_help=True
)
ScopeOption = Annotated[str, typer.Option("--scope", help=_("supporter or target"))]


@suppressions_app.command("list")
@reports_errors
def suppressions_list(as_json: JsonOption = False) -> None:
    """Every suppressed address, with its reason kept apart (unsubscribe, bounce, complaint, ...)."""
    with runtime() as rt:
        rows = events.list_suppressions(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=_("Suppressions"))
    for header in (_("Address"), _("Scope"), _("Reason"), _("Source"), _("Since")):
        table.add_column(header)
    for row in rows:
        table.add_row(
            *(plain(row[k]) for k in ("email", "scope", "reason", "source")), row["created_at"][:16]
        )
    out.print(table)


@suppressions_app.command("add")
@reports_errors
def suppressions_add(email: str, scope: ScopeOption = "supporter") -> None:
    """Stop all mail to an address (a manual suppression)."""
    with runtime() as rt:
        added = events.add_suppression(rt.db, email, scope)
    out.print(_("Suppressed.") if added else _("Already suppressed."))


@suppressions_app.command("remove")
@reports_errors
def suppressions_remove(
    email: str,
    scope: ScopeOption = "supporter",
    reason: Annotated[str | None, typer.Option("--reason", help=_("Only this reason."))] = None,
) -> None:
    """Lift a suppression (only with the person's consent: it does not resubscribe them to alerts)."""
    with runtime() as rt:
        removed = events.remove_suppression(rt.db, email, scope, reason)
    out.print(
        ngettext("%(num)d suppression removed.", "%(num)d suppressions removed.", removed) % {"num": removed}
    )


@suppressions_app.command("export")
@reports_errors
def suppressions_export() -> None:
    """All suppressions as CSV on stdout; cells that a spreadsheet would run as formulas are neutralised."""
    with runtime() as rt:
        sys.stdout.write(events.export_suppressions_csv(events.list_suppressions(rt.db)))
