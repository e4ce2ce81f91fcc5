"""Alembic environment: the URL comes from the caller (``mailer db upgrade``), never from an ini file."""

from alembic import context

from mailer.store.database import make_engine
from mailer.store.models import Base

config = context.config
url = str(config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url"))
engine = make_engine(url)
with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        # Rebuilding a table (SQLite's way to alter one) drops it: its children must not stop that.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # ends the transaction SQLAlchemy began for it: the migrations run their own
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
