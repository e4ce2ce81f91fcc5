"""Help pages in the interface language: every command group of ``mailer`` is an :class:`App`.

Typer reads ``help=`` when a module is imported and Click prints it much later, so a help text written as
``_("...")`` would be frozen in whatever language the import happened to see, and docstrings are never
extracted at all. So the texts are marked with ``N_`` (``mailer i18n extract`` collects them like any other
string) and translated here, in one place, when a help page is printed: the command's own help, its options
and arguments, and the one-line help of each subcommand a group lists.

Typer's own words need the same care. This Typer vendors Click without gettext, and Typer computes its panel
titles and ``[required]`` once, at import, through the stdlib's ``gettext`` in the domain ``messages``, which
looks for system catalogs and never finds ours. Rather than install a global stdlib translation for a
handful of words (it would outlive the help page and touch every other user of that domain), they are
translated from our catalog: "Usage:" through the usage line's ``prefix``, "Show this message and exit." as
the help option's help like any other, and the panel titles, ``[required]`` and ``[default: …]`` by setting
Typer's constants for the time the page is printed, then putting them back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer import rich_utils
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from mailer.errors import N_
from mailer.i18n import _

if TYPE_CHECKING:  # Typer's Click: only the types of the methods overridden here
    from typer._click import Command, Context, HelpFormatter

F = TypeVar("F", bound=Callable[..., Any])

#: The help option's text as Typer writes it; our catalog translates it like any other option's help.
HELP_OPTION = N_("Show this message and exit.")


def _typer_words() -> dict[str, str]:
    """Typer's constants in ``typer.rich_utils`` that a help page shows, in the interface language."""
    return {
        "ARGUMENTS_PANEL_TITLE": _("Arguments"),
        "OPTIONS_PANEL_TITLE": _("Options"),
        "COMMANDS_PANEL_TITLE": _("Commands"),
        # Translators: after an argument's help, for one that must be given.
        "REQUIRED_LONG_STRING": "[" + _("required") + "]",
        # Translators: after an option's help; the value is the option's default, such as "info".
        "DEFAULT_STRING": "[" + _("default: %(value)s") % {"value": "{}"} + "]",
    }


@contextmanager
def _typer_words_translated() -> Iterator[None]:
    words = _typer_words()
    saved = {name: getattr(rich_utils, name) for name in words}
    for name, word in words.items():
        setattr(rich_utils, name, word)
    try:
        yield
    finally:
        for name, word in saved.items():
            setattr(rich_utils, name, word)


def _translate_help(command: Command, ctx: Context) -> None:
    """Put the texts this help page shows into the interface language (once: a page is printed once)."""
    shown = [command]
    if isinstance(command, TyperGroup):
        shown += [sub for name in command.list_commands(ctx) if (sub := command.get_command(ctx, name))]
    for item in shown:
        item.help = _(item.help) if item.help else item.help
        item.short_help = _(item.short_help) if item.short_help else item.short_help
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption | TyperArgument) and param.help:
            param.help = _(param.help)


def _write_usage(command: Command, ctx: Context, formatter: HelpFormatter) -> None:
    pieces = command.collect_usage_pieces(ctx)
    formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=_("Usage:") + " ")


class LocalizedCommand(TyperCommand):
    """A command whose help page is in the interface language."""

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_usage(self, ctx, formatter)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        _translate_help(self, ctx)
        with _typer_words_translated():
            super().format_help(ctx, formatter)


class LocalizedGroup(TyperGroup):
    """A command group whose help page, with its list of commands, is in the interface language."""

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_usage(self, ctx, formatter)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        _translate_help(self, ctx)
        with _typer_words_translated():
            super().format_help(ctx, formatter)


class App(typer.Typer):
    """A command group of ``mailer``: its help, and that of its commands, is printed in the interface
    language; a group run without a command shows its help."""

    def __init__(self, *, help: str | None = None, **options: Any) -> None:
        super().__init__(cls=LocalizedGroup, help=help, no_args_is_help=True, **options)

    def command(self, name: str | None = None, **options: Any) -> Callable[[F], F]:
        """Register a command (mark its ``help=`` with ``N_``: it is translated when printed)."""
        return super().command(name, cls=LocalizedCommand, **options)
