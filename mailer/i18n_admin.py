"""Catalog maintenance for ``mailer i18n``: extract, update, compile and status, through Babel's API."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from mailer.errors import N_, MailerError
from mailer.i18n import DOMAIN, catalog_path
from mailer.locales import REGISTRY, SOURCE_LOCALE
from mailer.resources import resource_dir

PROJECT = "solidarity-mailer"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
# Babel keeps a catalog's header comment but drops unknown headers, so the review status lives there:
# a line "Review status: draft" (machine-drafted, a native speaker must review) or "Review status: reviewed".
REVIEW_STATUS = re.compile(r"Review status:\s*(\w+)")


def _root() -> Path:
    return resource_dir("translations").parent


def _template_path() -> Path:
    return resource_dir("translations") / f"{DOMAIN}.pot"


def _target_codes() -> list[str]:
    return [code for code in REGISTRY if code != SOURCE_LOCALE]


def extract(target: Path | None = None) -> int:
    """Write messages.pot (or ``target``) from the Python code and templates; the number of messages."""
    root = _root()
    with (resource_dir("translations") / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")  # type: ignore[no-untyped-call]
    catalog = Catalog(project=PROJECT, msgid_bugs_address="", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root),
        method_map,
        options_map,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    ):
        if filename.startswith(("tests", ".venv", "bench")):
            continue
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    with (target or _template_path()).open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True)
    return len(catalog)


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def update() -> list[tuple[str, bool]]:
    """Merge messages.pot into each locale's catalog; (locale, created) per locale."""
    if not _template_path().exists():
        raise MailerError(N_("translations/messages.pot is missing: run `mailer i18n extract` first"))
    template = _read(_template_path())
    results = []
    for code in _target_codes():
        locale = REGISTRY[code]
        path = catalog_path(code)
        created = not path.exists()
        if created:
            catalog = Catalog(locale=locale.babel_id, project=PROJECT, charset="utf-8")
            catalog.header_comment = (
                f"# {locale.english_name} ({code}) translations for {PROJECT}.\n"
                "# Review status: draft (machine-drafted; a native speaker must review before release)"
            )
        else:
            catalog = _read(path, locale.babel_id)
        catalog.update(template, no_fuzzy_matching=True)
        _set_headers(catalog, code)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, ignore_obsolete=True, sort_output=True)
        results.append((code, created))
    return results


def _set_headers(catalog: Catalog, code: str) -> None:
    # Babel derives Plural-Forms from the locale; the registry's tests check that both agree.
    catalog.revision_date = dt.datetime.now(dt.UTC)


def compile_catalogs() -> list[tuple[str, int]]:
    """Write messages.mo beside each messages.po; (locale, messages compiled) per locale."""
    results = []
    for code in _target_codes():
        path = catalog_path(code)
        if not path.exists():
            raise MailerError(
                N_("%(file)s is missing: run `mailer i18n update` first"), file=str(path.relative_to(_root()))
            )
        catalog = _read(path, REGISTRY[code].babel_id)
        errors = [f"{message.id!r}: {'; '.join(map(str, errs))}" for message, errs in catalog.check()]
        if errors:
            raise MailerError(
                N_("%(file)s: %(problems)s"),
                file=str(path.relative_to(_root())),
                problems=" | ".join(errors[:5]),
            )
        with catalog_path(code, ".mo").open("wb") as handle:
            write_mo(handle, catalog)
        results.append((code, sum(1 for m in catalog if m.id and m.string and not m.fuzzy)))
    return results


@dataclass(frozen=True)
class CatalogStatus:
    locale: str
    total: int
    translated: int
    fuzzy: int
    review_status: str

    @property
    def untranslated(self) -> int:
        return self.total - self.translated - self.fuzzy

    @property
    def percent(self) -> float:
        return 100.0 * self.translated / self.total if self.total else 100.0

    def to_json(self) -> dict[str, Any]:
        return {
            "locale": self.locale,
            "total": self.total,
            "translated": self.translated,
            "fuzzy": self.fuzzy,
            "untranslated": self.untranslated,
            "percent": round(self.percent, 1),
            "review_status": self.review_status,
        }


def _is_translated(string: Any) -> bool:
    if isinstance(string, tuple | list):
        return all(bool(s) for s in string)
    return bool(string)


def status() -> list[CatalogStatus]:
    """How much of messages.pot each locale's catalog translates."""
    if not _template_path().exists():
        raise MailerError(N_("translations/messages.pot is missing: run `mailer i18n extract` first"))
    template_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in _read(_template_path()) if m.id}
    rows = []
    for code in _target_codes():
        path = catalog_path(code)
        translated = fuzzy = 0
        review = "missing"
        if path.exists():
            catalog = _read(path, REGISTRY[code].babel_id)
            found = REVIEW_STATUS.search(catalog.header_comment or "")
            review = found.group(1) if found else "-"
            for message in catalog:
                key = message.id if isinstance(message.id, str) else message.id[0]
                if not message.id or key not in template_ids:
                    continue
                if message.fuzzy:
                    fuzzy += 1
                elif _is_translated(message.string):
                    translated += 1
        rows.append(CatalogStatus(code, len(template_ids), translated, fuzzy, review))
    return rows
