"""The glossary is followed: each term has one word per language in the catalogs, and the words to avoid
appear nowhere in the catalogs, the seed campaign or the officials' directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from mailer.resources import demo_dir

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "translations" / "GLOSSARY.md"
CODES = ("ar", "ckb", "kmr")
#: Where an English term means something else ("letters, digits": of the alphabet).
OTHER_SENSES = ("letters, digits", "letters other than", "letters and digits")
#: What is not prose: placeholders, commands, KEY=VALUE, column lists, YAML keys, option names.
NOT_PROSE = re.compile(
    r"%\([a-z_]+\)[sd]|`[^`]*`|\bmailer(?: [a-z-]+)+|\S*=\S*|\{[^}]*\}|\b[a-z_]+(?:, ?[a-z_\[\]]+){2,}|--?[a-z-]+|\w*_\w*"
)


def table(heading: str) -> list[list[str]]:
    """The rows of the Markdown table under a heading of the glossary, without its header."""
    text = GLOSSARY.read_text(encoding="utf-8").split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def catalog(code: str) -> list[tuple[str, tuple[str, ...]]]:
    with (ROOT / "translations" / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        entries = read_po(handle, locale=code)
    return [
        (
            m.id[0] if isinstance(m.id, tuple) else m.id,
            m.string if isinstance(m.string, tuple) else (m.string,),
        )
        for m in entries
        if m.id
    ]


TERMS = table("Terms")
AVOID = table("Words to avoid")


def test_the_glossary_has_every_language_for_every_term() -> None:
    assert len(TERMS) >= 10
    for row in TERMS:
        assert all(row[1:4]), row


@pytest.mark.parametrize("code", CODES)
def test_every_catalog_entry_uses_the_glossary_word(code: str) -> None:
    column = 1 + CODES.index(code)
    wrong = []
    for english, *words in TERMS:
        stems = [stem.strip().lower() for stem in words[column - 1].split(" / ")]
        term = re.compile(rf"\b{re.escape(english)}", re.IGNORECASE)
        for msgid, strings in catalog(code):
            if any(sense in msgid for sense in OTHER_SENSES):
                continue
            if not term.search(NOT_PROSE.sub(" ", msgid)):
                continue
            for string in strings:
                if not any(stem in string.lower() for stem in stems):
                    wrong.append(f"{english} -> {stems[0]}: {msgid!r} = {string!r}")
    assert not wrong, "\n".join(wrong)


def _seed_texts(code: str) -> list[tuple[str, str]]:
    folder = demo_dir() / "campaigns" / "protect-hrds-iraq"
    texts = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob(f"*.{code}.md"))]
    texts.append(("campaign.yaml", (folder / "campaign.yaml").read_text(encoding="utf-8")))
    texts.append(("officials.yaml", (demo_dir() / "officials.yaml").read_text(encoding="utf-8")))
    return texts


@pytest.mark.parametrize("code", CODES)
def test_no_word_to_avoid_in_the_catalogs_or_the_seed(code: str) -> None:
    found = []
    for language, avoid, instead, _why in AVOID:
        if language != code:
            continue
        for msgid, strings in catalog(code):
            found += [f"catalog {msgid!r}: {avoid} (write {instead})" for s in strings if avoid in s]
        found += [f"{name}: {avoid} (write {instead})" for name, text in _seed_texts(code) if avoid in text]
    assert not found, "\n".join(found)
