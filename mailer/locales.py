"""The locale registry: the single source of truth about each language the engine speaks.

Direction follows from the script, never from a check on the language code. Codes are parsed leniently
(``ckb-IQ``, ``ckb_IQ``, ``CKB``) but an unknown code is an error, never silent English; and bare ``ku``
is refused as ambiguous, because sending Sorani readers Kurmanji (or the reverse) is not a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from babel import Locale as BabelLocale

from mailer.errors import N_, LocaleError

Direction = Literal["ltr", "rtl"]

#: Writing direction of each script the registry uses (ISO 15924 codes).
SCRIPT_DIRECTIONS: dict[str, Direction] = {"Latn": "ltr", "Arab": "rtl"}

#: Digits per numbering system (CLDR names); "arab" are the Arabic-Indic digits used in Iraq.
DIGITS: dict[str, str] = {"latn": "0123456789", "arab": "٠١٢٣٤٥٦٧٨٩"}


@dataclass(frozen=True)
class Locale:
    """One supported language."""

    code: str
    english_name: str
    native_name: str
    babel_id: str
    script: str
    numbering_system: str
    plural_forms: str
    aliases: tuple[str, ...] = ()

    @property
    def direction(self) -> Direction:
        return SCRIPT_DIRECTIONS[self.script]

    @property
    def is_rtl(self) -> bool:
        return self.direction == "rtl"

    @property
    def babel(self) -> BabelLocale:
        return _babel_locale(self.babel_id)

    @property
    def nplurals(self) -> int:
        return int(self.plural_forms.split(";")[0].split("=")[1])

    def localize_digits(self, text: str) -> str:
        """Write ASCII digits in this locale's digits (Babel's date formats always give ASCII digits)."""
        return text.translate(_digit_table(self.numbering_system))


_ARABIC_PLURALS = (
    "nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 "
    ": n%100>=11 && n%100<=99 ? 4 : 5);"
)

REGISTRY: dict[str, Locale] = {
    loc.code: loc
    for loc in (
        Locale(
            "en", "English", "English", "en", "Latn", "latn", "nplurals=2; plural=(n != 1);", ("en-latn",)
        ),
        Locale("ar", "Arabic", "العربية", "ar_IQ", "Arab", "arab", _ARABIC_PLURALS, ("ar-arab",)),
        Locale(
            "ckb",
            "Sorani Kurdish",
            "کوردیی ناوەندی",
            "ckb_IQ",
            "Arab",
            "arab",
            "nplurals=2; plural=(n != 1);",
            ("ku-arab", "ku-arab-iq", "ckb-arab", "sorani"),
        ),
        # Babel (CLDR) knows Kurmanji as plain "ku".
        Locale(
            "kmr",
            "Kurmanji Kurdish",
            "Kurmancî",
            "ku",
            "Latn",
            "latn",
            "nplurals=2; plural=(n != 1);",
            ("ku-latn", "ku-latn-tr", "kmr-latn", "kurmanji"),
        ),
    )
}

#: Codes in the order the engine lists them.
LOCALE_CODES: tuple[str, ...] = tuple(REGISTRY)
SOURCE_LOCALE = "en"

_ALIASES: dict[str, str] = {alias: loc.code for loc in REGISTRY.values() for alias in loc.aliases}


def get_locale(code: str) -> Locale:
    """Map any spelling of a supported code (``ckb-IQ``, ``ckb_IQ``, ``CKB``) to its registry entry."""
    key = code.strip().replace("_", "-").lower()
    if key in _ALIASES:
        return REGISTRY[_ALIASES[key]]
    primary = key.split("-", 1)[0]
    if primary in REGISTRY:
        return REGISTRY[primary]
    if primary == "ku":
        raise LocaleError(
            N_("locale '%(code)s' is ambiguous: write ckb for Sorani Kurdish or kmr for Kurmanji Kurdish"),
            code=code,
        )
    raise LocaleError(
        N_("unknown locale '%(code)s' (known: %(known)s)"), code=code, known=", ".join(LOCALE_CODES)
    )


def normalize_locale(code: str) -> str:
    """The registry code for any accepted spelling."""
    return get_locale(code).code


#: Names that CLDR lacks or gets wrong, as (language, reader): CLDR knows Kurmanji only as "ku", which
#: Arabic and Sorani call plain "Kurdish" (as ambiguous as the bare code), and its Arabic name for Sorani
#: inverts the term our catalogs use. English readers get the registry's own English names.
_LANGUAGE_NAMES: dict[tuple[str, str], str] = {
    ("kmr", "ar"): "الكردية الكرمانجية",
    ("kmr", "ckb"): "کوردیی کورمانجی",
    ("ckb", "ar"): "الكردية السورانية",
}


def language_name(code: str, reader: str) -> str:
    """The language ``code`` named in the ``reader``'s language, as it stands inside a sentence ("in Arabic",
    "باللغة الإنجليزية"): a reader must understand which language a letter is in, not be shown its self-name."""
    language, reading = get_locale(code), get_locale(reader)
    if reading.code == SOURCE_LOCALE:
        return language.english_name
    known = _LANGUAGE_NAMES.get((language.code, reading.code))
    if known is not None:
        return known
    return str(reading.babel.languages.get(language.babel.language) or language.native_name)


@cache
def _babel_locale(babel_id: str) -> BabelLocale:
    return BabelLocale.parse(babel_id)


@cache
def _digit_table(numbering_system: str) -> dict[int, int]:
    return str.maketrans(DIGITS["latn"], DIGITS[numbering_system])
