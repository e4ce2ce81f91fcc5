"""`mailer privacy` and `mailer keys`: retention, re-encryption and the keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mailer import privacy, vault
from mailer.cli.common import (
    JsonOption,
    emit_json,
    err,
    fail,
    out,
    reports_errors,
    runtime,
)
from mailer.cli.localized import App
from mailer.config import Settings
from mailer.errors import N_
from mailer.i18n import _, ngettext

privacy_app = App(help=N_("Retention of personal data, and the keys that encrypt it."))
keys_app = App(help=N_("Make the keys that encrypt personal data."))


@privacy_app.command(
    "purge", help=N_("Delete now what the retention periods (MAILER_RETAIN_*) no longer allow us to keep.")
)
@reports_errors
def privacy_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help=N_("Only say what would go."))] = False,
    as_json: JsonOption = False,
) -> None:
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
        ngettext(
            "%(num)d message that came back (a reply, a bounce), as it arrived",
            "%(num)d messages that came back (replies, bounces), as they arrived",
            report.inbound_deleted,
        ),
        ngettext(
            "%(num)d official's answer kept for its letter's writer",
            "%(num)d officials' answers kept for their letters' writers",
            report.replies_deleted,
        ),
    )
    counts = (
        report.unconfirmed_letters,
        report.letter_texts,
        report.writers_forgotten,
        report.events_scrubbed,
        report.inbound_deleted,
        report.replies_deleted,
    )
    out.print(_("Would be deleted:") if dry_run else _("Deleted:"))
    for line, num in zip(lines, counts, strict=True):
        out.print("  " + line % {"num": num})


@privacy_app.command(
    "rekey", help=N_("Re-encrypt every stored value under the current key (the first in MAILER_DATA_KEY).")
)
@reports_errors
def privacy_rekey() -> None:
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


@keys_app.command(
    "generate",
    help=N_("A new installation key for MAILER_DATA_KEY: keep it apart from the database and its backups."),
)
@reports_errors
def keys_generate(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help=N_("Write it to this new file (mode 0600).")),
    ] = None,
) -> None:
    _write_key(vault.generate_key(), output)


@keys_app.command(
    "rotate",
    help=N_(
        "A new data key for this installation (from MAILER_DATA_KEY): put it first in MAILER_DATA_KEY, "
        "keep the old one after it, then run `mailer privacy rekey`."
    ),
)
@reports_errors
def keys_rotate(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help=N_("Write it to this new file (mode 0600).")),
    ] = None,
) -> None:
    _write_key(Settings.from_env().require_vault().rotated_key(), output)


@keys_app.command(
    "public",
    help=N_(
        "The write-only form of the current key, for processes that must never read personal data "
        "(the action pages in production): they can store a submission but not read one."
    ),
)
@reports_errors
def keys_public() -> None:
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
