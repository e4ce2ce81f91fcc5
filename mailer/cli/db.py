"""`mailer db`: the database schema."""

from __future__ import annotations

import typer

from mailer.cli.common import (
    out,
    reports_errors,
)
from mailer.config import Settings
from mailer.i18n import _
from mailer.store import upgrade_database

db_app = typer.Typer(help=_("Create and upgrade the database."), no_args_is_help=True)


@db_app.command("upgrade")
@reports_errors
def db_upgrade() -> None:
    """Create the database schema, or migrate it to the newest version."""
    settings = Settings.from_env()
    upgrade_database(settings.database_url, settings.require_vault())
    out.print(_("The database is up to date."))
