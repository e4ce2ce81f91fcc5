"""`mailer i18n`: the translation catalogs."""

from __future__ import annotations

import typer
from rich.table import Table

from mailer import i18n_admin
from mailer.cli.common import (
    JsonOption,
    emit_json,
    out,
    reports_errors,
)
from mailer.i18n import _, ngettext

i18n_app = typer.Typer(
    help=_("Extract, update, compile and check the translation catalogs."), no_args_is_help=True
)


@i18n_app.command("extract")
@reports_errors
def i18n_extract() -> None:
    """Collect translatable strings from the code and templates into translations/messages.pot."""
    count = i18n_admin.extract()
    out.print(ngettext("Extracted %(num)d message.", "Extracted %(num)d messages.", count) % {"num": count})


@i18n_app.command("update")
@reports_errors
def i18n_update() -> None:
    """Bring every locale's catalog in line with messages.pot (creating missing catalogs)."""
    for code, created in i18n_admin.update():
        message = _("%(locale)s: catalog created") if created else _("%(locale)s: catalog updated")
        out.print(message % {"locale": code})


@i18n_app.command("compile")
@reports_errors
def i18n_compile() -> None:
    """Compile every catalog to a .mo file."""
    for code, count in i18n_admin.compile_catalogs():
        out.print(
            ngettext("%(locale)s: %(num)d message compiled", "%(locale)s: %(num)d messages compiled", count)
            % {"locale": code, "num": count}
        )


@i18n_app.command("status")
@reports_errors
def i18n_status(as_json: JsonOption = False) -> None:
    """Percent translated per locale; exits non-zero when one is below 100%."""
    rows = i18n_admin.status()
    if as_json:
        emit_json([row.to_json() for row in rows])
    else:
        table = Table(title=_("Translation catalogs"))
        for header in (
            _("Locale"),
            _("Translated"),
            _("Fuzzy"),
            _("Untranslated"),
            _("Percent"),
            _("Review"),
        ):
            table.add_column(header)
        for row in rows:
            table.add_row(
                row.locale,
                str(row.translated),
                str(row.fuzzy),
                str(row.untranslated),
                f"{row.percent:.0f}%",
                row.review_status,
            )
        out.print(table)
    if any(row.percent < 100 for row in rows):
        raise typer.Exit(1)
