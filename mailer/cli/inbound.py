"""`mailer inbound`: take a message from a mail server's pipe, read what arrived, list and read replies."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mailer import inbound
from mailer.cli.common import (
    JsonOption,
    emit_json,
    err,
    fail,
    out,
    plain,
    reports_errors,
    runtime,
)
from mailer.cli.localized import App
from mailer.cli.tables import fitted_table
from mailer.errors import N_, MailerError
from mailer.i18n import _, interface_translations

inbound_app = App(help=N_("Mail that comes back: replies from officials, bounces, emailed unsubscribes."))

#: sysexits.h: what a mail server's pipe transport understands (bounce the message, or try again later).
EX_DATAERR = 65
EX_TEMPFAIL = 75

KIND_LABELS = {
    "reply": N_("reply"),
    "auto_reply": N_("automatic answer"),
    "bounce": N_("bounce"),
    "unsubscribe": N_("unsubscribe"),
    "forged": N_("forged tag"),
    "unmatched": N_("not ours"),
    "unreadable": N_("unreadable"),
}


def kind_label(kind: str) -> str:
    return _(KIND_LABELS[kind]) if kind in KIND_LABELS else kind


@inbound_app.command(
    "receive",
    help=N_(
        "Store one message for the next sweep (from a file, or standard input for a mail server's pipe). "
        "Exits 65 for what is not a message and 75 when it should be delivered again later."
    ),
)
def inbound_receive(
    file: Annotated[
        Path | None, typer.Argument(help=N_("The message (.eml); standard input when left out."))
    ] = None,
) -> None:
    try:
        raw = file.read_bytes() if file is not None else sys.stdin.buffer.read()
    except OSError as error:
        fail(_("%(file)s cannot be read: %(reason)s") % {"file": file, "reason": error.strerror or error})
    try:
        with runtime() as rt:
            stored = rt.receive_inbound(raw, "pipe")
    except inbound.InboundRejected as refused:
        err.print(_("error: %(reason)s") % {"reason": refused.render(interface_translations())}, markup=False)
        raise typer.Exit(EX_DATAERR) from None
    except MailerError as error:
        err.print(_("error: %(reason)s") % {"reason": error.render(interface_translations())}, markup=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    except Exception as error:  # the database away: the mail server keeps the message and tries again
        err.print(_("error: %(reason)s") % {"reason": type(error).__name__}, markup=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    out.print(_("Stored.") if stored is not None else _("Already stored."))


@inbound_app.command(
    "read", help=N_("Read the mailbox (when MAILER_IMAP_URL is set) and act on every message stored, now.")
)
@reports_errors
def inbound_read(as_json: JsonOption = False) -> None:
    with runtime() as rt:
        taken = rt.read_mailbox()
        processed = rt.process_inbound()
    if as_json:
        emit_json(
            {
                "from_mailbox": taken,
                "kinds": processed.kinds,
                "suppressions": processed.suppressions,
                "notices": processed.notices,
            }
        )
        return
    out.print(_("%(num)d messages taken from the mailbox.") % {"num": taken})
    for kind, number in sorted(processed.kinds.items()):
        out.print(f"{kind_label(kind)}: {number}")
    out.print(
        _("%(suppressions)d addresses suppressed, %(notices)d writers told of a reply.")
        % {"suppressions": processed.suppressions, "notices": processed.notices}
    )


@inbound_app.command("replies", help=N_("The latest replies and automatic answers to a campaign's letters."))
@reports_errors
def inbound_replies(slug: str, as_json: JsonOption = False) -> None:
    with runtime() as rt:
        rows = inbound.campaign_replies(rt.db, slug)
    if as_json:
        emit_json(
            [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "received_at": r.received_at.isoformat(),
                    "official": r.official,
                    "letter": r.letter_id,
                }
                for r in rows
            ]
        )
        return
    table = fitted_table(_("Replies"), "#", _("Received"), _("Official"), _("Kind"))
    for r in rows:
        table.add_row(
            str(r.id), r.received_at.strftime("%Y-%m-%d %H:%M"), plain(r.official or ""), kind_label(r.kind)
        )
    out.print(table)


@inbound_app.command("show", help=N_("An official's reply as its writer reads it (sender, subject, text)."))
@reports_errors
def inbound_show(reply_id: int, as_json: JsonOption = False) -> None:
    with runtime() as rt:
        reply = inbound.coordinator_reply(rt.db, reply_id)
    if reply is None:
        fail(
            _("there is no reply %(id)d, or its text was deleted after the retention period")
            % {"id": reply_id}
        )
    if as_json:
        emit_json(reply.__dict__)
        return
    out.print(plain(f"{reply.sender_name} <{reply.sender_email}>"))
    out.print(plain(reply.subject))
    out.print(plain(reply.date))
    out.print()
    out.print(plain(reply.answer))
