"""personal data encrypted at rest, blind indexes, retention marks

Every value that names or describes a person is encrypted with the installation's key (the vault given to
``mailer db upgrade``); equality lookups move to blind indexes; a letter's words go under a key of its own.

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import context, op

from mailer.vault import new_record_key, seal_record

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _vault():
    vault = context.config.attributes.get("vault")
    if vault is None or not vault.can_read:
        raise RuntimeError("this migration encrypts personal data: run `mailer db upgrade` with the full MAILER_DATA_KEY")
    return vault


def _rows(sql: str) -> list:
    return list(op.get_bind().execute(sa.text(sql)).mappings())


def _update(table: str, assignments: list[str], rows: list[dict]) -> None:
    if rows:
        sets = ", ".join(f"{a} = :{a}" for a in assignments)
        op.get_bind().execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), rows)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"

    # Supporters: address, name, governorate and tags encrypted; the address and governorate indexed blind.
    with op.batch_alter_table("supporter") as batch:
        batch.add_column(sa.Column("email_index", sa.String(64), nullable=True))
        batch.add_column(sa.Column("governorate_index", sa.String(64), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(20), server_default="import", nullable=False))
        batch.drop_constraint("uq_supporter_email_key", type_="unique")
        batch.drop_index("ix_supporter_governorate")
        for column in ("email", "name", "governorate"):
            batch.alter_column(column, type_=sa.Text())
        batch.alter_column("tags", type_=sa.Text(), **({"postgresql_using": "tags::text"} if pg else {}))
    supporters = _rows("SELECT id, email, name, governorate, tags FROM supporter")
    vault = _vault() if supporters else None
    _update(
        "supporter",
        ["email", "email_index", "name", "governorate", "governorate_index", "tags"],
        [
            {
                "id": s["id"],
                "email": vault.encrypt(s["email"], "supporter.email"),
                "email_index": vault.address_index(s["email"]),
                "name": vault.encrypt(s["name"], "supporter.name"),
                "governorate": vault.encrypt(s["governorate"], "supporter.governorate")
                if s["governorate"]
                else None,
                "governorate_index": vault.index(s["governorate"], "governorate") if s["governorate"] else None,
                "tags": vault.encrypt(json.dumps(_json(s["tags"]) or [], ensure_ascii=False), "supporter.tags"),
            }
            for s in supporters
        ],
    )
    with op.batch_alter_table("supporter") as batch:
        batch.alter_column("email_index", existing_type=sa.String(64), nullable=False)
        batch.drop_column("email_key")
        batch.create_unique_constraint("uq_supporter_email_index", ["email_index"])
        batch.create_index("ix_supporter_governorate_index", ["governorate_index"])

    # Letters: the writer's words under a key of the letter's own, that key encrypted with the vault.
    with op.batch_alter_table("letter") as batch:
        batch.add_column(sa.Column("private", sa.Text(), nullable=True))
        batch.add_column(sa.Column("key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("supporter_id", existing_type=Id, nullable=True)
        batch.create_index("ix_letter_supporter_id", ["supporter_id"])
    letters = _rows(
        "SELECT letter.id, letter.name, letter.governorate, letter.subject, letter.body, letter.note, "
        "supporter.email AS email FROM letter JOIN supporter ON supporter.id = letter.supporter_id"
    )
    vault = _vault() if letters else None
    sealed = []
    for row in letters:
        key = new_record_key()
        # The supporter's address was encrypted above: the letter keeps its own copy in clear inside.
        email = vault.decrypt(row["email"], "supporter.email")
        record = {k: row[k] or "" for k in ("name", "subject", "body", "note")}
        record.update(email=email, governorate=row["governorate"])
        sealed.append({"id": row["id"], "private": seal_record(key, record, "letter"), "key": vault.encrypt(key, "letter.key")})
    _update("letter", ["private", "key"], sealed)
    with op.batch_alter_table("letter") as batch:
        for column in ("name", "governorate", "subject", "body", "note"):
            batch.drop_column(column)

    # Messages: a provider's error may quote the address.
    with op.batch_alter_table("message") as batch:
        batch.alter_column("error", type_=sa.Text())
    errors = _rows("SELECT id, error FROM message WHERE error IS NOT NULL")
    vault = _vault() if errors else None
    _update("message", ["error"], [{"id": r["id"], "error": vault.encrypt(r["error"], "message.error")} for r in errors])

    # Events: the raw payload encrypted; what applying needs decided on arrival.
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("suppress_reason", sa.String(30), nullable=True))
        batch.add_column(sa.Column("scrubbed_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("payload", type_=sa.Text(), **({"postgresql_using": "payload::text"} if pg else {}))
    events = _rows("SELECT id, event_type, payload FROM event")
    vault = _vault() if events else None
    if events:
        from mailer.events import suppression_reason

        _update(
            "event",
            ["payload", "suppress_reason"],
            [
                {
                    "id": e["id"],
                    "payload": vault.encrypt(json.dumps(_json(e["payload"]), ensure_ascii=False), "event.payload"),
                    "suppress_reason": suppression_reason(e["event_type"], _json(e["payload"]) or {}),
                }
                for e in events
            ],
        )

    # Suppressions: found by blind index; the address kept encrypted for coordinators' lists.
    with op.batch_alter_table("suppression") as batch:
        batch.add_column(sa.Column("email_index", sa.String(64), nullable=True))
        batch.add_column(sa.Column("email", sa.Text(), nullable=True))
        batch.alter_column("source", type_=sa.Text())
        batch.drop_constraint("uq_suppression_email_key_scope_reason", type_="unique")
        batch.drop_index("ix_suppression_email_key")
    suppressions = _rows("SELECT id, email_key, source FROM suppression")
    vault = _vault() if suppressions else None
    _update(
        "suppression",
        ["email_index", "email", "source"],
        [
            {
                "id": s["id"],
                "email_index": vault.address_index(s["email_key"]),
                "email": vault.encrypt(s["email_key"], "suppression.email"),
                "source": vault.encrypt(s["source"] or "", "suppression.source"),
            }
            for s in suppressions
        ],
    )
    with op.batch_alter_table("suppression") as batch:
        batch.alter_column("email_index", existing_type=sa.String(64), nullable=False)
        batch.drop_column("email_key")
        batch.create_unique_constraint("uq_suppression_email_index_scope_reason", ["email_index", "scope", "reason"])
        batch.create_index("ix_suppression_email_index", ["email_index"])

    op.create_table(
        "installation_key",
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("index_check", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_installation_key"),
    )


def downgrade() -> None:
    raise NotImplementedError("personal data is not decrypted back into clear columns: restore a backup")
