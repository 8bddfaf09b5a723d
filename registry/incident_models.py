"""Tables of the clinic's own health: ingest heartbeats and SYS incidents.

* :class:`ServiceHeartbeat` — one row per *span* of an ingest worker: from when it started
  (or regained the broker) to its latest heartbeat. A worker that stops or loses the broker
  ends its span; the next heartbeat opens a new row. So the rows are a history the
  evaluator reads to find when ingest was silent, even a silence that began and ended
  while the evaluator itself was down (``alerts.outage.find_outages``).
* :class:`SystemIncidentRow` — one row per clinic-side outage (rule ``SYS1``): one open at a
  time per rule (a partial unique index, as for alerts), opened when the outage is seen,
  resolved when it ends.
* :class:`SystemIncidentEvent` — the append-only record of each incident's transitions.

Nothing here is health data: instance names, times and causes only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import Base

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class ServiceHeartbeat(Base):
    """A span during which one ingest worker ran connected to the broker."""

    __tablename__ = "service_heartbeats"
    __table_args__ = (Index("ix_service_heartbeats_component_beat_at", "component", "beat_at"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(32))
    """``ingest`` (the only component that beats so far)."""
    instance: Mapped[str] = mapped_column(String(128))
    """The worker's MQTT client id (fixed across its restarts)."""
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    """The span's latest heartbeat."""


class SystemIncidentRow(Base):
    """One clinic-side outage, as the SYS incident IT is told about."""

    __tablename__ = "system_incidents"
    __table_args__ = (
        Index(
            "uq_system_incidents_open_rule",
            "rule_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        # One incident per outage even when several evaluators see it: an outage starts at
        # the last heartbeat before it, which every evaluator reads alike.
        UniqueConstraint("rule_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    causes: Mapped[str] = mapped_column(String(128))
    """Comma-separated ``alerts.outage.OutageCause`` values, sorted."""
    started_at: Mapped[datetime]
    """The last sign of life before the outage (not when it was noticed)."""
    ended_at: Mapped[datetime | None]
    """The recovery instant."""
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class SystemIncidentEvent(Base):
    """An append-only record of one incident transition: who, when, why."""

    __tablename__ = "system_incident_events"
    __table_args__ = (Index("ix_system_incident_events_incident_id_id", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("system_incidents.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    """``open``, ``resolve``, ``record`` (an outage found after it ended) or ``notify``."""
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    event_key: Mapped[str | None] = mapped_column(String(191), unique=True)
    """A ``notify`` event's idempotency key: a message re-sent after a crash between sending
    and recording is recorded once."""
