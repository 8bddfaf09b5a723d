"""Clinic-side outages: ingest heartbeat spans, SYS incidents and their events.

Revision ID: 0010_incidents
Revises: 0009_visits
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0010_incidents"
down_revision: str | None = "0009_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_heartbeats",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("beat_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_heartbeats")),
    )
    op.create_index(
        "ix_service_heartbeats_component_beat_at",
        "service_heartbeats",
        ["component", "beat_at"],
        unique=False,
    )
    op.create_table(
        "system_incidents",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("causes", sa.String(length=128), nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("ended_at", _TIMESTAMP, nullable=True),
        sa.Column("opened_at", _TIMESTAMP, nullable=False),
        sa.Column("resolved_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_incidents")),
        sa.UniqueConstraint(
            "rule_id", "started_at", name=op.f("uq_system_incidents_rule_id_started_at")
        ),
    )
    op.create_index(
        "uq_system_incidents_open_rule",
        "system_incidents",
        ["rule_id"],
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "system_incident_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", _BIG_ID, nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event_key", sa.String(length=191), nullable=True),
        sa.UniqueConstraint("event_key", name=op.f("uq_system_incident_events_event_key")),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["system_incidents.id"],
            name=op.f("fk_system_incident_events_incident_id_system_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_incident_events")),
    )
    op.create_index(
        "ix_system_incident_events_incident_id_id",
        "system_incident_events",
        ["incident_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_system_incident_events_incident_id_id", table_name="system_incident_events")
    op.drop_table("system_incident_events")
    op.drop_index(
        "uq_system_incidents_open_rule",
        table_name="system_incidents",
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.drop_table("system_incidents")
    op.drop_index("ix_service_heartbeats_component_beat_at", table_name="service_heartbeats")
    op.drop_table("service_heartbeats")
