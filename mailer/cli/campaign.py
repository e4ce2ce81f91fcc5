"""`mailer campaign`: load, check, preview and report on campaigns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from mailer import answers, campaigns, events
from mailer.cli.common import (
    JsonOption,
    WideOption,
    emit_json,
    err,
    out,
    plain,
    reports_errors,
    runtime,
    translation_status_label,
)
from mailer.cli.localized import App
from mailer.cli.tables import (
    fitted_table,
    message_state_label,
    report_table,
    whole,
)
from mailer.errors import N_
from mailer.i18n import _, format_share, interface_language
from mailer.locales import REGISTRY

campaign_app = App(help=N_("Load, list and check campaigns."))


@campaign_app.command(
    "load", help=N_("Validate a campaign folder and store it (a new load of the same slug replaces the old).")
)
@reports_errors
def campaign_load(
    folder: Annotated[Path, typer.Argument(help=N_("The campaign folder (campaign.yaml and *.md)."))],
) -> None:
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


@campaign_app.command(
    "check", help=N_("Completeness per locale; exits non-zero when an enabled locale lacks content.")
)
@reports_errors
def campaign_check(slug: str, as_json: JsonOption = False) -> None:
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
        headers = (_("Locale"), _("Enabled"), _("Translation"), _("Title"), _("Alert"), _("Letter"))
        table = fitted_table(_("Campaign %(slug)s") % {"slug": slug}, *headers)
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


@campaign_app.command("list", help=N_("The campaigns in the database."))
@reports_errors
def campaign_list(as_json: JsonOption = False, wide: WideOption = False) -> None:
    with runtime() as rt:
        rows = [(c.slug, c.title, c.locales, c.translation_status) for c in campaigns.list_campaigns(rt.db)]
    if as_json:
        emit_json([{"slug": s, "title": t, "locales": loc, "translations": tr} for s, t, loc, tr in rows])
        return
    table = fitted_table(
        _("Campaigns"),
        whole(_("Slug"), (row[0] for row in rows)),
        _("Title"),
        _("Locales"),
        *([_("Translation")] if wide else []),
    )
    labels = {"source": _("source text"), "draft": _("draft"), "reviewed": _("reviewed")}
    for slug, title, locales, statuses in rows:
        translations = ", ".join(f"{c}: {labels.get(statuses.get(c, ''), '-')}" for c in locales)
        table.add_row(
            plain(slug),
            plain(title.get("en") or next(iter(title.values()))),
            plain(", ".join(locales)),
            *([plain(translations)] if wide else []),
        )
    out.print(table)


@campaign_app.command(
    "preview",
    help=N_("Render every locale's alert (HTML and text) and an index.html that shows them side by side."),
)
@reports_errors
def campaign_preview(
    slug: str,
    out_dir: Annotated[Path, typer.Option("--out", help=N_("Folder to write the previews to."))] = Path(
        "preview"
    ),
) -> None:
    with runtime() as rt:
        files = campaigns.preview_campaign(rt.db, rt.renderer, slug, out_dir, dt.date.today())
    out.print(_("Open %(path)s in a browser.") % {"path": files[0].resolve()})


@campaign_app.command(
    "report",
    help=N_("Results of every mailout of a campaign, its letters per official, and which officials answer."),
)
@reports_errors
def campaign_report(slug: str, as_json: JsonOption = False, wide: WideOption = False) -> None:
    with runtime() as rt:
        report = events.campaign_report(rt.db, slug)
        responses = answers.official_responses(rt.db, slug)
    report["responses"] = {target: r.as_dict() for target, r in responses.items()}
    report["responses_total"] = answers.campaign_total(responses).as_dict()
    if as_json:
        emit_json(report)
        return
    for mailout in report["mailouts"]:
        out.print(report_table(_("Mailout %(id)d: results") % {"id": mailout["id"]}, mailout, wide))
    states = ("queued", "sent", "failed", "unknown") if wide else ("sent", "failed")
    table = fitted_table(
        _("Letters per official"),
        whole(_("Official"), report["letters"]),
        *(Column(message_state_label(state), justify="right") for state in states),
    )
    for target, counts in report["letters"].items():
        table.add_row(plain(target), *(str(counts[state]) for state in states))
    out.print(table)
    if responses:
        out.print(responses_table(responses, wide))


def responses_table(responses: dict[str, answers.OfficialResponses], wide: bool = False) -> Table:
    """Which officials answer: letters answered (a reply came back, or the writer said so) and their share of
    the letters handed over; ``wide`` adds the letters, replies, automatic answers and what writers said."""
    columns = [("answered", _("answered"))]  # the letters each received are in the table above
    if wide:
        columns = [
            ("letters", _("letters")),
            *columns,
            ("replies", _("replies")),
            ("auto_replies", _("automatic")),
            ("yes", _("yes")),
            ("no", _("no")),
            ("not_yet", _("not yet")),
        ]
    table = fitted_table(
        _("Answers per official"),
        whole(_("Official"), responses),
        *(Column(label, justify="right") for _key, label in columns),
        Column(_("rate"), justify="right"),
    )
    total = answers.campaign_total(responses)
    for target, r in [*responses.items(), (_("all"), total)]:
        rate = "" if r.rate is None else format_share(r.rate, interface_language())
        style = "bold" if r is total else None
        table.add_row(plain(target), *(str(getattr(r, key)) for key, _label in columns), rate, style=style)
    return table
