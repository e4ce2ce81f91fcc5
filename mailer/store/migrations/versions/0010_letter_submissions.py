"""a letter remembers the form post that made it, so that the same post twice makes one letter

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letter") as batch:
        batch.add_column(sa.Column("submission", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_letter_submission", ["submission"])


def downgrade() -> None:
    with op.batch_alter_table("letter") as batch:
        batch.drop_constraint("uq_letter_submission", type_="unique")
        batch.drop_column("submission")
