"""The ``mailer`` command: a thin edge that parses options, calls one use-case and reports.

Exit status 0 on success; on failure a reason on stderr and a non-zero status. Commands that report take
``--json`` and then print one JSON document on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.headerregistry import Address
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from email_validator import EmailNotValidError, validate_email
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from mailer import campaigns, events, i18n_admin, mailouts, privacy, sending, supporters, targets, vault
from mailer.config import Settings
from mailer.demo_setup import SEED_CAMPAIGN, demo_settings, prepare_demo
from mailer.errors import ImportRowError, LocaleError, MailerError
from mailer.fields import forbidden_character
from mailer.i18n import _, interface_translations, ngettext
from mailer.locales import REGISTRY, get_locale
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.tasking import QUEUES

log = logging.getLogger("mailer")
P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False)
# Reasons go to stderr unwrapped: one reason, one line, whatever the terminal's width.
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    help=_(
        "Multilingual email campaigns for human-rights defenders: alerts to supporters, letters to officials."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help=_("Create and upgrade the database."), no_args_is_help=True)
i18n_app = typer.Typer(
    help=_("Extract, update, compile and check the translation catalogs."), no_args_is_help=True
)
campaign_app = typer.Typer(help=_("Load, list and check campaigns."), no_args_is_help=True)
supporters_app = typer.Typer(
    help=_("Import, list and find supporters; export or erase what we hold about one person."),
    no_args_is_help=True,
)
targets_app = typer.Typer(help=_("Import and list the officials supporters write to."), no_args_is_help=True)
mailout_app = typer.Typer(help=_("Launch mailouts and follow their progress."), no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(i18n_app, name="i18n")
app.add_typer(campaign_app, name="campaign")
app.add_typer(supporters_app, name="supporters")
app.add_typer(targets_app, name="targets")
app.add_typer(mailout_app, name="mailout")

JsonOption = Annotated[bool, typer.Option("--json", help=_("Print one JSON document on stdout."))]


def plain(value: object) -> Text:
    """Data for the terminal, shown as it is: never read as Rich markup (a title with ``[/b]``), and with
    control characters made visible (``\\x1b``), so that a CSV file cannot drive the coordinator's terminal."""
    text = str(value)
    if forbidden_character(text) is not None:
        text = "".join(
            char.encode("unicode_escape").decode("ascii") if forbidden_character(char) else char
            for char in text
        )
    return Text(text)


def fail(message: str) -> NoReturn:
    err.print(_("error: %(reason)s") % {"reason": message}, markup=False, soft_wrap=True)
    raise typer.Exit(1)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the engine's errors into a reason on stderr and exit status 1, never a stack trace."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MailerError as error:
            fail(error.render(interface_translations()))

    return wrapper


@contextmanager
def runtime(check_schema: bool = True) -> Iterator[Runtime]:
    rt = Runtime(Settings.from_env())
    try:
        if check_schema:
            rt.db.check_current()
        yield rt
    finally:
        rt.close()


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


# db


@db_app.command("upgrade")
@reports_errors
def db_upgrade() -> None:
    """Create the database schema, or migrate it to the newest version."""
    settings = Settings.from_env()
    upgrade_database(settings.database_url, settings.require_vault())
    out.print(_("The database is up to date."))


# i18n


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


# campaign


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
                _translation_status_label(row.translation_status),
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


def _translation_status_label(status: str) -> str:
    labels = {
        "source": _("source text"),
        "draft": _("draft: needs native review"),
        "reviewed": _("reviewed"),
    }
    return labels.get(status, status)


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


# supporters


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
    _print_rejected(report.file, report.rejected, _("%(file)s: row %(row)d, %(field)s: %(reason)s"))
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


def _print_rejected(file: str, rejected: list[ImportRowError], template: str) -> None:
    """One line on stderr per rejected row (markup off: the reasons quote the user's data)."""
    for error in rejected:
        reason = error.render_reason(interface_translations())
        values = {"file": file, "row": error.row, "field": error.field, "reason": reason}
        err.print(plain(template % values))


# targets


@targets_app.command("import")
@reports_errors
def targets_import(file: Annotated[Path, typer.Argument(help=_("A YAML list of officials."))]) -> None:
    """Import officials (existing slugs are updated)."""
    with runtime() as rt:
        report = targets.import_targets(rt.db, file)
    _print_rejected(report.file, report.rejected, _("%(file)s: entry %(row)d, %(field)s: %(reason)s"))
    out.print(
        _("Officials: %(new)d new, %(updated)d updated, %(rejected)d rejected.")
        % {
            "new": report.created,
            "updated": report.updated,
            "rejected": len(report.rejected),
        }
    )


@targets_app.command("list")
@reports_errors
def targets_list(as_json: JsonOption = False) -> None:
    """The officials directory."""
    with runtime() as rt:
        rows = targets.list_targets(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=_("Officials"))
    for header in (_("Slug"), _("Institution"), _("Governorate"), _("Letter language"), _("Status")):
        table.add_column(header)
    for row in rows:
        table.add_row(
            plain(row["slug"]),
            plain(row["institution"]["en"]),
            plain(row["governorate"] or _("national")),
            plain(row["letter_locale"]),
            plain(row["status"]),
        )
    out.print(table)


# mailout


def _status_table(status: mailouts.MailoutStatus) -> Table:
    title = _("Mailout %(id)d (%(campaign)s): %(status)s") % {
        "id": status.id,
        "campaign": status.campaign,
        "status": _mailout_state_label(status.status),
    }
    # Why a mailout stopped by itself (the provider refused our key, ...) is the first thing to tell.
    reason = (
        MailerError.from_json(status.status_reason).render(interface_translations())
        if status.status_reason
        else None
    )
    caption = plain(_("Stopped because: %(reason)s") % {"reason": reason}) if reason else None
    if status.throttled_until is not None:
        caption = plain(
            _("Throttled: the provider asked us to wait until %(time)s UTC")
            % {"time": status.throttled_until.strftime("%H:%M:%S")}
        )
    table = Table(title=title, caption=caption)
    table.add_column(_("Locale"))
    shown = [s for s in mailouts.MESSAGE_STATES if status.counts.get(s) or s in ("queued", "sent")]
    for state in shown:
        table.add_column(_message_state_label(state), justify="right")
    for code, counts in status.by_locale.items():
        table.add_row(f"{code} ({REGISTRY[code].native_name})", *(str(counts.get(s, 0)) for s in shown))
    table.add_row(_("all"), *(str(status.counts.get(s, 0)) for s in shown), style="bold")
    return table


def _message_state_label(state: str) -> str:
    labels = {
        "queued": _("queued"),
        "sending": _("sending"),
        "sent": _("sent"),
        "failed": _("failed"),
        "unknown": _("unknown"),
        "suppressed": _("suppressed"),
        "cancelled": _("cancelled"),
    }
    return labels.get(state, state)


def _mailout_state_label(state: str) -> str:
    labels = {
        "draft": _("draft"),
        "scheduled": _("scheduled"),
        "running": _("running"),
        "paused": _("paused"),
        "finished": _("finished"),
        "cancelled": _("cancelled"),
    }
    return labels.get(state, state)


def _watch(rt: Runtime, mailout_id: int, quiet: bool = False) -> mailouts.MailoutStatus:
    """Follow a mailout until nothing is left to send (a progress bar on a terminal, plain lines otherwise)."""
    status = mailouts.mailout_status(rt.db, mailout_id)
    if quiet:
        while status.status == "running":
            time.sleep(0.5)
            status = mailouts.mailout_status(rt.db, mailout_id)
        return status
    if not out.is_terminal:
        last = -1
        while True:
            if status.done != last:
                out.print(
                    _("mailout %(id)d: %(done)d of %(total)d done (%(status)s)")
                    % {
                        "id": mailout_id,
                        "done": status.done,
                        "total": status.total,
                        "status": _mailout_state_label(status.status),
                    }
                )
                last = status.done
            if status.status != "running":
                return status
            time.sleep(0.5)
            status = mailouts.mailout_status(rt.db, mailout_id)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as progress:
        task = progress.add_task(_("Sending"), total=status.total or 1, completed=status.done)
        while status.status == "running":
            time.sleep(0.25)
            status = mailouts.mailout_status(rt.db, mailout_id)
            progress.update(task, total=status.total or 1, completed=status.done)
    return status


@mailout_app.command("launch")
@reports_errors
def mailout_launch(
    slug: Annotated[str, typer.Argument(help=_("The campaign to send."))],
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment", help=_("KEY=VALUE, such as locale=ar or governorate=Basra; repeat to widen.")
        ),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            "--fallback", help=_("FROM=TO: send readers of FROM the content in TO, such as ckb=en.")
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help=_("Start later, at a time with its UTC offset, such as 2026-12-01T09:00+03:00.")
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=_("Count the recipients per locale; create and send nothing."))
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Launch the campaign's alert to a segment; launching the same mailout again sends nothing twice."""
    parsed_segment = mailouts.parse_segment(segment or [])
    fallbacks = mailouts.parse_fallbacks(fallback or [])
    start = _parse_time(at) if at else None
    with runtime() as rt:
        rt.check_can_send()  # before anything is written: a launch that cannot send leaves nothing behind
        if dry_run:
            plan = mailouts.plan_mailout(rt.db, slug, parsed_segment, fallbacks)
            _print_plan(plan, as_json)
            return
        result = mailouts.launch_mailout(
            rt.db, rt.backend, slug, parsed_segment, fallbacks, batch_size=rt.settings.batch_size, at=start
        )
        status = mailouts.mailout_status(rt.db, result.mailout_id)
    if as_json:
        emit_json({**status.to_json(), "created": result.created, "new_messages": result.new_messages})
        return
    _print_launch(result, status)


def _parse_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(_("--at %(value)s: write a time such as 2026-12-01T09:00+03:00") % {"value": text})
    if moment.tzinfo is None:
        fail(_("--at %(value)s: add the UTC offset, such as +03:00 for Baghdad") % {"value": text})
    return moment.astimezone(dt.UTC)


def _print_plan(plan: mailouts.LaunchPlan, as_json: bool) -> None:
    if as_json:
        emit_json(plan.to_json())
        return
    table = Table(
        title=_("Dry run of %(campaign)s: nothing is created or sent") % {"campaign": plan.campaign}
    )
    table.add_column(_("Locale"))
    table.add_column(_("Recipients"), justify="right")
    table.add_column(_("Content sent"))
    for code, count in plan.recipients.items():
        table.add_row(f"{code} ({REGISTRY[code].native_name})", str(count), plan.content_locales[code])
    table.add_row(_("all"), str(plan.total), "", style="bold")
    out.print(table)
    if plan.existing_mailout is not None:
        out.print(
            _("Mailout %(id)d exists for this segment; %(num)d of its messages are already in the ledger.")
            % {"id": plan.existing_mailout, "num": plan.already_in_ledger}
        )


@mailout_app.command("pause")
@reports_errors
def mailout_pause(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=_("The mailout's number."))],
) -> None:
    """Stop handing messages to the provider; resume goes on where it stopped."""
    with runtime() as rt:
        mailouts.pause_mailout(rt.db, mailout_id)
        out.print(_status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command("resume")
@reports_errors
def mailout_resume(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=_("The mailout's number."))],
) -> None:
    """Go on with a paused mailout, exactly where it stopped."""
    with runtime() as rt:
        mailouts.resume_mailout(rt.db, rt.backend, mailout_id, batch_size=rt.settings.batch_size)
        out.print(_status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command("cancel")
@reports_errors
def mailout_cancel(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=_("The mailout's number."))],
) -> None:
    """Cancel for good: once this returns, nothing more of the mailout reaches the provider."""
    with runtime() as rt:
        cancelled = mailouts.cancel_mailout(rt.db, mailout_id)
        out.print(
            ngettext(
                "Mailout %(id)d cancelled; %(num)d message will not be sent.",
                "Mailout %(id)d cancelled; %(num)d messages will not be sent.",
                cancelled,
            )
            % {"id": mailout_id, "num": cancelled}
        )
        out.print(_status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command("test")
@reports_errors
def mailout_test(
    slug: Annotated[str, typer.Argument(help=_("The campaign to send."))],
    to: Annotated[str, typer.Option("--to", help=_("The address that receives the test messages."))],
    locale: Annotated[
        list[str] | None,
        typer.Option("--locale", help=_("A locale to send (repeat); all enabled ones by default.")),
    ] = None,
) -> None:
    """Send one test message per locale to one address, outside any mailout."""
    address = _test_address(to)
    with runtime() as rt:
        codes = (
            [_locale_option(code) for code in locale] if locale else campaigns.enabled_locales(rt.db, slug)
        )
        results = sending.send_test(rt.db, rt.transport, rt.renderer, rt.sender, slug, address, codes)
    table = Table(title=_("Test messages to %(address)s") % {"address": address.addr_spec})
    table.add_column(_("Locale"))
    table.add_column(_("Result"))
    table.add_column(_("Detail"))
    for row in results:
        table.add_row(f"{row.locale} ({REGISTRY[row.locale].native_name})", row.status, row.detail or "")
    out.print(table)
    if any(row.status != "sent" for row in results):
        raise typer.Exit(1)


def _test_address(text: str) -> Address:
    try:
        normalized = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as error:
        fail(_("--to %(value)s is not a valid address: %(reason)s") % {"value": text, "reason": error})
    return Address(addr_spec=normalized)


def _locale_option(code: str) -> str:
    try:
        return get_locale(code).code
    except LocaleError as error:
        fail(error.render(interface_translations()))


def _print_launch(result: mailouts.LaunchResult, status: mailouts.MailoutStatus) -> None:
    if result.created:
        out.print(
            ngettext(
                "Mailout %(id)d created with %(num)d message.",
                "Mailout %(id)d created with %(num)d messages.",
                result.new_messages,
            )
            % {"id": result.mailout_id, "num": result.new_messages}
        )
    elif result.new_messages:
        out.print(
            ngettext(
                "Mailout %(id)d already existed: %(num)d new supporter added.",
                "Mailout %(id)d already existed: %(num)d new supporters added.",
                result.new_messages,
            )
            % {"id": result.mailout_id, "num": result.new_messages}
        )
    else:
        out.print(
            ngettext(
                "Mailout %(id)d was launched before and has no new supporter; nothing is sent twice (%(num)d message in its ledger).",
                "Mailout %(id)d was launched before and has no new supporter; nothing is sent twice (%(num)d messages in its ledger).",
                status.total,
            )
            % {"id": result.mailout_id, "num": status.total}
        )
    for source, target in result.content_locales.items():
        if source != target:
            out.print(
                _("Readers of %(source)s receive the %(target)s content (fallback you chose).")
                % {
                    "source": source,
                    "target": target,
                }
            )
    out.print(_status_table(status))


@mailout_app.command("status")
@reports_errors
def mailout_status_command(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=_("The mailout's number."))],
    watch: Annotated[bool, typer.Option("--watch", help=_("Follow the mailout until it stops."))] = False,
    as_json: JsonOption = False,
) -> None:
    """Counts by state and by locale."""
    with runtime() as rt:
        status = (
            _watch(rt, mailout_id, quiet=as_json) if watch else mailouts.mailout_status(rt.db, mailout_id)
        )
    if as_json:
        emit_json(status.to_json())
    else:
        out.print(_status_table(status))


@mailout_app.command("report")
@reports_errors
def mailout_report(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=_("The mailout's number."))],
    as_json: JsonOption = False,
) -> None:
    """Results per language: the ledger beside what the provider reported (deliveries, bounces, complaints)."""
    with runtime() as rt:
        report = events.mailout_report(rt.db, mailout_id)
    if as_json:
        emit_json(report)
        return
    out.print(_report_table(_("Mailout %(id)d: results") % {"id": mailout_id}, report))


def _report_table(title: str, report: dict[str, Any]) -> Table:
    labels = {
        "queued": _("queued"),
        "sent": _("sent"),
        "delivered": _("delivered"),
        "deferred": _("deferred"),
        "bounced": _("bounced"),
        "dropped": _("dropped"),
        "unconfirmed": _("no confirmation"),
        "complained": _("complained"),
        "unsubscribed": _("unsubscribed"),
        "failed": _("failed"),
        "unknown": _("unknown"),
    }
    table = Table(title=title)
    table.add_column(_("Locale"))
    for column in events.DELIVERY_COLUMNS:
        table.add_column(labels[column], justify="right")
    for code, row in report["locales"].items():
        table.add_row(
            f"{code} ({REGISTRY[code].native_name})", *(str(row[c]) for c in events.DELIVERY_COLUMNS)
        )
    table.add_row(_("all"), *(str(report["total"][c]) for c in events.DELIVERY_COLUMNS), style="bold")
    return table


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
        out.print(_report_table(_("Mailout %(id)d: results") % {"id": mailout["id"]}, mailout))
    table = Table(title=_("Letters per official"))
    table.add_column(_("Official"))
    for column in ("queued", "sent", "failed", "unknown"):
        table.add_column(_message_state_label(column), justify="right")
    for target, counts in report["letters"].items():
        table.add_row(plain(target), *(str(counts[c]) for c in ("queued", "sent", "failed", "unknown")))
    out.print(table)


suppressions_app = typer.Typer(
    help=_("List, add, remove and export suppressed addresses."), no_args_is_help=True
)
app.add_typer(suppressions_app, name="suppressions")
ScopeOption = Annotated[str, typer.Option("--scope", help=_("supporter or target"))]


@suppressions_app.command("list")
@reports_errors
def suppressions_list(as_json: JsonOption = False) -> None:
    """Every suppressed address, with its reason kept apart (unsubscribe, bounce, complaint, ...)."""
    with runtime() as rt:
        rows = events.list_suppressions(rt.db)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=_("Suppressions"))
    for header in (_("Address"), _("Scope"), _("Reason"), _("Source"), _("Since")):
        table.add_column(header)
    for row in rows:
        table.add_row(
            *(plain(row[k]) for k in ("email", "scope", "reason", "source")), row["created_at"][:16]
        )
    out.print(table)


@suppressions_app.command("add")
@reports_errors
def suppressions_add(email: str, scope: ScopeOption = "supporter") -> None:
    """Stop all mail to an address (a manual suppression)."""
    with runtime() as rt:
        added = events.add_suppression(rt.db, email, scope)
    out.print(_("Suppressed.") if added else _("Already suppressed."))


@suppressions_app.command("remove")
@reports_errors
def suppressions_remove(
    email: str,
    scope: ScopeOption = "supporter",
    reason: Annotated[str | None, typer.Option("--reason", help=_("Only this reason."))] = None,
) -> None:
    """Lift a suppression (only with the person's consent: it does not resubscribe them to alerts)."""
    with runtime() as rt:
        removed = events.remove_suppression(rt.db, email, scope, reason)
    out.print(
        ngettext("%(num)d suppression removed.", "%(num)d suppressions removed.", removed) % {"num": removed}
    )


@suppressions_app.command("export")
@reports_errors
def suppressions_export() -> None:
    """All suppressions as CSV on stdout; cells that a spreadsheet would run as formulas are neutralised."""
    with runtime() as rt:
        sys.stdout.write(events.export_suppressions_csv(events.list_suppressions(rt.db)))


# supporters: one person


@supporters_app.command("list")
@reports_errors
def supporters_list(
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment", help=_("Only these supporters: locale=ar, governorate=Basra (repeatable).")
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


# privacy


privacy_app = typer.Typer(
    help=_("Retention of personal data, and the keys that encrypt it."), no_args_is_help=True
)
app.add_typer(privacy_app, name="privacy")
keys_app = typer.Typer(help=_("Make the keys that encrypt personal data."), no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@privacy_app.command("purge")
@reports_errors
def privacy_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Only say what would go."))] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete now what the retention periods (MAILER_RETAIN_*) no longer allow us to keep."""
    with runtime() as rt:
        report = privacy.purge(rt.db, rt.retention, rt.clock(), dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, **report.as_dict()})
        return
    lines = (
        ngettext(
            "%(num)d unconfirmed letter past its link's expiry",
            "%(num)d unconfirmed letters past their link's expiry",
            report.unconfirmed_letters,
        ),
        ngettext(
            "%(num)d sent letter's words past the retention period",
            "%(num)d sent letters' words past the retention period",
            report.letter_texts,
        ),
        ngettext(
            "%(num)d letter writer who never subscribed",
            "%(num)d letter writers who never subscribed",
            report.writers_forgotten,
        ),
        ngettext(
            "%(num)d provider event's address, IP and user agent",
            "%(num)d provider events' addresses, IPs and user agents",
            report.events_scrubbed,
        ),
    )
    counts = (
        report.unconfirmed_letters,
        report.letter_texts,
        report.writers_forgotten,
        report.events_scrubbed,
    )
    out.print(_("Would be deleted:") if dry_run else _("Deleted:"))
    for line, num in zip(lines, counts, strict=True):
        out.print("  " + line % {"num": num})


@privacy_app.command("rekey")
@reports_errors
def privacy_rekey() -> None:
    """Re-encrypt every stored value under the current key (the first in MAILER_DATA_KEY)."""
    with runtime() as rt:
        result = privacy.rekey(rt.db)
    out.print(
        ngettext("%(num)d value re-encrypted.", "%(num)d values re-encrypted.", result.values)
        % {"num": result.values}
    )
    if result.retired_keys:
        out.print(
            _("No value is under key %(kids)s any more: it may be removed from MAILER_DATA_KEY.")
            % {"kids": ", ".join(result.retired_keys)}
        )


@keys_app.command("generate")
@reports_errors
def keys_generate(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help=_("Write it to this new file (mode 0600).")),
    ] = None,
) -> None:
    """A new installation key for MAILER_DATA_KEY: keep it apart from the database and its backups."""
    _write_key(vault.generate_key(), output)


@keys_app.command("rotate")
@reports_errors
def keys_rotate(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help=_("Write it to this new file (mode 0600).")),
    ] = None,
) -> None:
    """A new data key for this installation (from MAILER_DATA_KEY): put it first in MAILER_DATA_KEY,
    keep the old one after it, then run `mailer privacy rekey`."""
    _write_key(Settings.from_env().require_vault().rotated_key(), output)


@keys_app.command("public")
@reports_errors
def keys_public() -> None:
    """The write-only form of the current key, for processes that must never read personal data (the
    action pages in production): they can store a submission but not read one."""
    out.print(Settings.from_env().require_vault().public_form(), soft_wrap=True)


def _write_key(key: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(key + "\n")
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as problem:
        fail(_("%(file)s: %(reason)s") % {"file": str(output), "reason": problem.strerror})
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    err.print(_("Key written to %(file)s (readable by you only).") % {"file": str(output)})


# worker


@app.command("worker")
@reports_errors
def worker(
    concurrency: Annotated[int, typer.Option(help=_("Worker processes."))] = 2,
    queues: Annotated[str, typer.Option(help=_("Comma-separated queues to serve."))] = ",".join(QUEUES),
    loglevel: Annotated[str, typer.Option(help=_("Log level."))] = "info",
) -> None:
    """Start a Celery worker on MAILER_BROKER_URL that sends the queued batches."""
    with runtime() as rt:
        names = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in names if q not in QUEUES]
        if unknown:
            fail(
                _("unknown queue(s): %(names)s (known: %(known)s)")
                % {"names": ", ".join(unknown), "known": ", ".join(QUEUES)}
            )
        rt.backend.run_worker(names, concurrency, loglevel)


@app.command("sweep")
@reports_errors
def sweep_command(as_json: JsonOption = False) -> None:
    """Once: settle claims of dead workers, start scheduled mailouts, queue retries that are due."""
    with runtime() as rt:
        report = rt.sweep()
    if as_json:
        emit_json(report.__dict__)
        return
    out.print(
        _(
            "Swept: %(requeued)d messages back in the queue, %(unknown)d marked unknown, %(failed)d given "
            "up, %(started)d mailouts started, %(batches)d batches queued, %(finished)d mailouts finished."
        )
        % {
            "requeued": report.requeued,
            "unknown": report.unknown,
            "failed": report.failed,
            "started": len(report.started),
            "batches": report.batches,
            "finished": len(report.finished),
        }
    )


@app.command("beat")
@reports_errors
def beat(
    interval: Annotated[float, typer.Option(help=_("Seconds between two sweeps."))] = 30.0,
    loglevel: Annotated[str, typer.Option(help=_("Log level."))] = "info",
) -> None:
    """Run the scheduler that sweeps periodically (run exactly one, beside the workers)."""
    # A service: it starts even while the database is away, and every pass tries again.
    with runtime(check_schema=False) as rt:
        if rt.settings.broker_url is not None:
            rt.backend.run_beat(interval, loglevel)
            return
        logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        while True:  # the embedded default: sweep in this process
            try:
                rt.sweep()
            except Exception:  # one failed pass (the database away, a bad row) never stops the scheduler
                log.exception("the sweep failed; trying again in %s s", interval)
            time.sleep(interval)


@app.command("serve")
@reports_errors
def serve(
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_("Port to listen on."))] = 8000,
    demo_folder: Annotated[
        Path | None, typer.Option("--demo", help=_("Serve the database of `mailer demo` in this folder."))
    ] = None,
) -> None:
    """Serve the action pages (for production, run gunicorn on mailer.web.wsgi:app instead)."""
    from mailer.web import create_app

    settings = demo_settings(demo_folder) if demo_folder is not None else Settings.from_env()
    rt = Runtime(settings)
    rt.db.check_current()
    out.print(_("Action pages on http://%(host)s:%(port)d/ (Ctrl-C stops)") % {"host": host, "port": port})
    create_app(rt).run(host=host, port=port, debug=False)


# demo


@app.command("demo")
@reports_errors
def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help=_("Folder for the demo's database and outbox."))
    ] = Path("mailer-demo"),
    no_launch: Annotated[
        bool, typer.Option("--no-launch", help=_("Prepare the database, then stop."))
    ] = False,
) -> None:
    """Load the seed campaign and demo supporters, then send the mailout into the outbox."""
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
            status = _watch(rt, result.mailout_id)
        _print_launch(result, status)
        _print_demo_samples(rt, status)
        out.print(_("Done in %(seconds).1f s.") % {"seconds": time.monotonic() - started})
        out.print(
            _("Now write a letter as a supporter would: mailer serve --demo %(path)s") % {"path": folder}
        )
    finally:
        rt.close()


def _print_demo_samples(rt: Runtime, status: mailouts.MailoutStatus) -> None:
    samples = mailouts.sample_provider_ids(rt.db, status.id)
    table = Table(title=_("Messages per language"))
    table.add_column(_("Locale"))
    table.add_column(_("Recipients"), justify="right")
    table.add_column(_("Sent"), justify="right")
    for code, counts in status.by_locale.items():
        table.add_row(
            f"{code} ({REGISTRY[code].native_name})", str(sum(counts.values())), str(counts.get("sent", 0))
        )
    out.print(table)
    if rt.settings.transport == "outbox" and samples:
        out.print(_("One message per language, to open in a mail client:"))
        for code, name in sorted(samples.items(), key=lambda item: list(REGISTRY).index(item[0])):
            out.print(f"  {code}: {rt.settings.outbox_dir / name}", markup=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``mailer`` command."""
    try:
        app()
    except MailerError as error:  # errors raised while options are parsed
        err.print(_("error: %(reason)s") % {"reason": error.render(interface_translations())}, markup=False)
        sys.exit(1)
