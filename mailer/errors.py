"""The error tree. Every error a user can cause is a ``MailerError`` with a message that names the culprit.

MailerError
├── ConfigError            a MAILER_* variable is wrong (names the variable)
├── LocaleError            an unknown or unsupported locale code
├── CampaignError          a campaign folder is invalid (names file and line)
├── ImportRowError         one CSV/YAML row is invalid (names file, row and field); collected, not raised
├── ImportFileError        a whole import file is unusable (encoding, header); nothing is stored
├── NotFoundError          a campaign, mailout or supporter that does not exist
├── MailoutError           a launch or control request that cannot be honoured
├── RenderError            a template or placeholder problem at render time
├── FieldProblem           one field's value is refused (fields.py: names, subjects, addresses)
├── QueueUnavailable       the broker refused a task; the rows wait in the ledger (tasking.py)
└── SendError              a transport could not hand a message over
    ├── TransientSendError     try again later (connection refused, 4xx SMTP, 429)
    └── PermanentSendError     give up on this recipient (bad address, 5xx SMTP, 400)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from gettext import NullTranslations
from typing import Any

_ENGLISH = NullTranslations()


def N_(message: str) -> str:
    """Mark a message for the catalogs; it is translated where it is shown, in that place's language."""
    return message


class MailerError(Exception):
    """Root of every error the engine raises on purpose.

    The message is a catalog template with named parameters, so that each edge can show it in its own
    language (the command line in MAILER_LANGUAGE, a web page in the page's); ``str()`` gives English.
    """

    def __init__(self, message: str = "", /, **params: Any) -> None:
        self.template = message
        self.params = params
        super().__init__(message)

    def render(self, translations: NullTranslations = _ENGLISH) -> str:
        """The message in the language of ``translations`` (parameters that are errors are rendered too)."""
        text = translations.gettext(self.template)
        if not self.params:
            return text
        return text % {k: _render_value(v, translations) for k, v in self.params.items()}

    def __str__(self) -> str:
        return self.render()

    def to_json(self) -> str:
        """The message as data, to store and show later in a reader's language (see :meth:`from_json`)."""
        return json.dumps({"template": self.template, "params": self.params}, ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> MailerError:
        """A stored message back; plain text (from an older version) is kept as it is."""
        try:
            data = json.loads(text)
            return cls(str(data["template"]), **dict(data["params"]))
        except (ValueError, KeyError, TypeError):
            return cls("%(text)s", text=text)


def _render_value(value: Any, translations: NullTranslations) -> Any:
    return value.render(translations) if isinstance(value, MailerError) else value


class ConfigError(MailerError):
    """A configuration variable has a wrong value."""


class LocaleError(MailerError):
    """A locale code is unknown or not enabled."""


class CampaignProblem(MailerError):
    """One problem in one file of a campaign folder."""

    def __init__(self, file: str, line: int | None, message: str, /, **params: Any) -> None:
        super().__init__(message, **params)
        self.file = file
        self.line = line

    def render(self, translations: NullTranslations = _ENGLISH) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {super().render(translations)}"


class CampaignError(MailerError):
    """A campaign folder or its content is invalid: every problem found, each with its file and line."""

    def __init__(self, folder: str, problems: Sequence[CampaignProblem]) -> None:
        super().__init__("campaign folder %(folder)s", folder=folder)
        self.folder = folder
        self.problems = list(problems)

    def render(self, translations: NullTranslations = _ENGLISH) -> str:
        header = translations.ngettext(
            "campaign folder %(folder)s has %(num)d problem:",
            "campaign folder %(folder)s has %(num)d problems:",
            len(self.problems),
        ) % {"folder": self.folder, "num": len(self.problems)}
        return "\n".join([header, *(f"  {p.render(translations)}" for p in self.problems)])


class ImportFileError(MailerError):
    """An import file cannot be used at all; nothing was stored."""


class ImportRowError(MailerError):
    """One row of an import file is invalid; the message is the reason, ``row`` and ``field`` say where."""

    def __init__(self, row: int, field: str, reason: str, /, **params: Any) -> None:
        super().__init__(reason, **params)
        self.row = row
        self.field = field

    @property
    def reason(self) -> str:
        return super().render()

    def render(self, translations: NullTranslations = _ENGLISH) -> str:
        where = translations.gettext("row %(row)d, %(field)s: %(reason)s")
        return where % {"row": self.row, "field": self.field, "reason": super().render(translations)}

    def render_reason(self, translations: NullTranslations = _ENGLISH) -> str:
        return super().render(translations)


class NotFoundError(MailerError):
    """A named object does not exist."""


class MailoutError(MailerError):
    """A mailout request cannot be honoured."""


class RenderError(MailerError):
    """A message could not be rendered."""


class SendError(MailerError):
    """A transport could not hand a message over."""


class TransientSendError(SendError):
    """A failure worth retrying later."""


class PermanentSendError(SendError):
    """A failure that retrying will not fix."""
