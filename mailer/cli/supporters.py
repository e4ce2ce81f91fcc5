"""`mailer supporters`: import, list and find supporters; one person's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mailer import mailouts, privacy, supporters
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

supporters_app = typer.Typer(
    help=_("Import, list and find supporters; export or erase what we hold about one person."),
    no_args_is_help=True,
)


@supporters_app.command("import")
@reports_errors
def supporters_import(
    file: Annotated[
        Path, typer.Argument(help=_("A CSV file with columns email,name,locale,governorate[,tags]."))
    ],
    as_json: JsonOption = False,
) -> None:
    """Import supporters from CSV: rows are validated, duplicates merged, bad rows reported by number."""
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
    table = Table(title=plain(_("Import of %(file)s") % {"file": report.file}))
    table.add_column(_("Rows read"))
    table.add_column(_("New"))
    table.add_column(_("Updated"))
    table.add_column(_("Unchanged"))
    table.add_column(_("Duplicates merged"))
    table.add_column(_("suppressed"))
    table.add_column(_("Rejected"))
    table.add_row(
        *(
            str(n)
            for n in (
                report.rows_read,
                report.created,
                report.updated,
                report.unchanged,
                report.merged_duplicates,
                report.suppressed,
                len(report.rejected),
            )
        )
    )
    out.print(table)


@supporters_app.command("list")
@reports_errors
def supporters_list(
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment",
            help=_("Only these supporters: locale=ar, governorate=Basra, tag=lawyers (repeatable)."),
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every supporter (of a segment), subscribed or not, decrypted for the coordinator."""
    with runtime() as rt:
        rows = privacy.list_supporters(rt.db, mailouts.parse_segment(segment or []))
        if as_json:
            emit_json(list(rows))
            return
        table = Table(title=_("Supporters"))
        table.add_column(_("Address"), no_wrap=True)  # what one copies into the next command: never cut
        for header in (_("Name"), _("Locale"), _("Governorate"), _("Tags"), _("Subscribed")):
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(
                plain(row["email"]),
                plain(row["name"]),
                row["locale"],
                row["governorate"] or "",
                plain(", ".join(row["tags"])),
                _("yes") if row["subscribed"] else _("no"),
            )
    out.print(table)


@supporters_app.command("find")
@reports_errors
def supporters_find(address: str, as_json: JsonOption = False) -> None:
    """The supporter with this address (any case), if we hold one."""
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


@supporters_app.command("export")
@reports_errors
def supporters_export(address: str, as_json: JsonOption = True) -> None:
    """Everything we hold about one person, in clear, as one JSON document (their right of access)."""
    with runtime() as rt:
        emit_json(privacy.export_person(rt.db, address))


@supporters_app.command("erase")
@reports_errors
def supporters_erase(
    address: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation."))] = False,
) -> None:
    """Erase everything about one person (their waiting messages are cancelled first); only a blind-index
    suppression stays, so that no later import mails them again."""
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
