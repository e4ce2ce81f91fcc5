"""`mailer demo`: the whole path on the embedded default."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column

from mailer import mailouts
from mailer.cli.common import (
    out,
    reports_errors,
)
from mailer.cli.localized import App
from mailer.cli.tables import (
    fitted_table,
    follow_mailout,
    print_launch,
)
from mailer.demo_setup import SEED_CAMPAIGN, demo_settings, prepare_demo
from mailer.errors import N_
from mailer.i18n import _
from mailer.locales import REGISTRY
from mailer.runtime import Runtime

demo_app = App()  # `mailer demo` itself, a command of the root


@demo_app.command(
    "demo", help=N_("Load the seed campaign and demo supporters, then send the mailout into the outbox.")
)
@reports_errors
def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help=N_("Folder for the demo's database and outbox."))
    ] = Path("mailer-demo"),
    no_launch: Annotated[
        bool, typer.Option("--no-launch", help=N_("Prepare the database, then stop."))
    ] = False,
) -> None:
    started = time.monotonic()
    settings = demo_settings(folder)
    rt = Runtime(settings)
    try:
        prepared = prepare_demo(rt)
        out.print(_("Demo folder: %(path)s") % {"path": folder.resolve()})
        if settings.data_key_file is not None:
            out.print(
                _("Personal data is encrypted with the key in %(file)s: without it, nobody can read it.")
                % {"file": settings.data_key_file}
            )
        out.print(
            _("Campaign %(slug)s loaded; %(num)d supporters; %(officials)d officials.")
            % {
                "slug": prepared.campaign.slug,
                "num": prepared.supporters.created
                + prepared.supporters.updated
                + prepared.supporters.unchanged,
                "officials": prepared.targets.created + prepared.targets.updated,
            }
        )
        drafts = [c for c, s in prepared.campaign.translation_status.items() if s == "draft"]
        if drafts:
            out.print(
                _("The translations in %(locales)s are drafts for native review.")
                % {"locales": ", ".join(drafts)}
            )
        if no_launch:
            out.print(
                _("Prepared. Launch it yourself with: mailer mailout launch %(slug)s")
                % {"slug": SEED_CAMPAIGN}
            )
            return
        result = mailouts.launch_mailout(
            rt.db, rt.backend, SEED_CAMPAIGN, {}, {}, batch_size=settings.batch_size
        )
        status = mailouts.mailout_status(rt.db, result.mailout_id)
        if status.status == "running":
            status = follow_mailout(rt, result.mailout_id)
        print_launch(result, status)
        _print_demo_samples(rt, status)
        out.print(_("Done in %(seconds).1f s.") % {"seconds": time.monotonic() - started})
        out.print(
            _("Now write a letter as a supporter would: mailer serve --demo %(path)s") % {"path": folder}
        )
        out.print(
            _(
                "Or run the campaign from the dashboard: mailer users add YOU@example.org --role admin "
                "--demo %(path)s, then open http://127.0.0.1:8000/admin/"
            )
            % {"path": folder}
        )
    finally:
        rt.close()


def _print_demo_samples(rt: Runtime, status: mailouts.MailoutStatus) -> None:
    samples = mailouts.sample_provider_ids(rt.db, status.id)
    table = fitted_table(
        _("Messages per language"),
        _("Locale"),
        Column(_("Recipients"), justify="right"),
        Column(_("Sent"), justify="right"),
    )
    for code, counts in status.by_locale.items():
        table.add_row(
            f"{code} ({REGISTRY[code].native_name})", str(sum(counts.values())), str(counts.get("sent", 0))
        )
    out.print(table)
    if rt.settings.transport == "outbox" and samples:
        out.print(_("One message per language, to open in a mail client:"))
        for code, name in sorted(samples.items(), key=lambda item: list(REGISTRY).index(item[0])):
            out.print(f"  {code}: {rt.settings.outbox_dir / name}", markup=False, soft_wrap=True)
