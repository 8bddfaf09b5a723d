"""Notification preferences of patients (the channel for non-urgent messages, quiet hours)
and the symptoms patients report from the portal.

Revision ID: 0013_notification_prefs
Revises: 0012_triage
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0013_notification_prefs"
down_revision: str | None = "0012_triage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "channel IN ('sms', 'wechat', 'none')",
            name=op.f("ck_notification_preferences_channel_known"),
        ),
        sa.CheckConstraint(
            "(quiet_start IS NULL) = (quiet_end IS NULL)",
            name=op.f("ck_notification_preferences_quiet_hours_pair"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_notification_preferences_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "symptom_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("symptom", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reported_at", _TIMESTAMP, nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_symptom_reports_alert_id_alerts")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_symptom_reports_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symptom_reports")),
    )
    op.create_index(
        "ix_symptom_reports_patient_id_reported_at",
        "symptom_reports",
        ["patient_id", "reported_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_symptom_reports_patient_id_reported_at", table_name="symptom_reports")
    op.drop_table("symptom_reports")
    op.drop_table("notification_preferences")
