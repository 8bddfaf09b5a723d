"""Alert evaluator: partition leases and evaluation watermarks.

Revision ID: 0008_evaluation
Revises: 0007_alerts
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0008_evaluation"
down_revision: str | None = "0007_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluation_leases",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_evaluation_leases")),
    )
    op.create_table(
        "evaluation_watermarks",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("evaluated_through", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_evaluation_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("evaluation_watermarks")
    op.drop_table("evaluation_leases")
