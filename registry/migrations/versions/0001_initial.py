"""Initial registry: gateways, patients, devices, pairings, quarantine, security events, audit.

Revision ID: 0001
Revises:
Create Date: 2025-11-23 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(191), nullable=False),
        sa.Column("manufacturer", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("serial", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(128), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_table(
        "device_pairings",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(191), nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("valid_from", _TIMESTAMP, nullable=False),
        sa.Column("valid_to", _TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_device_pairings_valid_range"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_pairings_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_device_pairings_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_device_pairings_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_pairings")),
    )
    op.create_index(
        "ix_device_pairings_device_id_valid_from",
        "device_pairings",
        ["device_id", "valid_from"],
    )
    op.create_index(op.f("ix_device_pairings_gateway_id"), "device_pairings", ["gateway_id"])
    op.create_index(op.f("ix_device_pairings_patient_id"), "device_pairings", ["patient_id"])
    # One current pairing per device, enforced by the database itself.
    op.create_index(
        "uq_device_pairings_current_device",
        "device_pairings",
        ["device_id"],
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("received_at", _TIMESTAMP, nullable=False),
        sa.Column("gateway_id", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("reading_id", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("security_event", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index(op.f("ix_quarantine_reason"), "quarantine", ["reason"])
    op.create_index(op.f("ix_quarantine_received_at"), "quarantine", ["received_at"])
    op.create_table(
        "security_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.Column("gateway_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("claimed_patient_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reading_id", sa.Text(), nullable=True),
        sa.Column("quarantine_id", _BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["quarantine_id"],
            ["quarantine.id"],
            name=op.f("fk_security_events_quarantine_id_quarantine"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    op.create_index(op.f("ix_security_events_at"), "security_events", ["at"])
    op.create_index(
        op.f("ix_security_events_quarantine_id"), "security_events", ["quarantine_id"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("security_events")
    op.drop_table("quarantine")
    op.drop_table("device_pairings")
    op.drop_table("devices")
    op.drop_table("patients")
    op.drop_table("gateways")
