"""mailout controls: status reason, schedule, checkpoint; message dispatch and provider-call marks

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailout") as batch:
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checkpoint", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("provider_called_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_message_status_not_before", ["status", "not_before"])


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_status_not_before")
        batch.drop_column("provider_called_at")
        batch.drop_column("dispatched_at")
    with op.batch_alter_table("mailout") as batch:
        batch.drop_column("checkpoint")
        batch.drop_column("scheduled_at")
        batch.drop_column("status_reason")
