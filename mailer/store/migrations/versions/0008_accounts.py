"""dashboard accounts, their sessions, and the append-only audit log

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", Id, primary_key=True),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("email_index", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("totp_confirmed_at", When, nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("removed_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_account"),
        sa.UniqueConstraint("email_index", name="uq_account_email_index"),
    )
    op.create_table(
        "account_session",
        sa.Column("id", Id, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "account_id",
            Id,
            sa.ForeignKey("account.id", ondelete="CASCADE", name="fk_account_session_account_id_account"),
            nullable=False,
        ),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("last_seen_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_account_session"),
        sa.UniqueConstraint("token_hash", name="uq_account_session_token_hash"),
    )
    op.create_index("ix_account_session_account_id", "account_session", ["account_id"])
    op.create_table(
        "audit_entry",
        sa.Column("id", Id, primary_key=True),
        sa.Column("at", When, nullable=False),
        sa.Column(
            "account_id", Id, sa.ForeignKey("account.id", name="fk_audit_entry_account_id_account"), nullable=True
        ),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entry"),
    )
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])
    # Append-only, enforced by the database: no process of ours, however confused, rewrites history.
    # Only ``origin`` may change, and only to be re-encrypted under a new key (mailer privacy rekey).
    record = "id, at, account_id, action, subject, detail"
    if op.get_bind().dialect.name == "sqlite":
        for name, verb in (("update", f"UPDATE OF {record}"), ("delete", "DELETE")):
            op.execute(
                f"CREATE TRIGGER audit_entry_no_{name} BEFORE {verb} ON audit_entry "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OF {record} OR DELETE OR TRUNCATE "
            "ON audit_entry "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    op.drop_table("audit_entry")
    op.drop_index("ix_account_session_account_id", "account_session")
    op.drop_table("account_session")
    op.drop_table("account")
