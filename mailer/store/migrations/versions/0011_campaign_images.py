"""a campaign's share images: the picture a chat shows for its link, per locale

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_image",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name="fk_campaign_image_campaign_id_campaign", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_image"),
        sa.UniqueConstraint("campaign_id", "locale", name="uq_campaign_image_campaign_id_locale"),
    )


def downgrade() -> None:
    op.drop_table("campaign_image")
