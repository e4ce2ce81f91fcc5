"""Importing supporters from CSV: validate every row, merge duplicates, store all good rows at once.

Bad rows are reported (row number, field, reason) and skipped; a problem with the file itself (encoding,
header) stores nothing at all.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from mailer.errors import N_, ImportFileError, ImportRowError, LocaleError
from mailer.fields import FieldProblem, check_address, check_line, normal_tag
from mailer.governorates import GOVERNORATES, find_governorate
from mailer.locales import LOCALE_CODES, get_locale
from mailer.store import Database
from mailer.store import repository as repo

REQUIRED_COLUMNS = ("email", "name", "locale", "governorate")
OPTIONAL_COLUMNS = ("tags",)
MAX_NAME = 200
#: One import's limits: the file is refused before it is read past these, and nothing is stored.
MAX_IMPORT_BYTES = 100_000_000
MAX_IMPORT_ROWS = 500_000
# Characters a spreadsheet would run as a formula when a cell starts with them.
FORMULA_PREFIXES = ("=", "+", "-", "@")


@dataclass(frozen=True)
class SupporterRow:
    row: int
    email: str
    email_key: str
    name: str
    locale: str
    governorate: str | None
    tags: tuple[str, ...]


@dataclass
class ImportReport:
    """What an import did; ``rejected`` holds one error per refused row."""

    file: str
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged_duplicates: int = 0
    suppressed: int = 0  # rows whose address asked for no more mail: kept so, never subscribed again
    rejected: list[ImportRowError] = field(default_factory=list)


def decode_csv(data: bytes, filename: str) -> str:
    """The file's text: UTF-8 with or without a byte-order mark, and nothing else."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ImportFileError(
            N_(
                "%(file)s: line %(line)d is not UTF-8 (byte 0x%(byte)02x); nothing was imported. "
                "Save the file as 'CSV UTF-8' (Windows-1256 and other code pages are not accepted)"
            ),
            file=filename,
            line=line,
            byte=data[err.start],
        ) from err


def parse_supporters_csv(text: str, filename: str) -> tuple[list[SupporterRow], list[ImportRowError], int]:
    """Valid rows, rejected rows and the number of data rows read. Row numbers count the header as 1."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(
            N_("%(file)s: the file is empty; expected a header line"), file=filename
        ) from None
    except csv.Error as err:
        raise ImportFileError(N_("%(file)s: row 1: %(reason)s"), file=filename, reason=str(err)) from err
    columns = [column.strip().lower() for column in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    expected = ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    if missing or unknown:
        raise ImportFileError(
            N_(
                "%(file)s: row 1: the columns must be %(columns)s; missing: %(missing)s; unknown: %(unknown)s"
            ),
            file=filename,
            columns=expected,
            missing=", ".join(missing) or "-",
            unknown=", ".join(repr(c) for c in unknown) or "-",
        )
    if len(set(columns)) != len(columns):
        raise ImportFileError(N_("%(file)s: row 1: a column appears twice"), file=filename)

    rows: list[SupporterRow] = []
    rejected: list[ImportRowError] = []
    count = 0
    row_number = 1
    while True:
        row_number += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise ImportFileError(
                N_("%(file)s: row %(row)d: %(reason)s; nothing was imported"),
                file=filename,
                row=row_number,
                reason=str(err),
            ) from err
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if count > MAX_IMPORT_ROWS:
            raise ImportFileError(
                N_("%(file)s: more than %(max)d rows; nothing was imported. Split the file"),
                file=filename,
                max=MAX_IMPORT_ROWS,
            )
        if len(cells) != len(columns):
            rejected.append(
                ImportRowError(
                    row_number,
                    "row",
                    N_("has %(found)d fields, the header has %(expected)d"),
                    found=len(cells),
                    expected=len(columns),
                )
            )
            continue
        try:
            rows.append(_parse_row(row_number, dict(zip(columns, cells, strict=True))))
        except ImportRowError as err:
            rejected.append(err)
    return rows, rejected, count


def _parse_row(row: int, cells: dict[str, str]) -> SupporterRow:
    try:
        email = check_address(cells["email"])
    except FieldProblem as problem:
        raise ImportRowError(row, "email", problem.template, **problem.params) from problem
    name = _clean_name(row, cells["name"])
    try:
        locale = get_locale(cells["locale"]).code if cells["locale"].strip() else ""
    except LocaleError as err:
        raise ImportRowError(row, "locale", err.template, **err.params) from err
    if not locale:
        raise ImportRowError(row, "locale", N_("is empty (one of %(codes)s)"), codes=", ".join(LOCALE_CODES))
    governorate = None
    if cells["governorate"].strip():
        governorate = find_governorate(cells["governorate"])
        if governorate is None:
            raise ImportRowError(
                row, "governorate", N_("unknown governorate '%(value)s'"), value=cells["governorate"].strip()
            )
    tags = tuple(
        sorted({t.strip().lower() for t in cells.get("tags", "").replace(",", ";").split(";") if t.strip()})
    )
    for tag in tags:
        if normal_tag(tag) != tag:
            raise ImportRowError(
                row, "tags", N_("tag '%(value)s' may only hold letters, digits, - and _"), value=tag
            )
    return SupporterRow(row, email, email.lower(), name, locale, governorate, tags)


def _clean_name(row: int, raw: str) -> str:
    """The same check as the action form's (one shared validator), and no spreadsheet formula."""
    try:
        name = check_line(raw, MAX_NAME)
    except FieldProblem as problem:
        raise ImportRowError(row, "name", problem.template, **problem.params) from problem
    if name.startswith(FORMULA_PREFIXES):
        raise ImportRowError(
            row, "name", N_("starts with '%(char)s', like a spreadsheet formula"), char=name[0]
        )
    return name


def merge_duplicates(rows: list[SupporterRow]) -> tuple[list[SupporterRow], int]:
    """One row per address (case-insensitive): the last row wins, tags are united."""
    merged: dict[str, SupporterRow] = {}
    duplicates = 0
    for row in rows:
        earlier = merged.get(row.email_key)
        if earlier is not None:
            duplicates += 1
            row = SupporterRow(
                row.row,
                row.email,
                row.email_key,
                row.name,
                row.locale,
                row.governorate,
                tuple(sorted(set(earlier.tags) | set(row.tags))),
            )
        merged[row.email_key] = row
    return list(merged.values()), duplicates


def import_supporters(db: Database, path: Path) -> ImportReport:
    """Import a CSV of supporters; existing supporters (same address, any case) are updated, never doubled."""
    try:
        _check_size(path.stat().st_size, path.name)  # refused before it is read: memory stays bounded
        data = path.read_bytes()
    except OSError as err:
        raise ImportFileError(
            N_("%(file)s: cannot be read: %(reason)s"), file=str(path), reason=err.strerror
        ) from err
    return import_supporters_bytes(db, data, path.name)


def import_supporters_bytes(db: Database, data: bytes, filename: str) -> ImportReport:
    """The same for a file's content (an upload), named ``filename`` in the report."""
    _check_size(len(data), filename)
    return import_supporters_text(db, decode_csv(data, filename), filename)


def _check_size(size: int, filename: str) -> None:
    if size > MAX_IMPORT_BYTES:
        raise ImportFileError(
            N_("%(file)s: %(size)d MB is more than the %(max)d MB one import takes; split the file"),
            file=filename,
            size=-(-size // 1_000_000),
            max=MAX_IMPORT_BYTES // 1_000_000,
        )


def import_supporters_text(db: Database, text: str, filename: str) -> ImportReport:
    rows, rejected, count = parse_supporters_csv(text, filename)
    unique_rows, duplicates = merge_duplicates(rows)
    report = ImportReport(file=filename, rows_read=count, merged_duplicates=duplicates, rejected=rejected)
    indexes = {row.email_key: db.vault.address_index(row.email) for row in unique_rows}
    with db.session() as session:  # one transaction: all good rows or none
        existing = repo.supporters_by_index(session, indexes.values())
        report.suppressed = len(repo.suppressed_indexes(session, list(indexes.values()), "supporter"))
        for row in unique_rows:
            supporter = existing.get(indexes[row.email_key])
            if supporter is None:
                repo.new_supporter(session, row.email, row.name, row.locale, row.governorate, row.tags)
                report.created += 1
                continue
            supporter.origin = "import"  # a letter writer on a coordinator's list is now kept like the rest
            tags = sorted(set(supporter.tags or []) | set(row.tags))  # an import adds tags, never removes
            new_values = (row.email, row.name, row.locale, row.governorate, tags)
            old_values = (
                supporter.email,
                supporter.name,
                supporter.locale,
                supporter.governorate,
                supporter.tags,
            )
            if new_values == old_values:
                report.unchanged += 1
                continue
            supporter.email, supporter.name, supporter.locale = row.email, row.name, row.locale
            repo.set_governorate(session, supporter, row.governorate)
            if tags != sorted(supporter.tags or []):
                repo.set_tags(session, supporter, tags)
            report.updated += 1
    return report


@dataclass
class SupporterCounts:
    """How many supporters, by locale, governorate and tag: what a coordinator segments by."""

    total: int = 0
    subscribed: int = 0
    by_locale: dict[str, int] = field(default_factory=dict)
    by_governorate: dict[str, int] = field(default_factory=dict)  # "" for supporters without one
    by_tag: dict[str, int] = field(default_factory=dict)


def supporter_counts(db: Database) -> SupporterCounts:
    """Counts of subscribed supporters (those a mailout can reach), plus the total."""
    counts = SupporterCounts()
    with db.session() as session:
        names = {db.vault.index(key, "governorate"): key for key in GOVERNORATES}
        for locale, governorate_index, subscribed, number in repo.supporter_breakdown(session):
            counts.total += number
            if not subscribed:
                continue
            counts.subscribed += number
            counts.by_locale[locale] = counts.by_locale.get(locale, 0) + number
            key = names.get(governorate_index or "", "")
            counts.by_governorate[key] = counts.by_governorate.get(key, 0) + number
        for tags in repo.tag_lists(session):
            for tag in tags or ():
                counts.by_tag[tag] = counts.by_tag.get(tag, 0) + 1
    counts.by_locale = {c: counts.by_locale[c] for c in LOCALE_CODES if c in counts.by_locale}
    counts.by_governorate = dict(sorted(counts.by_governorate.items(), key=lambda kv: -kv[1]))
    counts.by_tag = dict(sorted(counts.by_tag.items(), key=lambda kv: (-kv[1], kv[0])))
    return counts
