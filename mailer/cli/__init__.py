"""The ``mailer`` command: a thin edge that parses options, calls one use-case and reports.

One module per command group. Exit status 0 on success; on failure a reason on stderr and a non-zero
status. Commands that report take ``--json`` and then print one JSON document on stdout.
"""

from __future__ import annotations

import sys

import typer

from mailer.cli import (
    campaign,
    db,
    demo,
    mailout,
    privacy,
    services,
    supporters,
    suppressions,
    targets,
    translations,
    users,
)
from mailer.cli.common import err
from mailer.errors import MailerError
from mailer.i18n import _, interface_translations

app = typer.Typer(
    help=_(
        "Multilingual email campaigns for human-rights defenders: alerts to supporters, letters to officials."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.db_app, name="db")
app.add_typer(translations.i18n_app, name="i18n")
app.add_typer(campaign.campaign_app, name="campaign")
app.add_typer(supporters.supporters_app, name="supporters")
app.add_typer(targets.targets_app, name="targets")
app.add_typer(mailout.mailout_app, name="mailout")
app.add_typer(suppressions.suppressions_app, name="suppressions")
app.add_typer(privacy.privacy_app, name="privacy")
app.add_typer(privacy.keys_app, name="keys")
app.add_typer(users.users_app, name="users")
app.command("worker")(services.worker)
app.command("sweep")(services.sweep_command)
app.command("beat")(services.beat)
app.command("serve")(services.serve)
app.command("demo")(demo.demo)


def main() -> None:
    """Entry point of the ``mailer`` command."""
    try:
        app()
    except MailerError as error:  # errors raised while options are parsed
        err.print(_("error: %(reason)s") % {"reason": error.render(interface_translations())}, markup=False)
        sys.exit(1)
