"""`mailer campaign`: load, check, preview and report on campaigns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer import campaigns, events
from mailer.cli.common import (
    JsonOption,
    emit_json,
    err,
    out,
    plain,
    reports_errors,
    runtime,
    translation_status_label,
)
from mailer.cli.tables import (
    message_state_label,
    report_table,
)
from mailer.i18n import _
from mailer.locales import REGISTRY

campaign_app = typer.Typer(help=_("Load, list and check campaigns."), no_args_is_help=True)


@campaign_app.command("load")
@reports_errors
def campaign_load(
    folder: Annotated[Path, typer.Argument(help=_("The campaign folder (campaign.yaml and *.md)."))],
) -> None:
    """Validate a campaign folder and store it (a new load of the same slug replaces the old)."""
    with runtime() as rt:
        spec, created = campaigns.load_campaign(rt.db, folder)
    message = _("Campaign %(slug)s loaded.") if created else _("Campaign %(slug)s updated.")
    out.print(message % {"slug": spec.slug})
    drafts = [code for code, status in spec.translation_status.items() if status == "draft"]
    if drafts:
        err.print(
            _(
                "Note: the translations in %(locales)s are drafts; have a native speaker review them before a real launch."
            )
            % {"locales": ", ".join(drafts)}
        )


@campaign_app.command("check")
@reports_errors
def campaign_check(slug: str, as_json: JsonOption = False) -> None:
    """Completeness per locale; exits non-zero when an enabled locale lacks content."""
    with runtime() as rt:
        report = campaigns.completeness(rt.db, slug)
    incomplete = [row for row in report if row.enabled and not row.complete]
    if as_json:
        emit_json(
            {
                "campaign": slug,
                "complete": not incomplete,
                "locales": [
                    {
                        "locale": row.locale,
                        "enabled": row.enabled,
                        "translation_status": row.translation_status,
                        "title": row.title,
                        "alert": row.alert,
                        "letter": row.letter,
                        "complete": row.complete,
                        "missing": row.missing,
                    }
                    for row in report
                ],
            }
        )
    else:
        yes, no = _("yes"), _("missing")
        table = Table(title=_("Campaign %(slug)s") % {"slug": slug})
        for header in (_("Locale"), _("Enabled"), _("Translation"), _("Title"), _("Alert"), _("Letter")):
            table.add_column(header)
        for row in report:
            table.add_row(
                f"{row.locale} ({REGISTRY[row.locale].native_name})",
                yes if row.enabled else _("no"),
                translation_status_label(row.translation_status),
                yes if row.title else no,
                yes if row.alert else no,
                (yes if row.letter else no) if row.needs_letter else "-",
            )
        out.print(table)
        for row in incomplete:
            err.print(
                _("%(locale)s is enabled but lacks: %(missing)s")
                % {"locale": row.locale, "missing": ", ".join(row.missing)}
            )
    if incomplete:
        raise typer.Exit(1)


@campaign_app.command("list")
@reports_errors
def campaign_list(as_json: JsonOption = False) -> None:
    """The campaigns in the database."""
    with runtime() as rt:
        rows = [(c.slug, c.title, c.locales, c.translation_status) for c in campaigns.list_campaigns(rt.db)]
    if as_json:
        emit_json([{"slug": s, "title": t, "locales": loc, "translations": tr} for s, t, loc, tr in rows])
        return
    table = Table(title=_("Campaigns"))
    table.add_column(_("Slug"))
    table.add_column(_("Title"))
    table.add_column(_("Locales"))
    for slug, title, locales, statuses in rows:
        table.add_row(
            plain(slug),
            plain(title.get("en") or next(iter(title.values()))),
            plain(", ".join(f"{c} ({statuses.get(c, '-')})" for c in locales)),
        )
    out.print(table)


@campaign_app.command("preview")
@reports_errors
def campaign_preview(
    slug: str,
    out_dir: Annotated[Path, typer.Option("--out", help=_("Folder to write the previews to."))] = Path(
        "preview"
    ),
) -> None:
    """Render every locale's alert (HTML and text) and an index.html that shows them side by side."""
    with runtime() as rt:
        files = campaigns.preview_campaign(rt.db, rt.renderer, slug, out_dir, dt.date.today())
    out.print(_("Open %(path)s in a browser.") % {"path": files[0].resolve()})


@campaign_app.command("report")
@reports_errors
def campaign_report(slug: str, as_json: JsonOption = False) -> None:
    """Results of every mailout of a campaign, and its letters per official."""
    with runtime() as rt:
        report = events.campaign_report(rt.db, slug)
    if as_json:
        emit_json(report)
        return
    for mailout in report["mailouts"]:
        out.print(report_table(_("Mailout %(id)d: results") % {"id": mailout["id"]}, mailout))
    table = Table(title=_("Letters per official"))
    table.add_column(_("Official"))
    for column in ("queued", "sent", "failed", "unknown"):
        table.add_column(message_state_label(column), justify="right")
    for target, counts in report["letters"].items():
        table.add_row(plain(target), *(str(counts[c]) for c in ("queued", "sent", "failed", "unknown")))
    out.print(table)
