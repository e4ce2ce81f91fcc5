"""Iraq's governorates: a stable English key, and the name in each locale."""

from __future__ import annotations

import unicodedata

from mailer.governorate_names import GOVERNORATE_NAMES
from mailer.locales import get_locale

GOVERNORATES: tuple[str, ...] = tuple(GOVERNORATE_NAMES)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("-", " ").strip()


_LOOKUP: dict[str, str] = {
    _fold(name): key for key, names in GOVERNORATE_NAMES.items() for name in (key, *names.values())
}


def find_governorate(text: str) -> str | None:
    """The key of a governorate written in any locale (or by its key, in any case); None when unknown."""
    return _LOOKUP.get(_fold(text))


def governorate_name(key: str, code: str) -> str:
    """The governorate's name in a locale."""
    return GOVERNORATE_NAMES[key][get_locale(code).code]
