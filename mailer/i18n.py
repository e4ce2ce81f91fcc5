"""Gettext catalogs per locale, CLDR formats, and the interface language of the command line.

Catalogs are read from ``translations/<code>/LC_MESSAGES/messages.mo`` when that file is at least as new as
its ``.po``; otherwise the ``.po`` is compiled in memory, so a fresh checkout works before ``mailer i18n
compile`` has run.
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import io
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from babel.dates import format_date as _babel_format_date
from babel.lists import format_list as _babel_format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

from mailer.errors import N_, LocaleError
from mailer.locales import SOURCE_LOCALE, get_locale
from mailer.resources import resource_dir

DOMAIN = "messages"


def catalog_path(code: str, suffix: str = ".po", root: Path | None = None) -> Path:
    base = root if root is not None else resource_dir("translations")
    return base / code / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


@cache
def translations(code: str) -> _gettext.NullTranslations:
    """The catalog of one registry locale (the source language needs none)."""
    locale = get_locale(code)
    if locale.code == SOURCE_LOCALE:
        return _gettext.NullTranslations()
    po, mo = catalog_path(locale.code), catalog_path(locale.code, ".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    if not po.exists():
        raise LocaleError(
            N_("no catalog for locale %(code)s: %(file)s is missing"), code=locale.code, file=po.name
        )
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=locale.babel_id)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def interface_language() -> str:
    """The language of the command line's own words, from ``MAILER_LANGUAGE`` (Settings reports bad values)."""
    try:
        return get_locale(os.environ.get("MAILER_LANGUAGE", "") or SOURCE_LOCALE).code
    except LocaleError:
        return SOURCE_LOCALE


def interface_translations() -> _gettext.NullTranslations:
    """The catalog of the interface language."""
    return translations(interface_language())


def _(message: str) -> str:
    """Translate an interface string into the interface language."""
    return translations(interface_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate an interface string with a count, through the language's own plural rule."""
    return translations(interface_language()).ngettext(singular, plural, n)


def format_number(value: float, code: str) -> str:
    """A number in the locale's CLDR format and the registry's digits."""
    locale = get_locale(code)
    # Babel picks the numbering system's separators but always writes ASCII digits.
    formatted = format_decimal(value, locale=locale.babel, numbering_system=locale.numbering_system)
    return locale.localize_digits(formatted)


def format_share(value: float, code: str) -> str:
    """A share (0.25) as the locale writes a percentage ("25%", "٪٢٥"), with the registry's digits."""
    locale = get_locale(code)
    formatted = format_percent(value, locale=locale.babel, numbering_system=locale.numbering_system)
    return locale.localize_digits(formatted)


#: Where CLDR has no list pattern of its own (Babel falls back to "A, B, C" with Latin commas), ours:
#: (separator, before the last item).
_LIST_PATTERNS = {"ckb": ("، ", " و ")}


def format_list(items: Sequence[str], code: str) -> str:
    """Items joined as the locale joins them ("A، B و C" in Sorani, "A وB وC" in Arabic)."""
    locale = get_locale(code)
    if locale.code in _LIST_PATTERNS and len(items) > 1:
        separator, last = _LIST_PATTERNS[locale.code]
        return separator.join(items[:-1]) + last + items[-1]
    return _babel_format_list(list(items), locale=locale.babel)


def format_date(value: dt.date, code: str, style: str = "long") -> str:
    """A date in the locale's CLDR format and the registry's digits."""
    locale = get_locale(code)
    return locale.localize_digits(_babel_format_date(value, format=style, locale=locale.babel))
