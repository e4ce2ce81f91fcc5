"""The command line on a coordinator's terminal: help in their language, tables that fit 80 columns with
every slug, address and status whole."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.cells import cell_len
from rich.text import Text
from typer.core import TyperArgument, TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from mailer.cli import app
from mailer.cli.common import out
from mailer.i18n import translations
from mailer.resources import demo_dir

TARGETS = ("ar", "ckb", "kmr")
LONG_ADDRESS = "a.rather.long.address.of.a.lawyer@bar-association.example.org"
SUPPRESSED = "a.rather.long.address.of.a.judge@judicial-council.example.org"


def screen(output: str) -> list[str]:
    """The lines as a terminal shows them (without colour codes, should the environment force them)."""
    return Text.from_ansi(output).plain.splitlines()


def words(text: str) -> str:
    """Text with a help panel's borders and line breaks taken out, so that a wrapped sentence reads whole."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def pages() -> Iterator[tuple[list[str], set[str]]]:
    """Each command's path and the English texts its help page shows: its help, its options' and
    arguments' help, its subcommands' help and Typer's own words."""

    def walk(command: object, path: list[str]) -> Iterator[tuple[list[str], set[str]]]:
        params = getattr(command, "params", [])
        texts = {getattr(command, "help", None), *(getattr(p, "help", None) for p in params)}
        texts |= {"Usage:", "Options", "Show this message and exit."}
        if any(isinstance(p, TyperArgument) for p in params):
            texts.add("Arguments")
        if any(getattr(p, "required", False) for p in params):
            texts.add("[required]")
        if isinstance(command, TyperGroup):
            texts.add("Commands")
            texts |= {sub.help for sub in command.commands.values()}
        yield path, {words(text) for text in texts if text}
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    yield from walk(get_command(app), [])


PAGES = list(pages())


def help_page(path: list[str], code: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"MAILER_LANGUAGE": code, "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = screen(result.output)
    assert max(map(cell_len, lines)) <= 80, [line for line in lines if cell_len(line) > 80]
    return words("\n".join(lines))


def test_every_help_page_shows_its_english_texts_in_english() -> None:
    """The check below looks for the right sentences: in English every one of them is on its page."""
    assert len(PAGES) > 40
    for path, texts in PAGES:
        page = help_page(path, "en")
        assert sorted(text for text in texts if text not in page) == [], path


@pytest.mark.parametrize("code", TARGETS)
def test_every_help_page_is_in_the_users_language(code: str) -> None:
    """`mailer --help` and every command's: no help text, option help or word of Typer's left in English."""
    usage = translations(code).gettext("Usage:")
    assert usage != "Usage:", f"{code}: the catalog has no translation of the help pages yet"
    for path, texts in PAGES:
        page = help_page(path, code)
        assert usage in page, path
        english = sorted(text for text in texts if text in page)
        assert not english, (" ".join(["mailer", *path]), english)


def run(args: list[str], env: dict[str, str], columns: int = 80) -> list[str]:
    """A command in this process, as on a terminal of ``columns`` (MAILER_* of the developer's shell unset)."""
    unset: dict[str, str | None] = {key: None for key in os.environ if key.startswith("MAILER_")}
    out.width = columns  # made at import, it would keep a COLUMNS the developer's shell exported
    result = CliRunner().invoke(app, args, env=unset | env | {"COLUMNS": str(columns)})
    assert result.exit_code == 0, (args, result.output)
    return screen(result.stdout)


@pytest.fixture
def installation(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A campaign, the demo's supporters and officials (slugs up to 49 characters), one long address, a
    finished mailout and a suppression."""
    people = tmp_path / "people.csv"
    people.write_text(
        (demo_dir() / "supporters.csv").read_text(encoding="utf-8")
        + f"{LONG_ADDRESS},نور الهدى عبد الرحمن,ar,Basra,lawyers\n",
        encoding="utf-8",
    )
    for args in (
        ["db", "upgrade"],
        ["campaign", "load", str(demo_dir() / "campaigns" / "protect-hrds-iraq")],
        ["targets", "import", str(demo_dir() / "officials.yaml")],
        ["supporters", "import", str(people)],
        ["mailout", "launch", "protect-hrds-iraq", "--segment", "locale=kmr"],
        ["suppressions", "add", SUPPRESSED],
    ):
        run(args, env)
    return env


def assert_fits(lines: list[str], *values: str) -> None:
    """At most 80 cells a line, nothing ended with an ellipsis, and each value whole: every word of it on
    one line (a label of two words may wrap between them; a slug or an address never breaks)."""
    assert max(map(cell_len, lines)) <= 80, [line for line in lines if cell_len(line) > 80]
    assert not any("…" in line for line in lines)
    for value in values:
        for word in value.split():
            assert any(word in line for line in lines), (word, "\n".join(lines))


@pytest.mark.parametrize("code", ["en", "ar"])
def test_tables_fit_80_columns_with_every_value_whole(
    installation: dict[str, str], tmp_path: Path, code: str
) -> None:
    env = installation | {"MAILER_LANGUAGE": code}
    _ = translations(code).gettext
    officials = yaml.safe_load((demo_dir() / "officials.yaml").read_text(encoding="utf-8"))
    slugs = [official["slug"] for official in officials]
    assert max(map(len, slugs)) > 40
    results = [_(label) for label in ("sent", "delivered", "bounced", "complained", "unsubscribed")]

    assert_fits(run(["targets", "list"], env), *slugs, "active")
    assert_fits(run(["campaign", "list"], env), "protect-hrds-iraq")
    assert_fits(run(["campaign", "check", "protect-hrds-iraq"], env), _("yes"), _("Alert"))
    assert_fits(run(["supporters", "list"], env), LONG_ADDRESS, "ronahi.osman@example.net")
    assert_fits(run(["suppressions", "list"], env), SUPPRESSED)
    assert_fits(run(["mailout", "status", "1"], env), _("queued"), _("sent"), _("finished"))
    assert_fits(run(["mailout", "report", "1"], env), *results)
    assert_fits(run(["campaign", "report", "protect-hrds-iraq"], env), *results, _("failed"))
    assert_fits(
        run(["mailout", "launch", "protect-hrds-iraq", "--dry-run"], env),
        "ckb (کوردیی ناوەندی)",
        _("Content sent"),
    )
    imported = run(["supporters", "import", str(tmp_path / "people.csv")], env)
    assert_fits(imported, _("Duplicates merged"), _("Rows read"))


def test_wide_shows_the_columns_that_80_columns_leave_out(installation: dict[str, str]) -> None:
    env = installation | {"MAILER_LANGUAGE": "ar"}
    for command, extra in [
        (["targets", "list"], ["Governorate", "Letter language"]),
        (["supporters", "list"], ["Governorate", "Tags"]),
        (["suppressions", "list"], ["Scope", "Source"]),
        (["campaign", "list"], ["Translation"]),
        (
            ["mailout", "report", "1"],
            ["queued", "deferred", "dropped", "no confirmation", "failed", "unknown"],
        ),
        (["campaign", "report", "protect-hrds-iraq"], ["queued", "no confirmation", "unknown"]),
    ]:
        headers = [translations("ar").gettext(header) for header in extra]
        narrow = "\n".join(run(command, env))
        wide = "\n".join(run([*command, "--wide"], env, columns=200))
        assert [h for h in headers if h in narrow] == [], command
        assert [h for h in headers if h in wide] == headers, command
