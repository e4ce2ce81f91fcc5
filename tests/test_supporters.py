from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.errors import ImportFileError
from mailer.store import Database
from mailer.store.models import Supporter, Suppression
from mailer.supporters import import_supporters

HEADER = "email,name,locale,governorate,tags\n"


def write(tmp_path: Path, content: bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Supporter)) or 0)


def test_bom_and_every_locale_spelling(db: Database, tmp_path: Path) -> None:
    rows = (
        "zainab@example.org,زينب حسن,ar_IQ,البصرة,\n"
        "shilan@example.net,شیلان ئەحمەد,CKB,Erbil,volunteer\n"
        "rojda@example.com,Rojda Şêxo,kmr,duhok,press;volunteer\n"
    )
    report = import_supporters(db, write(tmp_path, b"\xef\xbb\xbf" + (HEADER + rows).encode()))
    assert (report.created, report.rejected) == (3, [])
    with db.session() as session:
        people = {s.email: (s.locale, s.governorate, s.tags) for s in session.scalars(select(Supporter))}
    assert people == {
        "zainab@example.org": ("ar", "Basra", []),
        "shilan@example.net": ("ckb", "Erbil", ["volunteer"]),
        "rojda@example.com": ("kmr", "Duhok", ["press", "volunteer"]),
    }


def test_hostile_rows_are_rejected_with_row_numbers(db: Database, tmp_path: Path) -> None:
    content = (
        HEADER
        + "good@example.org,Ali Kareem,ar,Basra,\n"  # row 2
        + "ragged@example.org,Too Few,en\n"  # row 3
        + 'formula@example.org,"=HYPERLINK(""http://evil.example.com"",""x"")",en,,\n'  # row 4
        + 'newline@example.org,"Sara\nInjected: header",en,,\n'  # row 5
        + "not-an-address,Someone,en,,\n"  # row 6
        + "bidi@example.org,Ali\u202eevil,ar,,\n"  # row 7
        + "lang@example.org,Someone,fr,,\n"  # row 8
        + "place@example.org,Someone,en,Atlantis,\n"  # row 9
        + "GOOD@Example.org,Ali Kareem Jr,ar,Basra,press\n"  # row 10: same address, other case
    )
    report = import_supporters(db, write(tmp_path, content.encode()))
    rejected = {(e.row, e.field) for e in report.rejected}
    assert rejected == {
        (3, "row"),
        (4, "name"),
        (5, "name"),
        (6, "email"),
        (7, "name"),
        (8, "locale"),
        (9, "governorate"),
    }
    assert report.merged_duplicates == 1
    assert report.created == 1
    with db.session() as session:
        supporter = session.scalars(select(Supporter)).one()
    assert (supporter.email.lower(), supporter.name, supporter.tags) == (
        "good@example.org",
        "Ali Kareem Jr",
        ["press"],
    )


def test_windows_1256_file_is_refused_and_nothing_is_imported(db: Database, tmp_path: Path) -> None:
    content = (HEADER + "first@example.org,Ali,ar,,\n").encode() + "second@example.org,علي,ar,,\n".encode(
        "cp1256"
    )
    with pytest.raises(ImportFileError, match=r"people\.csv: line 3 is not UTF-8"):
        import_supporters(db, write(tmp_path, content))
    assert count(db) == 0


def test_wrong_header_is_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"missing: governorate; unknown: 'governerate'"):
        import_supporters(db, write(tmp_path, b"email,name,locale,governerate\nx@example.org,X,en,\n"))
    assert count(db) == 0


def test_reimport_updates_and_never_doubles_or_resubscribes(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "a@example.org,Ali,ar,Basra,\nb@example.org,Bea,en,,\n").encode())
    import_supporters(db, path)
    with db.session() as session:
        session.add(
            Suppression(
                email_index=db.vault.address_index("a@example.org"), scope="supporter", reason="unsubscribe"
            )
        )
    again = import_supporters(
        db, write(tmp_path, (HEADER + "A@EXAMPLE.ORG,Ali Hasan,ar,Basra,\n").encode(), "b.csv")
    )
    assert (again.created, again.updated, again.suppressed) == (0, 1, 1)  # C5: counted, not resubscribed
    assert count(db) == 2
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    unchanged = import_supporters(db, path)
    assert (unchanged.created, unchanged.unchanged, unchanged.updated) == (0, 1, 1)


def test_a_messy_file_is_read_row_by_row(db: Database, tmp_path: Path) -> None:
    """C1: a byte-order mark, CRLF and CR and LF line ends, a quoted line break, a NUL byte, extra cells."""
    content = (
        b"\xef\xbb\xbf"
        + HEADER.encode()
        + b"crlf@example.org,Ali,ar,Basra,\r\n"  # row 2
        + b'quoted@example.org,"Sara\nMiller",en,,\n'  # row 3: a line break inside a name
        + b"nul@example.org,Zai\x00nab,ar,,\r"  # row 4
        + b"extra@example.org,Bea,en,,,surplus\n"  # row 5
        + "kurdish@example.net,شیلان ئەحمەد,ckb,Erbil,\n".encode()  # row 6
    )
    report = import_supporters(db, write(tmp_path, content))
    assert {(e.row, e.field) for e in report.rejected} == {(3, "name"), (4, "name"), (5, "row")}
    assert (report.rows_read, report.created) == (5, 2)
    with db.session() as session:
        assert sorted(s.email for s in session.scalars(select(Supporter))) == [
            "crlf@example.org",
            "kurdish@example.net",
        ]


def test_oversize_files_and_fields_are_refused_whole_and_clearly(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C3: caps on bytes and rows are checked before anything is stored; a 10 MB cell names its row."""
    huge_cell = HEADER + "a@example.org,Ali,ar,,\n" + "b@example.org," + "x" * 10_000_000 + ",en,,\n"
    with pytest.raises(ImportFileError, match=r"people\.csv: row 3: field larger than field limit"):
        import_supporters(db, write(tmp_path, huge_cell.encode()))
    monkeypatch.setattr("mailer.supporters.MAX_IMPORT_BYTES", 1_000_000)
    with pytest.raises(ImportFileError, match=r"big\.csv: 11 MB is more than the 1 MB one import takes"):
        import_supporters(db, write(tmp_path, huge_cell.encode(), "big.csv"))
    monkeypatch.setattr("mailer.supporters.MAX_IMPORT_ROWS", 3)
    rows = "".join(f"p{i}@example.org,P,en,,\n" for i in range(4))
    with pytest.raises(ImportFileError, match=r"rows\.csv: more than 3 rows; nothing was imported"):
        import_supporters(db, write(tmp_path, (HEADER + rows).encode(), "rows.csv"))
    assert count(db) == 0
