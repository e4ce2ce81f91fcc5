"""Tables and labels that several command groups print (a mailout's status, its results).

Every table is made by :func:`fitted_table`, for an 80-column terminal (an SSH session, a laptop split in two)
in any of the four languages: listings show the columns one needs and take ``--wide`` for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from mailer import events, mailouts
from mailer.cli.common import (
    out,
    plain,
)
from mailer.errors import MailerError
from mailer.i18n import _, interface_translations, ngettext
from mailer.locales import REGISTRY
from mailer.runtime import Runtime

#: The results a report shows without ``--wide``: what the provider says became of the messages.
REPORT_COLUMNS = ("sent", "delivered", "bounced", "complained", "unsubscribed")


def fitted_table(title: str | Text, *columns: str | Column, caption: Text | None = None) -> Table:
    """A table whose cells fold onto a next line when their column is too narrow: Rich's default ends
    them with an ellipsis, and "queu…" or a slug cut short can neither be read nor copied."""
    table = Table(*columns, title=title, caption=caption)
    for column in table.columns:
        column.overflow = "fold"
    return table


def whole(header: str, values: Iterable[str]) -> Column:
    """A column of values one copies into the next command (slugs, addresses): as wide as its longest
    value, so that the other columns wrap first (folded, never cut, if even that cannot fit)."""
    return Column(header, width=max([cell_len(header), *(cell_len(value) for value in values)]))


def status_table(status: mailouts.MailoutStatus) -> Table:
    title = _("Mailout %(id)d (%(campaign)s): %(status)s") % {
        "id": status.id,
        "campaign": status.campaign,
        "status": mailout_state_label(status.status),
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
    shown = [s for s in mailouts.MESSAGE_STATES if status.counts.get(s) or s in ("queued", "sent")]
    table = fitted_table(
        title,
        _("Locale"),
        *(Column(message_state_label(state), justify="right") for state in shown),
        caption=caption,
    )
    for code, counts in status.by_locale.items():
        table.add_row(f"{code} ({REGISTRY[code].native_name})", *(str(counts.get(s, 0)) for s in shown))
    table.add_row(_("all"), *(str(status.counts.get(s, 0)) for s in shown), style="bold")
    return table


def message_state_label(state: str) -> str:
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


def mailout_state_label(state: str) -> str:
    labels = {
        "draft": _("draft"),
        "scheduled": _("scheduled"),
        "running": _("running"),
        "paused": _("paused"),
        "finished": _("finished"),
        "cancelled": _("cancelled"),
    }
    return labels.get(state, state)


def report_table(title: str, report: dict[str, Any], wide: bool = False) -> Table:
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
    shown = [c for c in events.DELIVERY_COLUMNS if wide or c in REPORT_COLUMNS]
    table = fitted_table(title, _("Locale"), *(Column(labels[c], justify="right") for c in shown))
    for code, row in report["locales"].items():
        table.add_row(f"{code} ({REGISTRY[code].native_name})", *(str(row[c]) for c in shown))
    table.add_row(_("all"), *(str(report["total"][c]) for c in shown), style="bold")
    return table


def follow_mailout(rt: Runtime, mailout_id: int, quiet: bool = False) -> mailouts.MailoutStatus:
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
                        "status": mailout_state_label(status.status),
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


def print_launch(result: mailouts.LaunchResult, status: mailouts.MailoutStatus) -> None:
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
    out.print(status_table(status))
