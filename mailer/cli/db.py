"""`mailer db`: the database schema."""

from __future__ import annotations

from mailer.cli.common import (
    out,
    reports_errors,
)
from mailer.cli.localized import App
from mailer.config import Settings
from mailer.errors import N_
from mailer.i18n import _
from mailer.store import upgrade_database

db_app = App(help=N_("Create and upgrade the database."))


@db_app.command("upgrade", help=N_("Create the database schema, or migrate it to the newest version."))
@reports_errors
def db_upgrade() -> None:
    settings = Settings.from_env()
    upgrade_database(settings.database_url, settings.require_vault())
    out.print(_("The database is up to date."))
