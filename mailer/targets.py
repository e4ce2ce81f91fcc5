"""The officials directory: who supporters write to, and the language each official reads."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mailer.errors import N_, ImportFileError, ImportRowError, LocaleError, MailerError, NotFoundError
from mailer.fields import FieldProblem, check_address, check_line
from mailer.governorates import find_governorate
from mailer.locales import LOCALE_CODES, get_locale
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import SLUG, Target

STATUSES = ("active", "bounced", "retired")
MAX_IMPORT_BYTES = 5_000_000
MAX_TEXT = 200


@dataclass(frozen=True)
class TargetImportReport:
    file: str
    created: int
    updated: int
    rejected: list[ImportRowError]


def _names(entry: dict[str, Any], row: int, key: str) -> dict[str, str]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise ImportRowError(
            row,
            key,
            N_("must give the %(key)s in each locale (%(codes)s)"),
            key=key,
            codes=", ".join(LOCALE_CODES),
        )
    names: dict[str, str] = {}
    for code, text in value.items():
        try:
            locale = get_locale(str(code)).code
        except LocaleError as err:
            raise ImportRowError(row, key, err.template, **err.params) from err
        try:  # names and titles go into headers (To:) and letters: the same check as every other field
            names[locale] = check_line(str(text or ""), MAX_TEXT, required=False)
        except FieldProblem as problem:
            raise ImportRowError(row, f"{key}_{locale}", problem.template, **problem.params) from problem
    missing = [c for c in LOCALE_CODES if not names.get(c)]
    if missing:
        raise ImportRowError(row, key, N_("has no text in %(codes)s"), codes=", ".join(missing))
    return names


def parse_target(entry: Any, row: int) -> dict[str, Any]:
    """The columns of one official, validated; ``row`` is the entry's position (1-based)."""
    if not isinstance(entry, dict):
        raise ImportRowError(
            row, "entry", N_("must be a mapping of slug, institution, title, name, email, ...")
        )
    slug = str(entry.get("slug", "")).strip()
    if not SLUG.match(slug):
        raise ImportRowError(row, "slug", N_("must be 3-100 characters of a-z, 0-9 and -"))
    try:
        email = check_address(str(entry.get("email", "")))
    except FieldProblem as problem:
        raise ImportRowError(row, "email", problem.template, **problem.params) from problem
    try:
        letter_locale = get_locale(str(entry.get("letter_locale", ""))).code
    except LocaleError as err:
        raise ImportRowError(row, "letter_locale", err.template, **err.params) from err
    governorate = None
    if entry.get("governorate"):
        governorate = find_governorate(str(entry["governorate"]))
        if governorate is None:
            raise ImportRowError(
                row, "governorate", N_("unknown governorate '%(value)s'"), value=entry["governorate"]
            )
    status = str(entry.get("status", "active"))
    if status not in STATUSES:
        raise ImportRowError(row, "status", N_("must be one of %(choices)s"), choices=", ".join(STATUSES))
    verified_on = entry.get("verified_on")
    if verified_on is not None and not isinstance(verified_on, dt.date):
        try:
            verified_on = dt.date.fromisoformat(str(verified_on))
        except ValueError as err:
            raise ImportRowError(row, "verified_on", N_("must be a date such as 2026-11-01")) from err
    return {
        "slug": slug,
        "institution": _names(entry, row, "institution"),
        "title": _names(entry, row, "title"),
        "name": _names(entry, row, "name"),
        "governorate": governorate,
        "email": email,
        "letter_locale": letter_locale,
        "status": status,
        "verified_on": verified_on,
    }


def _read_entries(path: Path) -> list[Any]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImportFileError(
            N_("%(file)s: cannot be read as UTF-8: %(reason)s"), file=path.name, reason=str(err)
        ) from err
    return _entries(data, path.name)


def _entries(data: bytes, filename: str) -> list[Any]:
    """Officials from YAML (a list) or CSV (columns slug, institution_en ... institution_kmr, title_*, name_*,
    governorate, email, letter_locale, status, verified_on); CSV rows are numbered as in a spreadsheet."""
    path = Path(filename)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportFileError(
            N_("%(file)s: cannot be read as UTF-8: %(reason)s"), file=path.name, reason=str(err)
        ) from err
    if path.suffix.lower() != ".csv":
        try:
            entries = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ImportFileError(
                N_("%(file)s: cannot be read as UTF-8 YAML: %(reason)s"), file=path.name, reason=str(err)
            ) from err
        if not isinstance(entries, list):
            raise ImportFileError(N_("%(file)s: expected a list of officials"), file=path.name)
        return entries
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    entries = [None]  # row 1 is the header
    for row in rows:
        named = ("institution", "title", "name")
        entry: dict[str, Any] = {
            k: v for k, v in row.items() if k and not k.startswith(tuple(f"{n}_" for n in named))
        }
        for key in named:
            entry[key] = {code: row.get(f"{key}_{code}") or "" for code in LOCALE_CODES}
        entries.append(entry)
    return entries


def import_targets(db: Database, path: Path) -> TargetImportReport:
    """Import officials from a YAML or CSV file; existing slugs are updated, bad rows reported by number."""
    return _import_entries(db, _read_entries(path), path.name)


def import_targets_bytes(db: Database, data: bytes, filename: str) -> TargetImportReport:
    """The same for a file's content (an upload); ``filename``'s suffix says YAML or CSV."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(
            N_("%(file)s: more than %(max)d MB; an officials directory is much smaller"),
            file=filename,
            max=MAX_IMPORT_BYTES // 1_000_000,
        )
    return _import_entries(db, _entries(data, filename), filename)


def _import_entries(db: Database, entries: list[Any], filename: str) -> TargetImportReport:
    good: list[dict[str, Any]] = []
    rejected: list[ImportRowError] = []
    first_row: dict[str, int] = {}
    for row, entry in enumerate(entries, start=1):
        if entry is None:
            continue
        try:
            values = parse_target(entry, row)
        except ImportRowError as err:
            rejected.append(err)
            continue
        if values["slug"] in first_row:
            rejected.append(
                ImportRowError(
                    row,
                    "slug",
                    N_("'%(slug)s' is already used in row %(first)d of this file"),
                    slug=values["slug"],
                    first=first_row[values["slug"]],
                )
            )
            continue
        first_row[values["slug"]] = row
        good.append(values)
    created = updated = 0
    with db.session() as session:
        existing = repo.targets_by_slug(session, (g["slug"] for g in good))
        for values in good:
            target = existing.get(values["slug"])
            if target is None:
                session.add(Target(**values))
                created += 1
            else:
                for key, value in values.items():
                    setattr(target, key, value)
                updated += 1
    return TargetImportReport(filename, created, updated, rejected)


def list_targets(db: Database) -> list[dict[str, Any]]:
    """The directory, as plain data (for tables and ``--json``)."""
    with db.session() as session:
        return [
            {
                "slug": t.slug,
                "institution": t.institution,
                "title": t.title,
                "name": t.name,
                "governorate": t.governorate,
                "email": t.email,
                "letter_locale": t.letter_locale,
                "status": t.status,
                "verified_on": t.verified_on.isoformat() if t.verified_on else None,
            }
            for t in repo.list_targets(session)
        ]


def update_target(
    db: Database, slug: str, email: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """Correct one official's address or status (an address that bounced, an official who left office);
    a corrected address makes a bounced official active again."""
    with db.session() as session:
        target = repo.targets_by_slug(session, [slug]).get(slug)
        if target is None:
            raise NotFoundError(N_("no official has the slug %(slug)s"), slug=slug)
        if email is not None and email.strip() != target.email:
            try:
                target.email = check_address(email)
            except FieldProblem as problem:
                raise MailerError(N_("%(address)s: %(reason)s"), address=email, reason=problem) from problem
            if status is None and target.status == "bounced":
                target.status = "active"
        if status is not None:
            if status not in STATUSES:
                raise MailerError(N_("must be one of %(choices)s"), choices=", ".join(STATUSES))
            target.status = status
        return {"slug": target.slug, "email": target.email, "status": target.status}
