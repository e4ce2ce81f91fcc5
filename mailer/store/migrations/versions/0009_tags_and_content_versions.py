"""blind indexes of supporters' tags, so that a segment can select by tag; a version per content text

Revision ID: 0009
Revises: 0008
"""

import json

import sqlalchemy as sa
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("campaign_content") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "supporter_tag",
        sa.Column(
            "supporter_id",
            Id,
            sa.ForeignKey("supporter.id", ondelete="CASCADE", name="fk_supporter_tag_supporter_id_supporter"),
            nullable=False,
        ),
        sa.Column("tag_index", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("supporter_id", "tag_index", name="pk_supporter_tag"),
    )
    op.create_index("ix_supporter_tag_tag_index", "supporter_tag", ["tag_index"])
    bind = op.get_bind()
    vault = context.config.attributes.get("vault")
    after = 0
    while True:  # one page at a time: memory stays flat on a large list
        rows = bind.execute(
            sa.text("SELECT id, tags FROM supporter WHERE id > :after ORDER BY id LIMIT 1000"), {"after": after}
        ).all()
        if not rows:
            break
        if vault is None or not vault.can_read:
            raise RuntimeError("supporters' tags are indexed: run `mailer db upgrade` with the full MAILER_DATA_KEY")
        indexes = [
            {"supporter_id": sid, "tag_index": vault.index(tag, "tag")}
            for sid, stored in rows
            if stored
            for tag in sorted(set(json.loads(vault.decrypt(stored, "supporter.tags"))))
        ]
        if indexes:
            bind.execute(
                sa.text("INSERT INTO supporter_tag (supporter_id, tag_index) VALUES (:supporter_id, :tag_index)"),
                indexes,
            )
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("campaign_content") as batch:
        batch.drop_column("version")
    op.drop_index("ix_supporter_tag_tag_index", "supporter_tag")
    op.drop_table("supporter_tag")
