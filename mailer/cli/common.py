"""What every command shares: the consoles, errors as one line, the runtime, JSON output."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from mailer.config import Settings
from mailer.demo_setup import demo_settings
from mailer.errors import N_, ImportRowError, MailerError
from mailer.fields import forbidden_character
from mailer.i18n import _, interface_translations
from mailer.runtime import Runtime

log = logging.getLogger("mailer")
P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False)
# Reasons go to stderr unwrapped: one reason, one line, whatever the terminal's width.
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help=N_("Print one JSON document on stdout."))]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help=N_("Show every column, even if the table is then wider than 80 characters.")),
]


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
def runtime(check_schema: bool = True, demo: Path | None = None) -> Iterator[Runtime]:
    """The installation the environment describes, or the demo in a folder (``--demo``)."""
    rt = Runtime(demo_settings(demo) if demo is not None else Settings.from_env())
    try:
        if check_schema:
            rt.db.check_current()
        yield rt
    finally:
        rt.close()


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


def print_rejected(file: str, rejected: list[ImportRowError], template: str) -> None:
    """One line on stderr per rejected row (markup off: the reasons quote the user's data)."""
    for error in rejected:
        reason = error.render_reason(interface_translations())
        values = {"file": file, "row": error.row, "field": error.field, "reason": reason}
        err.print(plain(template % values))


def translation_status_label(status: str) -> str:
    labels = {
        "source": _("source text"),
        "draft": _("draft: needs native review"),
        "reviewed": _("reviewed"),
    }
    return labels.get(status, status)
