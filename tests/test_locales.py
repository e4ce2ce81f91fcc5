import datetime as dt

import pytest
from babel.messages.plurals import get_plural

from mailer.errors import LocaleError
from mailer.i18n import format_date, format_number
from mailer.locales import LOCALE_CODES, REGISTRY, get_locale, language_name


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("ckb-IQ", "ckb"),
        ("ckb_IQ", "ckb"),
        ("CKB", "ckb"),
        ("ar_IQ", "ar"),
        ("AR", "ar"),
        ("en-GB", "en"),
        ("kmr", "kmr"),
        ("ku-Latn", "kmr"),
        ("ku-Arab", "ckb"),
        (" ar ", "ar"),
    ],
)
def test_aliases_map_to_registry_codes(spelling: str, code: str) -> None:
    assert get_locale(spelling).code == code


@pytest.mark.parametrize("spelling", ["fr", "xx", "", "english"])
def test_unknown_code_is_an_error_not_english(spelling: str) -> None:
    with pytest.raises(LocaleError, match="unknown locale"):
        get_locale(spelling)


def test_bare_ku_is_ambiguous_never_guessed() -> None:
    with pytest.raises(LocaleError, match="ambiguous"):
        get_locale("ku")


def test_direction_follows_script() -> None:
    directions = {code: REGISTRY[code].direction for code in LOCALE_CODES}
    assert directions == {"en": "ltr", "ar": "rtl", "ckb": "rtl", "kmr": "ltr"}
    assert {REGISTRY[c].script for c in ("ar", "ckb")} == {"Arab"}


def test_plural_forms_agree_with_babel() -> None:
    for locale in REGISTRY.values():
        assert locale.nplurals == get_plural(locale.babel_id).num_plurals
    assert REGISTRY["ar"].nplurals == 6


def test_names_in_themselves() -> None:
    assert REGISTRY["ar"].native_name == "العربية"
    assert REGISTRY["kmr"].native_name == "Kurmancî"


def test_languages_are_named_in_the_readers_language() -> None:
    """CLDR calls Kurmanji plain "Kurdish" (its code is bare "ku") outside Kurmanji itself: our own names
    stand in, so that no reader sees two languages under one name, nor a name in another script."""
    names = {reader: [language_name(code, reader) for code in LOCALE_CODES] for reader in LOCALE_CODES}
    assert names["en"] == ["English", "Arabic", "Sorani Kurdish", "Kurmanji Kurdish"]
    assert names["ar"] == ["الإنجليزية", "العربية", "الكردية السورانية", "الكردية الكرمانجية"]
    assert names["ckb"] == ["ئینگلیزی", "عەرەبی", "کوردیی ناوەندی", "کوردیی کورمانجی"]
    assert names["kmr"][:2] == ["îngilîzî", "erebî"]
    for reader, named in names.items():
        assert len(set(named)) == len(named), (reader, named)
        if REGISTRY[reader].script == "Arab":
            assert not any(c.isascii() and c.isalpha() for name in named for c in name), (reader, named)


def test_numbers_and_dates_follow_the_registry_digits() -> None:
    day = dt.date(2022, 3, 15)
    assert format_number(1234, "ar") == "١٬٢٣٤"
    assert format_number(1234, "en") == "1,234"
    assert format_number(1234, "kmr") == "1.234"
    assert format_date(day, "ar") == "١٥ آذار ٢٠٢٢"
    assert "2022" in format_date(day, "kmr")
    assert format_date(day, "en") == "March 15, 2022"
