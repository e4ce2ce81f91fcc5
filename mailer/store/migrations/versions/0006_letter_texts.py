"""the letter's texts as its writer confirmed them

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letter") as batch:
        batch.add_column(sa.Column("texts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("letter") as batch:
        batch.drop_column("texts")
