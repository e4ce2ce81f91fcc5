"""consent on confirmation, alert snapshots per mailout, events applied, shared throttles

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letter") as batch:
        batch.add_column(sa.Column("opt_in", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_event_applied_at", ["applied_at"])
    # Events stored before this version were applied by the task of their time.
    op.execute(sa.text("UPDATE event SET applied_at = received_at"))
    op.create_table(
        "mailout_content",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailout_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("preheader", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailout_id"],
            ["mailout.id"],
            name="fk_mailout_content_mailout_id_mailout",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mailout_content"),
        sa.UniqueConstraint("mailout_id", "locale", name="uq_mailout_content_mailout_id_locale"),
    )
    op.create_table(
        "throttle",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_throttle"),
    )
    op.create_index("ix_throttle_expires_at", "throttle", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_throttle_expires_at", table_name="throttle")
    op.drop_table("throttle")
    op.drop_table("mailout_content")
    with op.batch_alter_table("event") as batch:
        batch.drop_index("ix_event_applied_at")
        batch.drop_column("applied_at")
    with op.batch_alter_table("letter") as batch:
        batch.drop_column("opt_in")
