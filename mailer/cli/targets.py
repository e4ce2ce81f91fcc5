"""`mailer targets`: the officials directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer import targets
from mailer.cli.common import (
    JsonOption,
    emit_json,
    out,
    plain,
    print_rejected,
    reports_errors,
    runtime,
)
from mailer.i18n import _

targets_app = typer.Typer(help=_("Import and list the officials supporters write to."), no_args_is_help=True)


@targets_app.command("import")
@reports_errors
def targets_import(file: Annotated[Path, typer.Argument(help=_("A YAML list of officials."))]) -> None:
    """Import officials (existing slugs are updated)."""
    with runtime() as rt:
        report = targets.import_targets(rt.db, file)
    print_rejected(report.file, report.rejected, _("%(file)s: entry %(row)d, %(field)s: %(reason)s"))
    out.print(
        _("Officials: %(new)d new, %(updated)d updated, %(rejected)d rejected.")
        % {
            "new": report.created,
            "updated": report.updated,
            "rejected": len(report.rejected),
        }
    )


@targets_app.command("list")
@reports_errors
def targets_list(as_json: JsonOption = False) -> None:
    """The officials directory."""
    with runtime() as rt:
        rows = targets.list_targets(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=_("Officials"))
    for header in (_("Slug"), _("Institution"), _("Governorate"), _("Letter language"), _("Status")):
        table.add_column(header)
    for row in rows:
        table.add_row(
            plain(row["slug"]),
            plain(row["institution"]["en"]),
            plain(row["governorate"] or _("national")),
            plain(row["letter_locale"]),
            plain(row["status"]),
        )
    out.print(table)
