"""The ``mailer`` command: a thin edge that parses options, calls one use-case and reports.

One module per command group. Exit status 0 on success; on failure a reason on stderr and a non-zero
status. Commands that report take ``--json`` and then print one JSON document on stdout.
"""

from __future__ import annotations

import sys

from mailer.cli import (
    campaign,
    db,
    demo,
    inbound,
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
from mailer.cli.localized import App
from mailer.errors import N_, MailerError
from mailer.i18n import _, interface_translations

app = App(
    help=N_(
        "Multilingual email campaigns for human-rights defenders: alerts to supporters, letters to officials."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(services.services_app)  # worker, sweep, beat, serve: commands of their own, not a group
app.add_typer(demo.demo_app)
app.add_typer(db.db_app, name="db")
app.add_typer(translations.i18n_app, name="i18n")
app.add_typer(campaign.campaign_app, name="campaign")
app.add_typer(supporters.supporters_app, name="supporters")
app.add_typer(targets.targets_app, name="targets")
app.add_typer(mailout.mailout_app, name="mailout")
app.add_typer(suppressions.suppressions_app, name="suppressions")
app.add_typer(inbound.inbound_app, name="inbound")
app.add_typer(privacy.privacy_app, name="privacy")
app.add_typer(privacy.keys_app, name="keys")
app.add_typer(users.users_app, name="users")


def main() -> None:
    """Entry point of the ``mailer`` command."""
    try:
        app()
    except MailerError as error:  # errors raised while options are parsed
        err.print(_("error: %(reason)s") % {"reason": error.render(interface_translations())}, markup=False)
        sys.exit(1)
