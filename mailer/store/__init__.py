"""The database of record: models, the repository (every query lives there) and migrations."""

from mailer.store.database import Database, upgrade_database

__all__ = ["Database", "upgrade_database"]
