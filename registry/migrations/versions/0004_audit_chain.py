"""Hash-chained, append-only audit log: seq, role, patient ids, hashes, head row, triggers.

Existing rows are chained in id order (their content as it is now), so an upgraded
deployment verifies from its first row.

Revision ID: 0004_audit_chain
Revises: 0003_quarantine_idempotent
Create Date: 2026-12-02 05:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from registry.audit import AUDIT_MIGRATION_OPTION, GENESIS_HASH, link_digest

revision: str = "0004_audit_chain"
down_revision: str | None = "0003_quarantine_idempotent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)
_POSTGRES_TRIGGERS = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_append_only_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("actor_role", sa.String(32), nullable=True))
        batch.add_column(sa.Column("patient_ids", sa.Text(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.String(64), nullable=True))

    connection = op.get_bind()
    # Chaining the existing rows is the one UPDATE of audit rows there will ever be.
    connection.execution_options(**{AUDIT_MIGRATION_OPTION: True})
    rows = connection.execute(
        sa.text("SELECT id, at, actor, action, target, outcome, detail FROM audit_log ORDER BY id")
    ).all()
    previous = GENESIS_HASH
    for seq, row in enumerate(rows, start=1):
        digest = link_digest(
            seq=seq,
            at=_as_utc(row.at),
            actor=row.actor,
            actor_role=None,
            action=row.action,
            target=row.target,
            patient_ids="[]",
            outcome=row.outcome,
            detail=row.detail,
            prev_hash=previous,
        )
        connection.execute(
            sa.text(
                "UPDATE audit_log SET seq = :seq, patient_ids = '[]', prev_hash = :prev, "
                "row_hash = :hash WHERE id = :id"
            ),
            {"seq": seq, "prev": previous, "hash": digest, "id": row.id},
        )
        previous = digest
    connection.execution_options(**{AUDIT_MIGRATION_OPTION: False})

    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("patient_ids", existing_type=sa.Text(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(op.f("uq_audit_log_seq"), ["seq"])

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    # The head exists from the start, so concurrent first appenders lock the same row.
    connection.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, row_hash) VALUES (1, :seq, :hash)"),
        {"seq": len(rows), "hash": previous},
    )

    triggers = _POSTGRES_TRIGGERS if connection.dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        connection.execute(sa.text(statement))


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("DROP TRIGGER audit_log_append_only_truncate ON audit_log"))
        connection.execute(sa.text("DROP TRIGGER audit_log_append_only ON audit_log"))
        connection.execute(sa.text("DROP FUNCTION audit_log_append_only()"))
    else:
        connection.execute(sa.text("DROP TRIGGER audit_log_append_only_update"))
        connection.execute(sa.text("DROP TRIGGER audit_log_append_only_delete"))
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("uq_audit_log_seq"), type_="unique")
        for column in ("row_hash", "prev_hash", "patient_ids", "actor_role", "seq"):
            batch.drop_column(column)
