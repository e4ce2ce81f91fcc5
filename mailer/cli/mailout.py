"""`mailer mailout`: launch, follow, pause, resume, cancel, test and report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from email_validator import EmailNotValidError, validate_email
from rich.table import Column

from mailer import campaigns, events, mailouts, sending
from mailer.cli.common import (
    JsonOption,
    WideOption,
    emit_json,
    err,
    fail,
    out,
    plain,
    reports_errors,
    runtime,
)
from mailer.cli.localized import App
from mailer.cli.tables import (
    fitted_table,
    follow_mailout,
    message_state_label,
    print_launch,
    report_table,
    status_table,
)
from mailer.errors import N_, LocaleError
from mailer.i18n import _, interface_translations, ngettext
from mailer.locales import REGISTRY, get_locale
from mailer.transports import Mailbox

mailout_app = App(help=N_("Launch mailouts and follow their progress."))


@mailout_app.command(
    "launch",
    help=N_(
        "Launch the campaign's alert to a segment; launching the same mailout again sends nothing twice."
    ),
)
@reports_errors
def mailout_launch(
    slug: Annotated[str, typer.Argument(help=N_("The campaign to send."))],
    segment: Annotated[
        list[str] | None,
        typer.Option(
            "--segment",
            help=N_(
                "KEY=VALUE, such as locale=ar, governorate=Basra or tag=lawyers; repeat a key to widen, add keys to narrow."
            ),
        ),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            "--fallback", help=N_("FROM=TO: send readers of FROM the content in TO, such as ckb=en.")
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help=N_("Start later, at a time with its UTC offset, such as 2026-12-01T09:00+03:00.")
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=N_("Count the recipients per locale; create and send nothing."))
    ] = False,
    as_json: JsonOption = False,
) -> None:
    parsed_segment = mailouts.parse_segment(segment or [])
    fallbacks = mailouts.parse_fallbacks(fallback or [])
    start = _parse_time(at) if at else None
    with runtime() as rt:
        rt.check_can_send()  # before anything is written: a launch that cannot send leaves nothing behind
        plan = mailouts.plan_mailout(rt.db, slug, parsed_segment, fallbacks)
        if dry_run:
            _print_plan(plan, as_json)
            _warn_unreviewed(plan)
            return
        _warn_unreviewed(plan)
        result = mailouts.launch_mailout(
            rt.db, rt.backend, slug, parsed_segment, fallbacks, batch_size=rt.settings.batch_size, at=start
        )
        status = mailouts.mailout_status(rt.db, result.mailout_id)
    if as_json:
        emit_json({**status.to_json(), "created": result.created, "new_messages": result.new_messages})
        return
    print_launch(result, status)


def _warn_unreviewed(plan: mailouts.LaunchPlan) -> None:
    """Said before anything is sent (on stderr, so that --json stays clean): drafts go to real people."""
    if plan.draft_locales:
        err.print(
            _("Warning: the texts in %(locales)s are drafts that no native speaker has reviewed.")
            % {"locales": ", ".join(plan.draft_locales)}
        )
    if plan.unreviewed_names:
        err.print(
            _("Warning: the campaign has not confirmed the spelling of %(names)s (names: in its manifest).")
            % {"names": ", ".join(plan.unreviewed_names)}
        )


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
    table = fitted_table(
        _("Dry run of %(campaign)s: nothing is created or sent") % {"campaign": plan.campaign},
        _("Locale"),
        Column(_("Recipients"), justify="right"),
        _("Content sent"),
    )
    for code, count in plan.recipients.items():
        table.add_row(f"{code} ({REGISTRY[code].native_name})", str(count), plan.content_locales[code])
    table.add_row(_("all"), str(plan.total), "", style="bold")
    out.print(table)
    if plan.existing_mailout is not None:
        out.print(
            _("Mailout %(id)d exists for this segment; %(num)d of its messages are already in the ledger.")
            % {"id": plan.existing_mailout, "num": plan.already_in_ledger}
        )


@mailout_app.command(
    "pause", help=N_("Stop handing messages to the provider; resume goes on where it stopped.")
)
@reports_errors
def mailout_pause(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=N_("The mailout's number."))],
) -> None:
    with runtime() as rt:
        mailouts.pause_mailout(rt.db, mailout_id)
        out.print(status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command("resume", help=N_("Go on with a paused mailout, exactly where it stopped."))
@reports_errors
def mailout_resume(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=N_("The mailout's number."))],
) -> None:
    with runtime() as rt:
        mailouts.resume_mailout(rt.db, rt.backend, mailout_id, batch_size=rt.settings.batch_size)
        out.print(status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command(
    "cancel", help=N_("Cancel for good: once this returns, nothing more of the mailout reaches the provider.")
)
@reports_errors
def mailout_cancel(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=N_("The mailout's number."))],
) -> None:
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
        out.print(status_table(mailouts.mailout_status(rt.db, mailout_id)))


@mailout_app.command("test", help=N_("Send one test message per locale to one address, outside any mailout."))
@reports_errors
def mailout_test(
    slug: Annotated[str, typer.Argument(help=N_("The campaign to send."))],
    to: Annotated[str, typer.Option("--to", help=N_("The address that receives the test messages."))],
    locale: Annotated[
        list[str] | None,
        typer.Option("--locale", help=N_("A locale to send (repeat); all enabled ones by default.")),
    ] = None,
) -> None:
    address = _test_address(to)
    with runtime() as rt:
        codes = (
            [_locale_option(code) for code in locale] if locale else campaigns.enabled_locales(rt.db, slug)
        )
        results = sending.send_test(rt.db, rt.transport, rt.renderer, rt.sender, slug, address, codes)
    table = fitted_table(
        _("Test messages to %(address)s") % {"address": address.addr_spec},
        _("Locale"),
        _("Result"),
        _("Detail"),
    )
    for row in results:
        table.add_row(
            f"{row.locale} ({REGISTRY[row.locale].native_name})",
            message_state_label(row.status),
            plain(row.detail or ""),
        )
    out.print(table)
    if any(row.status != "sent" for row in results):
        raise typer.Exit(1)


def _test_address(text: str) -> Mailbox:
    try:
        normalized = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as error:
        fail(_("--to %(value)s is not a valid address: %(reason)s") % {"value": text, "reason": error})
    return Mailbox(addr_spec=normalized)


def _locale_option(code: str) -> str:
    try:
        return get_locale(code).code
    except LocaleError as error:
        fail(error.render(interface_translations()))


@mailout_app.command("status", help=N_("Counts by state and by locale."))
@reports_errors
def mailout_status_command(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=N_("The mailout's number."))],
    watch: Annotated[bool, typer.Option("--watch", help=N_("Follow the mailout until it stops."))] = False,
    as_json: JsonOption = False,
) -> None:
    with runtime() as rt:
        status = (
            follow_mailout(rt, mailout_id, quiet=as_json)
            if watch
            else mailouts.mailout_status(rt.db, mailout_id)
        )
    if as_json:
        emit_json(status.to_json())
    else:
        out.print(status_table(status))


@mailout_app.command(
    "report",
    help=N_(
        "Results per language: the ledger beside what the provider reported (deliveries, bounces, complaints)."
    ),
)
@reports_errors
def mailout_report(
    mailout_id: Annotated[int, typer.Argument(metavar="ID", help=N_("The mailout's number."))],
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    with runtime() as rt:
        report = events.mailout_report(rt.db, mailout_id)
    if as_json:
        emit_json(report)
        return
    out.print(report_table(_("Mailout %(id)d: results") % {"id": mailout_id}, report, wide))
