"""Idempotent quarantine: an identity per entry, unique with the reason; release marks.

Existing rows get their identity computed the way :mod:`registry.quarantine` computes it
(frozen here, so a later change there cannot change what this migration did). Where the
table already holds repeats of one entry, the oldest keeps the identity and the repeats
keep ``NULL``: they stay for review, nothing is deleted.

Revision ID: 0003_quarantine_idempotent
Revises: 0002_pairings_history_since
Create Date: 2026-12-02 05:00:00+00:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

revision: str = "0003_quarantine_idempotent"
down_revision: str | None = "0002_pairings_history_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)
_VERIFIED_ID_REASONS: Final = frozenset({"plausibility", "store_rejected"})
"""Reasons given in 0001 only to readings that passed the contract (their id is derived)."""


def _identity(gateway_id: str | None, reading_id: str | None, raw: bytes, reason: str) -> str:
    digest = hashlib.sha256((gateway_id or "").encode() + b"\x1f")
    if reading_id is not None and reason in _VERIFIED_ID_REASONS:
        digest.update(reading_id.encode())
        return "id:" + digest.hexdigest()
    digest.update(raw)
    return "raw:" + digest.hexdigest()


def upgrade() -> None:
    op.add_column("quarantine", sa.Column("identity", sa.String(72), nullable=True))
    op.add_column("quarantine", sa.Column("released_at", _TIMESTAMP, nullable=True))
    op.add_column("quarantine", sa.Column("released_by", sa.Text(), nullable=True))
    op.add_column("quarantine", sa.Column("release_reason", sa.Text(), nullable=True))
    quarantine = sa.table(
        "quarantine",
        sa.column("id", sa.BigInteger()),
        sa.column("gateway_id", sa.Text()),
        sa.column("reading_id", sa.Text()),
        sa.column("raw", sa.LargeBinary()),
        sa.column("reason", sa.String(32)),
        sa.column("identity", sa.String(72)),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            quarantine.c.id,
            quarantine.c.gateway_id,
            quarantine.c.reading_id,
            quarantine.c.raw,
            quarantine.c.reason,
        ).order_by(quarantine.c.id)
    )
    seen: set[tuple[str, str]] = set()
    for row in rows.all():
        identity = _identity(row.gateway_id, row.reading_id, row.raw, row.reason)
        if (identity, row.reason) in seen:
            continue
        seen.add((identity, row.reason))
        connection.execute(
            sa.update(quarantine).where(quarantine.c.id == row.id).values(identity=identity)
        )
    op.create_index(
        "uq_quarantine_identity_reason", "quarantine", ["identity", "reason"], unique=True
    )
    op.create_index(
        "ix_quarantine_gateway_id_received_at", "quarantine", ["gateway_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_gateway_id_received_at", table_name="quarantine")
    op.drop_index("uq_quarantine_identity_reason", table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("release_reason")
        batch.drop_column("released_by")
        batch.drop_column("released_at")
        batch.drop_column("identity")
