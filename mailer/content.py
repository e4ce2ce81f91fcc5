"""Coordinator content: Markdown with a fixed set of placeholders. Never run as a template.

Placeholders (``{first_name}``) are swapped for inert ASCII markers before Markdown runs, so that they
survive escaping, links and CSS inlining unchanged; each recipient's values replace the markers last,
escaped for the part they land in. The same markers can serve as a provider's substitution tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

#: Every placeholder content may use, and what it stands for.
PLACEHOLDERS: dict[str, str] = {
    "first_name": "the recipient's first name",
    "name": "the recipient's full name",
    "governorate": "the recipient's governorate, in the recipient's language",
    "action_url": "the link to the campaign's action page, signed for this recipient",
    "unsubscribe_url": "the recipient's one-click unsubscribe link",
}
_ORDER = tuple(PLACEHOLDERS)
_BRACES = re.compile(r"\{([^{}\n]*)\}")
_MARKER = re.compile(r"MAILERPH(\d\d)")
RLM = "\u200f"
# A run of Latin letters (with the digits and punctuation inside it) in right-to-left text.
_LATIN_RUN = re.compile(
    r"[A-Za-z\u00c0-\u024f][A-Za-z0-9\u00c0-\u024f .,'’&/-]*[A-Za-z0-9\u00c0-\u024f.]|[A-Za-z]"
)


def marker(name: str) -> str:
    """The inert marker that stands for a placeholder until personalisation."""
    return f"MAILERPH{_ORDER.index(name):02d}"


@dataclass(frozen=True)
class PlaceholderProblem:
    line: int
    text: str


def find_unknown_placeholders(
    text: str, allowed: Iterable[str], first_line: int = 1
) -> list[PlaceholderProblem]:
    """Every ``{...}`` in ``text`` that is not an allowed placeholder, with its line number."""
    allowed_set = set(allowed)
    problems = []
    for offset, line in enumerate(text.splitlines()):
        for match in _BRACES.finditer(line):
            if match.group(1) not in allowed_set:
                problems.append(PlaceholderProblem(first_line + offset, match.group(0)))
    return problems


def insert_markers(text: str) -> str:
    """Replace known placeholders by their markers (unknown ones were refused when the campaign loaded)."""
    return _BRACES.sub(lambda m: marker(m.group(1)) if m.group(1) in PLACEHOLDERS else m.group(0), text)


def substitute(text: str, values: Mapping[str, str], for_html: bool, rtl: bool = False) -> str:
    """Put each recipient's values in place of the markers, escaped for HTML when ``for_html``."""

    def value_for(match: re.Match[str]) -> str:
        value = values.get(_ORDER[int(match.group(1))], "")
        return html_value(value, rtl) if for_html else value

    return _MARKER.sub(value_for, text)


def placeholder_of(marker_text: str) -> str:
    """The placeholder a marker stands for (``MAILERPH01`` -> ``name``)."""
    return _ORDER[int(marker_text[len("MAILERPH") :])]


def html_value(value: str, rtl: bool) -> str:
    """A recipient's value as it goes into HTML: escaped, and a Latin run isolated in right-to-left text."""
    escaped = escape(value, quote=True)
    if rtl and not value.startswith("http") and _LATIN_RUN.search(value):
        return f'<span dir="ltr">{escaped}</span>'
    return escaped


def _markdown() -> MarkdownIt:
    # CommonMark with raw HTML off: coordinators write text, not markup.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


_MD = _markdown()


def markdown_to_html(source: str, rtl: bool) -> str:
    """HTML for the email body; in right-to-left text, Latin runs are isolated in ``<span dir="ltr">``."""
    tokens = _MD.parse(insert_markers(source))
    if rtl:
        _isolate_latin_runs(tokens)
    return str(_MD.renderer.render(tokens, _MD.options, {}))


def _isolate_latin_runs(tokens: Sequence[Token]) -> None:
    # <bdi> is unsupported in Gmail and Outlook; <span dir="ltr"> works everywhere.
    for token in tokens:
        if token.children:
            _isolate_latin_runs(token.children)
        elif token.type == "text" and _LATIN_RUN.search(_MARKER.sub("", token.content)):
            token.type = "html_inline"
            token.content = _wrap_latin(token.content)


def _wrap_latin(text: str) -> str:
    pieces = []
    for index, part in enumerate(re.split(r"(MAILERPH\d\d)", text)):
        if index % 2:
            pieces.append(part)
        else:
            pieces.append(_LATIN_RUN.sub(lambda m: f'<span dir="ltr">{m.group(0)}</span>', escape(part)))
    return "".join(pieces)


def markdown_to_text(source: str, rtl: bool) -> str:
    """A plain-text rendering for the text/plain part: paragraphs, bullets, and links as ``text <url>``."""
    tokens = _MD.parse(insert_markers(source))
    # (text, is_list_item): blank lines between blocks, none between items of one list.
    blocks: list[tuple[str, bool]] = []
    prefix = RLM if rtl else ""
    ordered: list[int] = []  # one counter per open list; 0 for bullets
    for token in tokens:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            ordered.append(1 if token.type == "ordered_list_open" else 0)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            ordered.pop()
        elif token.type == "inline":
            text = _inline_text(token.children or [])
            if not ordered:
                blocks.append((prefix + text, False))
                continue
            bullet = f"{ordered[-1]}. " if ordered[-1] else "• "
            if ordered[-1]:
                ordered[-1] += 1
            blocks.append((prefix + "  " * (len(ordered) - 1) + bullet + text, True))
        elif token.type == "hr":
            blocks.append(("----", False))
    lines: list[str] = []
    for index, (text, is_item) in enumerate(blocks):
        if index and not (is_item and blocks[index - 1][1]):
            lines.append("")
        lines.append(text)
    return "\n".join(lines) + "\n"


def _inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    href: list[Any] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "link_open":
            href.append(child.attrs.get("href", ""))
        elif child.type == "link_close" and href:
            parts.append(f" <{href.pop()}>")
    return "".join(parts)
