"""`mailer targets`: the officials directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailer import targets
from mailer.cli.common import (
    JsonOption,
    WideOption,
    emit_json,
    out,
    plain,
    print_rejected,
    reports_errors,
    runtime,
)
from mailer.cli.localized import App
from mailer.cli.tables import fitted_table, whole
from mailer.errors import N_
from mailer.i18n import _

targets_app = App(help=N_("Import and list the officials supporters write to."))


@targets_app.command("import", help=N_("Import officials (existing slugs are updated)."))
@reports_errors
def targets_import(file: Annotated[Path, typer.Argument(help=N_("A YAML list of officials."))]) -> None:
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


@targets_app.command("list", help=N_("The officials directory."))
@reports_errors
def targets_list(as_json: JsonOption = False, wide: WideOption = False) -> None:
    with runtime() as rt:
        rows = targets.list_targets(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = fitted_table(
        _("Officials"),
        whole(_("Slug"), (row["slug"] for row in rows)),
        _("Institution"),
        *([_("Governorate"), _("Letter language")] if wide else []),
        _("Status"),
    )
    for row in rows:
        extra = [plain(row["governorate"] or _("national")), plain(row["letter_locale"])] if wide else []
        table.add_row(plain(row["slug"]), plain(row["institution"]["en"]), *extra, plain(row["status"]))
    out.print(table)
