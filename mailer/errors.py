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
└── SendError              a transport could not hand a message over
    ├── TransientSendError     try again later (connection refused, 4xx SMTP, 429)
    └── PermanentSendError     give up on this recipient (bad address, 5xx SMTP, 400)
"""

from __future__ import annotations


class MailerError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigError(MailerError):
    """A configuration variable has a wrong value."""


class LocaleError(MailerError):
    """A locale code is unknown or not enabled."""


class CampaignError(MailerError):
    """A campaign folder or its content is invalid."""


class ImportFileError(MailerError):
    """An import file cannot be used at all; nothing was stored."""


class ImportRowError(MailerError):
    """One row of an import file is invalid."""

    def __init__(self, row: int, field: str, reason: str) -> None:
        super().__init__(f"row {row}, {field}: {reason}")
        self.row = row
        self.field = field
        self.reason = reason


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
