"""launches that send while they list: a mailout being listed never counts as finished; the letters queue
found by index whatever the size of a mailout's ledger

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailout") as batch:
        batch.add_column(sa.Column("listing", sa.Boolean(), nullable=False, server_default=sa.false()))
    letters_only = sa.text("kind = 'letter'")
    op.create_index(
        "ix_message_kind_dispatched_at",
        "message",
        ["kind", "dispatched_at"],
        postgresql_where=letters_only,
        sqlite_where=letters_only,
    )


def downgrade() -> None:
    op.drop_index("ix_message_kind_dispatched_at", table_name="message")
    with op.batch_alter_table("mailout") as batch:
        batch.drop_column("listing")
