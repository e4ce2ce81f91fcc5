"""`mailer i18n`: the translation catalogs."""

from __future__ import annotations

import typer

from mailer import i18n_admin
from mailer.cli.common import (
    JsonOption,
    emit_json,
    out,
    reports_errors,
)
from mailer.cli.localized import App
from mailer.cli.tables import fitted_table
from mailer.errors import N_
from mailer.i18n import _, ngettext

i18n_app = App(help=N_("Extract, update, compile and check the translation catalogs."))


@i18n_app.command(
    "extract",
    help=N_("Collect translatable strings from the code and templates into translations/messages.pot."),
)
@reports_errors
def i18n_extract() -> None:
    count = i18n_admin.extract()
    out.print(ngettext("Extracted %(num)d message.", "Extracted %(num)d messages.", count) % {"num": count})


@i18n_app.command(
    "update", help=N_("Bring every locale's catalog in line with messages.pot (creating missing catalogs).")
)
@reports_errors
def i18n_update() -> None:
    for code, created in i18n_admin.update():
        message = _("%(locale)s: catalog created") if created else _("%(locale)s: catalog updated")
        out.print(message % {"locale": code})


@i18n_app.command("compile", help=N_("Compile every catalog to a .mo file."))
@reports_errors
def i18n_compile() -> None:
    for code, count in i18n_admin.compile_catalogs():
        out.print(
            ngettext("%(locale)s: %(num)d message compiled", "%(locale)s: %(num)d messages compiled", count)
            % {"locale": code, "num": count}
        )


@i18n_app.command("status", help=N_("Percent translated per locale; exits non-zero when one is below 100%."))
@reports_errors
def i18n_status(as_json: JsonOption = False) -> None:
    rows = i18n_admin.status()
    if as_json:
        emit_json([row.to_json() for row in rows])
    else:
        headers = (_("Locale"), _("Translated"), _("Fuzzy"), _("Untranslated"), _("Percent"), _("Review"))
        table = fitted_table(_("Translation catalogs"), *headers)
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
