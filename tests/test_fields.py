"""One check for text people give us: the action form and the importers refuse the same things (X1-X3, C2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailer import letters
from mailer.fields import FieldProblem, check_address, check_line, check_text, mailbox_key
from mailer.store import Database
from mailer.supporters import import_supporters
from mailer.targets import import_targets

HOSTILE_LINES = {
    "encoded newline": "=?UTF-8?Q?x=0AContent-Type:text/html=0A=0A=3Ch1=3EVerify=3C/h1=3E?=",
    "encoded bcc": "=?UTF-8?Q?=0A?=Bcc: x@evil.example",
    "encoded base64": "=?utf-8?b?eApCY2M6IHhAZXZpbC5leGFtcGxl?=",
    "CR LF": "Sara\r\nBcc: x@evil.example",
    "LF": "Sara\nSubject: forged",
    "CR": "Sara\rBcc: x@evil.example",
    "NUL": "Sara\x00",
    "NEL": "Sara\x85Bcc: x@evil.example",
    "line separator": "Sara\u2028Bcc: x@evil.example",
    "paragraph separator": "Sara\u2029Bcc: x@evil.example",
    "bidi override": "Ali\u202eevil",
    "bidi isolate": "Ali\u2066evil\u2069",
    "zero-width space": "Shi\u200blan",
    "tag character": "Ali\U000e0041",
    "byte-order mark": "\ufeffAli",
    "vertical tab": "Ali\x0bBcc",
}


@pytest.mark.parametrize("value", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_every_single_line_field_refuses_breaks_controls_and_encoded_words(value: str) -> None:
    with pytest.raises(FieldProblem):
        check_line(value, 100)


def test_direction_marks_a_keyboard_types_are_dropped_from_a_line_and_kept_in_a_text() -> None:
    assert check_line("\u200fزينب علي\u061c", 100) == "زينب علي"
    assert check_line("\u200e\u200f", 100, required=False) == ""
    with pytest.raises(FieldProblem):
        check_line("\u200f", 100)  # nothing but marks is an empty name
    assert check_text("المحافظة (البصرة)\u200f.\nسطر", 100) == "المحافظة (البصرة)\u200f.\nسطر"


@pytest.mark.parametrize("field", ["name", "subject"])
@pytest.mark.parametrize("value", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_the_form_refuses_them_with_the_field_named(field: str, value: str) -> None:
    raw = {"name": "Sara", "email": "sara@example.org", "subject": "s", "body": "b", "share": "name"}
    with pytest.raises(letters.FormError) as caught:
        letters.check_form(raw | {field: value}, "protect-hrds-iraq", "en")
    assert list(caught.value.fields) == [field]


@pytest.mark.parametrize("value", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_the_supporter_import_refuses_them_in_the_row_and_column(
    db: Database, tmp_path: Path, value: str
) -> None:
    path = tmp_path / "people.csv"
    quoted = value.replace('"', '""')
    path.write_bytes(
        f'email,name,locale,governorate\nok@example.org,Ok,en,\nx@example.org,"{quoted}",en,\n'.encode(
            "utf-8", "surrogatepass"
        )
    )
    report = import_supporters(db, path)
    assert report.created == 1  # one bad row never blocks the others
    assert [(e.row, e.field) for e in report.rejected] == [(3, "name")]


def test_an_officials_name_is_checked_the_same_way(db: Database, tmp_path: Path) -> None:
    names = {"en": "Judge\r\nBcc: x@evil.example", "ar": "قاضٍ", "ckb": "دادوەر", "kmr": "Dadwer"}
    entry = {
        "slug": "poisoned-judge",
        "institution": {"en": "Court", "ar": "محكمة", "ckb": "دادگا", "kmr": "Dadgeh"},
        "title": {"en": "Judge", "ar": "قاضٍ", "ckb": "دادوەر", "kmr": "Dadwer"},
        "name": names,
        "email": "judge@example.org",
        "letter_locale": "ar",
    }
    path = tmp_path / "officials.yaml"
    path.write_text(yaml.safe_dump([entry, {**entry, "name": {**names, "en": "Judge"}}]), encoding="utf-8")
    report = import_targets(db, path)
    assert [(e.row, e.field) for e in report.rejected] == [(1, "name_en")]
    assert report.created == 1  # the second entry, with the same slug and a clean name


def test_duplicate_slugs_in_one_officials_file_are_reported_not_a_traceback(
    db: Database, tmp_path: Path
) -> None:
    entry = {
        "slug": "twice-named",
        "institution": {"en": "Court", "ar": "محكمة", "ckb": "دادگا", "kmr": "Dadgeh"},
        "title": {"en": "Judge", "ar": "قاضٍ", "ckb": "دادوەر", "kmr": "Dadwer"},
        "name": {"en": "Judge", "ar": "قاضٍ", "ckb": "دادوەر", "kmr": "Dadwer"},
        "email": "judge@example.org",
        "letter_locale": "ar",
    }
    path = tmp_path / "officials.yaml"
    path.write_text(yaml.safe_dump([entry, entry]), encoding="utf-8")
    report = import_targets(db, path)
    assert report.created == 1
    assert [(e.row, e.field) for e in report.rejected] == [(2, "slug")]
    assert str(report.rejected[0]) == "row 2, slug: 'twice-named' is already used in row 1 of this file"


def test_kurdish_zero_width_non_joiner_and_joiner_are_kept() -> None:
    assert check_line("هەڵبەت\u200cکە", 100) == "هەڵبەت\u200cکە"
    assert check_line("Rojda  Şêxo ", 100) == "Rojda Şêxo"


def test_length_is_capped_before_anything_else() -> None:
    with pytest.raises(FieldProblem, match="at most"):
        check_line("x" * 10_000, 100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ali@Example.COM", "Ali@example.com"),
        ("ali@exämple.com", "ali@exämple.com"),  # an IDN domain is fine: it is sent as xn--
        ("ali@xn--exmple-cua.com", "ali@exämple.com"),  # both spellings are one address
    ],
)
def test_addresses_are_normalised(value: str, expected: str) -> None:
    assert check_address(value) == expected


@pytest.mark.parametrize(
    "value", ["علي@example.net", "josé@example.org", "a@b", "x\n@example.org", "not-an-address", ""]
)
def test_addresses_we_cannot_deliver_are_refused_at_ingress(value: str) -> None:
    with pytest.raises(FieldProblem):
        check_address(value)


def test_a_non_ascii_local_part_gets_a_message_that_says_so() -> None:
    with pytest.raises(FieldProblem, match="before the @"):
        check_address("علي@example.net")


def test_the_mailbox_key_joins_spellings_of_one_mailbox() -> None:
    spellings = [
        "victim@example.org",
        "Victim@Example.org",
        "victim+1@example.org",
        "v.i.c.t.i.m@example.org",
    ]
    assert {mailbox_key(s) for s in spellings} == {"victim@example.org"}
    assert mailbox_key("other@example.org") != mailbox_key("victim@example.org")
