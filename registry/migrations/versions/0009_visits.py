"""Nurse visits: visit tasks (one open per patient + reason), their append-only events,
visit records and per-nurse calendar-feed tokens (hashed).

Revision ID: 0009_visits
Revises: 0008_evaluation
Create Date: 2026-12-02 16:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0009_visits"
down_revision: str | None = "0008_evaluation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("revoked_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_accounts.id"], name=op.f("fk_calendar_tokens_user_id_user_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_calendar_tokens_user_id"), "calendar_tokens", ["user_id"], unique=False
    )
    op.create_table(
        "visit_tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("reason_kind", sa.String(length=16), nullable=False),
        sa.Column("reason_key", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("earliest", _TIMESTAMP, nullable=False),
        sa.Column("latest", _TIMESTAMP, nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", _TIMESTAMP, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("closed_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_visit_tasks_alert_id_alerts")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_visit_tasks_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_tasks")),
        sa.UniqueConstraint("code", name=op.f("uq_visit_tasks_code")),
    )
    op.create_index(op.f("ix_visit_tasks_alert_id"), "visit_tasks", ["alert_id"], unique=False)
    op.create_index(
        "ix_visit_tasks_patient_id_id", "visit_tasks", ["patient_id", "id"], unique=False
    )
    op.create_index(
        "ix_visit_tasks_status_latest", "visit_tasks", ["status", "latest"], unique=False
    )
    op.create_index(
        "uq_visit_tasks_open_patient_reason",
        "visit_tasks",
        ["patient_id", "reason_key"],
        unique=True,
        sqlite_where=sa.text("status IN ('requested', 'scheduled')"),
        postgresql_where=sa.text("status IN ('requested', 'scheduled')"),
    )
    op.create_table(
        "visit_records",
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("check_in_at", _TIMESTAMP, nullable=False),
        sa.Column("check_out_at", _TIMESTAMP, nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("assessment", sa.Text(), nullable=False),
        sa.Column("programme", sa.String(length=32), nullable=True),
        sa.Column("classification", sa.String(length=32), nullable=True),
        sa.Column("reading_ids", sa.Text(), nullable=False),
        sa.Column(
            "next_task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["next_task_id"],
            ["visit_tasks.id"],
            name=op.f("fk_visit_records_next_task_id_visit_tasks"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_visit_records_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["visit_tasks.id"], name=op.f("fk_visit_records_task_id_visit_tasks")
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_visit_records")),
    )
    op.create_index(
        op.f("ix_visit_records_patient_id"), "visit_records", ["patient_id"], unique=False
    )
    op.create_table(
        "visit_task_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["visit_tasks.id"], name=op.f("fk_visit_task_events_task_id_visit_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_task_events")),
    )
    op.create_index(
        "ix_visit_task_events_task_id_id", "visit_task_events", ["task_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_visit_task_events_task_id_id", table_name="visit_task_events")
    op.drop_table("visit_task_events")
    op.drop_index(op.f("ix_visit_records_patient_id"), table_name="visit_records")
    op.drop_table("visit_records")
    op.drop_index(
        "uq_visit_tasks_open_patient_reason",
        table_name="visit_tasks",
        sqlite_where=sa.text("status IN ('requested', 'scheduled')"),
        postgresql_where=sa.text("status IN ('requested', 'scheduled')"),
    )
    op.drop_index("ix_visit_tasks_status_latest", table_name="visit_tasks")
    op.drop_index("ix_visit_tasks_patient_id_id", table_name="visit_tasks")
    op.drop_index(op.f("ix_visit_tasks_alert_id"), table_name="visit_tasks")
    op.drop_table("visit_tasks")
    op.drop_index(op.f("ix_calendar_tokens_user_id"), table_name="calendar_tokens")
    op.drop_table("calendar_tokens")
