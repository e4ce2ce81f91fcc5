"""The one check for text that people give us: the action form, supporter CSV files and officials files.

Whatever goes into a header (a name, a subject) must stay on one line and mean what it shows: no line
breaks of any kind (CR, LF, NEL, U+2028, U+2029), no control or invisible format characters (bidi
overrides, embeddings and isolates, tag characters, zero-width spaces), and no RFC 2047 encoded-word
syntax, which some Python releases decode into a line break while writing the header (CVE-2024-6923).
The zero-width non-joiner and joiner stay: Kurdish and Persian spelling need them. The direction marks
(LRM, RLM, ALM) that Arabic and Kurdish keyboards type by themselves are dropped from a one-line field
rather than refused (we isolate every name we show, so they mean nothing there) and kept in a text, where
they place punctuation in mixed-direction sentences.
Addresses must be deliverable by every transport we have: an internationalised domain is fine (it is sent
in its ASCII form), letters outside ASCII before the ``@`` are not (no provider of ours speaks SMTPUTF8).
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from mailer.errors import N_, MailerError

#: Format characters that are part of writing Kurdish, Persian and Arabic (and emoji sequences).
ALLOWED_FORMAT_CHARS = frozenset({"\u200c", "\u200d"})
#: Direction marks: harmless on their own (they reorder nothing beyond the neutral characters beside them).
DIRECTION_MARKS = frozenset({"\u200e", "\u200f", "\u061c"})
_NO_MARKS = str.maketrans(dict.fromkeys(DIRECTION_MARKS, None))
#: An RFC 2047 encoded word: ``=?charset?Q?text?=`` (or ``?B?``), with the optional ``*language``.
ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")
_HTML = re.compile(r"<\s*[a-zA-Z!/?]")


class FieldProblem(MailerError):
    """One field's value is refused; the caller says which field (a form shows it beside it, an import
    names the row and the column)."""


def forbidden_character(value: str, multiline: bool = False) -> str | None:
    """The first character that must not be in a field, or None. Only LF, TAB and the direction marks
    may pass in text."""
    if value.isprintable():  # no control, format, surrogate, private or unassigned character: the usual case
        return None
    for char in value:
        if multiline and (char in "\n\t" or char in DIRECTION_MARKS):
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp", "Cs", "Co", "Cn"):
            return char
        if category == "Cf" and char not in ALLOWED_FORMAT_CHARS:
            return char
    return None


def check_line(value: str | None, max_length: int, required: bool = True, html: bool = False) -> str:
    """A one-line field (a name, a subject), NFC-normalised, direction marks dropped, trimmed, inner spaces
    collapsed."""
    text = unicodedata.normalize("NFC", value or "").translate(_NO_MARKS).strip()
    if not _present(text, max_length, required):
        return ""
    if any(char in text for char in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        raise FieldProblem(N_("one line only, please"))
    _check_characters(text, multiline=False, html=html)
    return " ".join(text.split())


def check_text(value: str | None, max_length: int, required: bool = True, html: bool = False) -> str:
    """A field of several lines (a letter, a note): line ends made LF, trimmed."""
    text = unicodedata.normalize("NFC", value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not _present(text, max_length, required):
        return ""
    _check_characters(text, multiline=True, html=html)
    return text


def _present(text: str, max_length: int, required: bool) -> bool:
    """False for an empty optional field; FieldProblem for an empty required one or one too long."""
    if not text:
        if required:
            raise FieldProblem(N_("this field is required"))
        return False
    if len(text) > max_length:
        raise FieldProblem(N_("at most %(max)d characters, please"), max=max_length)
    return True


def _check_characters(text: str, multiline: bool, html: bool) -> None:
    bad = forbidden_character(text, multiline)
    if bad is not None:
        raise FieldProblem(N_("contains the invisible control character U+%(code)04X"), code=ord(bad))
    if ENCODED_WORD.search(text):
        raise FieldProblem(N_("contains encoded email-header syntax (=?...?=); please write plain text"))
    if not html and _HTML.search(text):
        raise FieldProblem(N_("HTML is not allowed; please write plain text"))


def check_address(value: str | None) -> str:
    """A deliverable address, normalised (the domain lower-cased; an IDN domain kept in Unicode)."""
    text = (value or "").strip()
    if not text:
        raise FieldProblem(N_("this field is required"))
    local, at, _domain = text.rpartition("@")
    if at and not local.isascii():
        raise FieldProblem(
            N_(
                "addresses with letters other than a-z before the @ cannot be delivered by our mail "
                "service; please use another address"
            )
        )
    if len(text) > 254 or forbidden_character(text) is not None:
        raise FieldProblem(N_("this is not a valid email address"))
    try:
        return str(validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized)
    except EmailNotValidError as err:
        raise FieldProblem(N_("this is not a valid email address")) from err


def mailbox_key(address: str) -> str:
    """One key for the spellings that reach the same mailbox (for limits, never for sending):
    case, ``+tags`` and dots in the local part are ignored, as many providers ignore them."""
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def normal_tag(value: str) -> str | None:
    """A tag as stored (lower case), or None when it is not one: letters, digits, - and _ only, and never
    the start of a spreadsheet formula."""
    tag = value.strip().lower()
    if not tag or len(tag) > 50 or tag.startswith(("=", "+", "-", "@")):
        return None
    return tag if tag.replace("-", "").replace("_", "").isalnum() else None
