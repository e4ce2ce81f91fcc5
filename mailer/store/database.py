"""Engines and sessions for SQLite (embedded default) and PostgreSQL, and schema upgrades through Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mailer.errors import N_, ConfigError, MailerError
from mailer.store.models import InstallationKey
from mailer.vault import Vault

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (status, web) run while a worker writes; the busy timeout makes writers queue
    # instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_file(path: Path) -> None:
    """The SQLite file (and its journal) readable by its owner only, created so from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate == path and not candidate.exists():
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT, 0o600))
        if candidate.exists():
            candidate.chmod(0o600)


def make_engine(url: str, vault: Vault | None = None) -> Engine:
    """An engine with the settings each database needs; personal columns use ``vault``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        # hide_parameters: a failing statement's values (blind indexes, ciphertext) stay out of logs too.
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        # A new -wal or -shm file takes the mode of the database file, which is private.
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    engine.dialect.mailer_vault = vault  # type: ignore[attr-defined]  # read by the Private column types
    return engine


class Database:
    """One database: an engine, a session factory, and the vault its personal columns go through."""

    def __init__(self, url: str, vault: Vault) -> None:
        self.url = url
        self.vault = vault
        self.engine = make_engine(url, vault)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def check_current(self) -> None:
        """Refuse to work on a database whose schema is behind the code."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_alembic_config(self.url)).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            raise MailerError(N_("the database schema is not up to date: run `mailer db upgrade` first"))
        self.check_keys()

    def check_keys(self) -> None:
        """Refuse a key of another installation, or a key list that lacks one the data is under; register
        the current key (a process starting with a new key makes it known to the rest)."""
        if not inspect(self.engine).has_table(InstallationKey.__tablename__):
            return
        with self.session() as session:
            check_keys(session, self.vault)

    def dispose(self) -> None:
        self.engine.dispose()


def check_keys(session: Session, vault: Vault) -> None:
    known = {row.kid: row.index_check for row in session.scalars(select(InstallationKey))}
    if any(check != vault.index_check() for check in known.values()):
        raise ConfigError(
            N_(
                "MAILER_DATA_KEY belongs to another installation: this database was written with another "
                "key (restore the right key; never make a new one for existing data)"
            )
        )
    # A write-only process reads nothing, so older keys are no concern of its: only a reader needs them all.
    missing = sorted(set(known) - set(vault.kids())) if vault.can_read else []
    if missing:
        raise ConfigError(
            N_(
                "MAILER_DATA_KEY lacks the key %(kids)s that data in this database is under: list it after "
                "the current key until `mailer privacy rekey` has moved everything to the new one"
            ),
            kids=", ".join(missing),
        )
    if vault.current.kid not in known:
        session.add(InstallationKey(kid=vault.current.kid, index_check=vault.index_check()))


def _alembic_config(url: str, vault: Vault | None = None) -> Any:
    """Alembic is imported only by what migrates or checks the schema: it weighs 40 MB, which every worker
    process would otherwise carry for nothing."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    config.attributes["vault"] = vault
    return config


def upgrade_database(url: str, vault: Vault, revision: str = "head") -> None:
    """Create or migrate the schema to ``revision`` (a migration may encrypt what older versions kept in
    clear, hence the vault), then check and register the keys."""
    from alembic import command

    command.upgrade(_alembic_config(url, vault), revision)
    database = Database(url, vault)
    try:
        database.check_keys()
    finally:
        database.dispose()
