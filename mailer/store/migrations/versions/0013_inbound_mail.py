"""inbound mail (replies, bounces, emailed unsubscribes) and supporters' answers to the follow-up

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", Id, primary_key=True),
        sa.Column("door", sa.String(20), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("received_at", When, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("processed_at", When, nullable=True),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("message_id", Id, sa.ForeignKey("message.id", name="fk_inbound_message_message_id_message"), nullable=True),
        sa.Column("letter_id", Id, sa.ForeignKey("letter.id", name="fk_inbound_message_letter_id_letter"), nullable=True),
        sa.Column("target_id", Id, sa.ForeignKey("target.id", name="fk_inbound_message_target_id_target"), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("private", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("purged_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_message"),
        sa.UniqueConstraint("dedupe_key", name="uq_inbound_message_dedupe_key"),
    )
    for column in ("processed_at", "message_id", "letter_id", "target_id"):
        op.create_index(f"ix_inbound_message_{column}", "inbound_message", [column])
    op.create_table(
        "letter_answer",
        sa.Column("id", Id, primary_key=True),
        sa.Column("letter_id", Id, sa.ForeignKey("letter.id", name="fk_letter_answer_letter_id_letter"), nullable=False),
        sa.Column("target_id", Id, sa.ForeignKey("target.id", name="fk_letter_answer_target_id_target"), nullable=False),
        sa.Column("answer", sa.String(10), nullable=False),
        sa.Column("answered_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_letter_answer"),
        sa.UniqueConstraint("letter_id", "target_id", name="uq_letter_answer_letter_id_target_id"),
    )
    op.create_index("ix_letter_answer_target_id", "letter_answer", ["target_id"])


def downgrade() -> None:
    op.drop_table("letter_answer")
    op.drop_table("inbound_message")
