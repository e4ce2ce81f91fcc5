"""letters to officials; supporters who receive mailouts

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "letter",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supporter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("governorate", sa.String(length=50), nullable=True),
        sa.Column("share", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"], name=op.f("fk_letter_campaign_id_campaign")),
        sa.ForeignKeyConstraint(["supporter_id"], ["supporter.id"], name=op.f("fk_letter_supporter_id_supporter")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter")),
    )
    with op.batch_alter_table("supporter") as batch:
        batch.add_column(sa.Column("subscribed", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("letter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.create_index("ix_message_letter_id", ["letter_id"])
        batch.create_foreign_key("fk_message_letter_id_letter", "letter", ["letter_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint("fk_message_letter_id_letter", type_="foreignkey")
        batch.drop_index("ix_message_letter_id")
        batch.drop_column("letter_id")
    with op.batch_alter_table("supporter") as batch:
        batch.drop_column("subscribed")
    op.drop_table("letter")
