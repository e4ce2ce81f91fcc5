"""The officials directory: YAML and CSV imports, row by row."""

from pathlib import Path

from mailer.store import Database
from mailer.targets import import_targets, list_targets

HEADER = (
    "slug,institution_en,institution_ar,institution_ckb,institution_kmr,title_en,title_ar,title_ckb,title_kmr,"
    "name_en,name_ar,name_ckb,name_kmr,governorate,email,letter_locale,status,verified_on\n"
)
ROW = (
    "governor-of-basra,Basra Governorate,محافظة البصرة,پارێزگای بەسرە,Parêzgeha Besrayê,Governor,المحافظ,پارێزگار,"
    "Parêzgar,The Governor,المحافظ,پارێزگار,Parêzgar,Basra,governor@basra.example.org,ar,active,2026-11-01\n"
)


def test_csv_import_reports_rows_like_a_spreadsheet(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "officials.csv"
    bad = ROW.replace("governor-of-basra", "second-office").replace(",ar,active", ",ku,active")
    path.write_text(HEADER + ROW + bad, encoding="utf-8")
    report = import_targets(db, path)
    assert (report.created, [(e.row, e.field) for e in report.rejected]) == (1, [(3, "letter_locale")])
    (official,) = list_targets(db)
    assert (official["slug"], official["letter_locale"], official["title"]["ckb"]) == (
        "governor-of-basra",
        "ar",
        "پارێزگار",
    )


def test_yaml_import_of_the_demo_directory(db: Database) -> None:
    from mailer.resources import demo_dir

    report = import_targets(db, demo_dir() / "officials.yaml")
    assert (report.created, report.rejected) == (10, [])
    again = import_targets(db, demo_dir() / "officials.yaml")
    assert (again.created, again.updated) == (0, 10)
    assert all(t["email"].endswith("example.org") for t in list_targets(db))
