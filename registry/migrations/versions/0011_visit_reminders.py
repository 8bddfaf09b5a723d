"""Visit reminders: reminder rows (due, lease, idempotency key), their delivery log and the
patient's SMS opt-in for them.

Revision ID: 0011_visit_reminders
Revises: 0010_incidents
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0011_visit_reminders"
down_revision: str | None = "0010_incidents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visit_reminder_preferences",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("sms_opt_in", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_visit_reminder_preferences_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_visit_reminder_preferences")),
    )
    op.create_table(
        "visit_reminders",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("task_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("anchor_at", _TIMESTAMP, nullable=False),
        sa.Column("due_at", _TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", _TIMESTAMP, nullable=True),
        sa.Column("done_at", _TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=191), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["visit_tasks.id"], name=op.f("fk_visit_reminders_task_id_visit_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_reminders")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_visit_reminders_idempotency_key")),
    )
    op.create_index(
        "ix_visit_reminders_status_due_at", "visit_reminders", ["status", "due_at"], unique=False
    )
    op.create_index("ix_visit_reminders_task_id", "visit_reminders", ["task_id"], unique=False)
    op.create_table(
        "visit_reminder_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=191), nullable=False),
        sa.Column("reminder_id", _ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("delivered_at", _TIMESTAMP, nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reminder_id"],
            ["visit_reminders.id"],
            name=op.f("fk_visit_reminder_deliveries_reminder_id_visit_reminders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_reminder_deliveries")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_visit_reminder_deliveries_idempotency_key")
        ),
    )
    op.create_index(
        op.f("ix_visit_reminder_deliveries_reminder_id"),
        "visit_reminder_deliveries",
        ["reminder_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_visit_reminder_deliveries_reminder_id"), table_name="visit_reminder_deliveries"
    )
    op.drop_table("visit_reminder_deliveries")
    op.drop_index("ix_visit_reminders_task_id", table_name="visit_reminders")
    op.drop_index("ix_visit_reminders_status_due_at", table_name="visit_reminders")
    op.drop_table("visit_reminders")
    op.drop_table("visit_reminder_preferences")
