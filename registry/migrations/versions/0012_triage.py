"""Triage reviews: "mark reviewed" of a patient's triage entry, per local day, with undo.

Revision ID: 0012_triage
Revises: 0011_visit_reminders
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0012_triage"
down_revision: str | None = "0011_visit_reminders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_reviews",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("review_day", sa.Date(), nullable=False),
        sa.Column("period_first", sa.Date(), nullable=False),
        sa.Column("period_last", sa.Date(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", _TIMESTAMP, nullable=False),
        sa.Column("undone_at", _TIMESTAMP, nullable=True),
        sa.Column("undone_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_triage_reviews_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_reviews")),
    )
    op.create_index(
        "ix_triage_reviews_patient_id_review_day",
        "triage_reviews",
        ["patient_id", "review_day"],
        unique=False,
    )
    op.create_index(
        "uq_triage_reviews_in_force",
        "triage_reviews",
        ["patient_id", "review_day"],
        unique=True,
        sqlite_where=sa.text("undone_at IS NULL"),
        postgresql_where=sa.text("undone_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_triage_reviews_in_force", table_name="triage_reviews")
    op.drop_index("ix_triage_reviews_patient_id_review_day", table_name="triage_reviews")
    op.drop_table("triage_reviews")
