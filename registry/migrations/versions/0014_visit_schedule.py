"""Nurse day routes: each nurse's capacity (work hours, maximum visits, minutes per visit
and travel between visits, time zone).

Revision ID: 0014_visit_schedule
Revises: 0013_notification_prefs
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0014_visit_schedule"
down_revision: str | None = "0013_notification_prefs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visit_capacities",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("work_start_minute", sa.Integer(), nullable=False),
        sa.Column("work_end_minute", sa.Integer(), nullable=False),
        sa.Column("max_visits", sa.Integer(), nullable=False),
        sa.Column("minutes_per_visit", sa.Integer(), nullable=False),
        sa.Column("travel_minutes", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "work_start_minute < work_end_minute", name=op.f("ck_visit_capacities_work_hours")
        ),
        sa.CheckConstraint(
            "work_start_minute >= 0 AND work_end_minute <= 1440",
            name=op.f("ck_visit_capacities_day_minutes"),
        ),
        sa.CheckConstraint("max_visits > 0", name=op.f("ck_visit_capacities_max_visits")),
        sa.CheckConstraint(
            "minutes_per_visit > 0 AND travel_minutes >= 0",
            name=op.f("ck_visit_capacities_durations"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_accounts.id"],
            name=op.f("fk_visit_capacities_user_id_user_accounts"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_visit_capacities")),
    )


def downgrade() -> None:
    op.drop_table("visit_capacities")
