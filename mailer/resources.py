"""Where the templates and catalogs live: inside the installed package, or beside it in a source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from mailer.errors import N_, MailerError

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: Literal["templates", "translations"]) -> Path:
    """The folder of ``templates/`` or ``translations/`` for this installation."""
    for candidate in (_PACKAGE / "_resources" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise MailerError(
        N_("the %(name)s/ folder is missing from this installation of solidarity-mailer"), name=name
    )


def demo_dir() -> Path:
    """The seed campaign and demo data shipped inside the package."""
    return _PACKAGE / "demo"
