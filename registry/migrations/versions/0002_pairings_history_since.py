"""Pairings record how much of a device's stored history is the patient's (history_since).

Until this revision a pairing accepted readings measured up to 90 days before it started,
so a second-hand meter's old records became the new patient's. Now the decision is made
when binding (``vitalgate registry device bind --history-since``) and stored per pairing.

Existing pairings get ``history_since = valid_from`` (no stored history): the safe choice
for readings whose owner nobody decided. Records older than a pairing that arrive from now
on are quarantined as ``before_binding``; a person can release them, or re-bind with
``--history-since``.

Revision ID: 0002_pairings_history_since
Revises: 0001
Create Date: 2026-12-02 05:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_pairings_history_since"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)
_CHECK_NAME = "ck_device_pairings_history_before_start"


def upgrade() -> None:
    # Batch mode: SQLite cannot add a NOT NULL column without a default or a CHECK
    # constraint in place; it copies the table (PostgreSQL runs plain ALTER TABLE).
    with op.batch_alter_table("device_pairings") as batch:
        batch.add_column(sa.Column("history_since", _TIMESTAMP, nullable=True))
    op.execute(sa.text("UPDATE device_pairings SET history_since = valid_from"))
    with op.batch_alter_table("device_pairings") as batch:
        batch.alter_column("history_since", existing_type=_TIMESTAMP, nullable=False)
        batch.create_check_constraint(op.f(_CHECK_NAME), "history_since <= valid_from")


def downgrade() -> None:
    with op.batch_alter_table("device_pairings") as batch:
        batch.drop_constraint(op.f(_CHECK_NAME), type_="check")
        batch.drop_column("history_since")
