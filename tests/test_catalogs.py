"""The catalogs: complete, in step with the code, with the registry's plural forms, marked draft."""

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from mailer import i18n_admin
from mailer.i18n import catalog_path, translations
from mailer.locales import REGISTRY

TARGETS = [code for code in REGISTRY if code != "en"]


def msgids(path: Path) -> set[str]:
    with path.open("rb") as handle:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}


def test_every_string_in_the_code_is_in_every_catalog(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    i18n_admin.extract(fresh)
    expected = msgids(fresh)
    for code in TARGETS:
        missing = expected - msgids(catalog_path(code))
        assert not missing, (
            f"{code} lacks {sorted(missing)[:5]}: run mailer i18n extract && mailer i18n update"
        )


def test_every_catalog_is_complete_and_says_whether_it_was_reviewed() -> None:
    """Drafts stay marked as drafts until a native speaker reviews them; then the header says so."""
    for row in i18n_admin.status():
        assert row.percent == 100, row
        assert row.review_status in ("draft", "reviewed"), row


@pytest.mark.parametrize("code", TARGETS)
def test_plural_forms_header_matches_the_registry(code: str) -> None:
    text = catalog_path(code).read_text(encoding="utf-8")
    found = re.search(r"nplurals=(\d+)", text)
    assert found is not None
    assert int(found.group(1)) == REGISTRY[code].nplurals


@pytest.mark.parametrize("code", TARGETS)
def test_msgfmt_check_passes(code: str) -> None:
    result = subprocess.run(
        ["msgfmt", "--check", "--output-file=/dev/null", str(catalog_path(code))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_arabic_plurals_choose_among_six_forms() -> None:
    catalog = translations("ar")
    plural = catalog.plural  # type: ignore[attr-defined]
    assert [plural(n) for n in (0, 1, 2, 3, 11, 100)] == [0, 1, 2, 3, 4, 5]
    forms = [
        catalog.ngettext("Extracted %(num)d message.", "Extracted %(num)d messages.", n) for n in (0, 1, 2, 3)
    ]
    assert len(set(forms)) == 4
    assert "رسالتان" in forms[2]
