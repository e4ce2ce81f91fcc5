"""`mailer supporters`: import, list and find supporters; one person's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column
from rich.text import Text

from mailer import mailouts, privacy, supporters
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

supporters_app = App(
    help=N_("Import, list and find supporters; export or erase what we hold about one person.")
)


@supporters_app.command(
    "import",
    help=N_(
        "Import supporters from CSV: rows are validated, duplicates merged, bad rows reported by number."
    ),
)
@reports_errors
def supporters_import(
    file: Annotated[
        Path, typer.Argument(help=N_("A CSV file with columns email,name,locale,governorate[,tags]."))
    ],
    as_json: JsonOption = False,
) -> None:
    with runtime() as rt:
        report = supporters.import_supporters(rt.db, file)
    if as_json:
        emit_json(
            {
                "file": report.file,
                "rows": report.rows_read,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "merged_duplicates": report.merged_duplicates,
                "suppressed": report.suppressed,
                "rejected": [{"row": e.row, "field": e.field, "reason": e.reason} for e in report.rejected],
            }
        )
        return
    print_rejected(report.file, report.rejected, _("%(file)s: row %(row)d, %(field)s: %(reason)s"))
    # One row per count: seven columns of long headers do not fit 80 characters in Sorani.
    table = fitted_table(
        plain(_("Import of %(file)s") % {"file": report.file}), "", Column("", justify="right")
    )
    table.show_header = False
    for label, count in (
        (_("Rows read"), report.rows_read),
        (_("New"), report.created),
        (_("Updated"), report.updated),
        (_("Unchanged"), report.unchanged),
        (_("Duplicates merged"), report.merged_duplicates),
        (_("suppressed"), report.suppressed),
        (_("Rejected"), len(report.rejected)),
    ):
        table.add_row(label, str(count))
    out.print(table)


@supporters_app.command(
    "list", help=N_("Every supporter (of a segment), subscribed or not, decrypted for the coordinator.")
)
@reports_errors
def supporters_list(
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment",
            help=N_("Only these supporters: locale=ar, governorate=Basra, tag=lawyers (repeatable)."),
        ),
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    with runtime() as rt:
        rows = list(privacy.list_supporters(rt.db, mailouts.parse_segment(segment or [])))
    if as_json:
        emit_json(rows)
        return
    table = fitted_table(
        _("Supporters"),
        whole(_("Address"), (row["email"] for row in rows)),
        _("Name"),
        _("Locale"),
        *([_("Governorate"), _("Tags")] if wide else []),
        _("Subscribed"),
    )
    for row in rows:
        extra = [row["governorate"] or "", plain(", ".join(row["tags"]))] if wide else []
        table.add_row(
            plain(row["email"]),
            plain(row["name"]),
            row["locale"],
            *extra,
            _("yes") if row["subscribed"] else _("no"),
        )
    out.print(table)


@supporters_app.command("find", help=N_("The supporter with this address (any case), if we hold one."))
@reports_errors
def supporters_find(address: str, as_json: JsonOption = False) -> None:
    with runtime() as rt:
        record = privacy.find_supporter(rt.db, address)
    if as_json:
        emit_json(record)
        return
    if record is None:
        out.print(_("No supporter has this address."))
        return
    for label, value in (
        (_("Address"), record["email"]),
        (_("Name"), record["name"]),
        (_("Locale"), record["locale"]),
        (_("Governorate"), record["governorate"] or ""),
        (_("Tags"), ", ".join(record["tags"])),
        (_("Subscribed"), _("yes") if record["subscribed"] else _("no")),
        (_("Since"), record["created_at"][:16]),
    ):
        out.print(Text(f"{label}: ") + plain(str(value)))


@supporters_app.command(
    "export",
    help=N_("Everything we hold about one person, in clear, as one JSON document (their right of access)."),
)
@reports_errors
def supporters_export(address: str, as_json: JsonOption = True) -> None:
    with runtime() as rt:
        emit_json(privacy.export_person(rt.db, address))


@supporters_app.command(
    "erase",
    help=N_(
        "Erase everything about one person (their waiting messages are cancelled first); only a "
        "blind-index suppression stays, so that no later import mails them again."
    ),
)
@reports_errors
def supporters_erase(
    address: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=N_("Do not ask for confirmation."))] = False,
) -> None:
    if not yes:
        typer.confirm(_("Erase everything held about this address? This cannot be undone."), abort=True)
    with runtime() as rt:
        privacy.erase_person(rt.db, address)
    # The same words whether we held anything or not: the answer says nothing about the address.
    out.print(
        _(
            "Erased: nothing about this address is held any more (supporter record, letters, messages "
            "and events); a suppression keeps it from being mailed again."
        )
    )
