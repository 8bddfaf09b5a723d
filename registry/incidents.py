"""Ingest heartbeat spans and SYS incidents in the registry.

Each function is a short transaction of its own (the callers are timers, not requests).
The decisions — when ingest counts as silent, which incident to open or resolve — are
``alerts.outage``'s; this module only reads and writes rows, and audits every incident
transition in the audit chain (no patient: an outage is the clinic's, not anyone's data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.clock import aware_utc
from registry.db import session_scope
from registry.errors import NotFound
from registry.incident_models import ServiceHeartbeat, SystemIncidentEvent, SystemIncidentRow

INGEST_COMPONENT: Final = "ingest"
HEARTBEAT_RETENTION: Final = timedelta(days=30)
"""Spans older than this are deleted when a new span starts: the evaluator looks back a
day at most (``alerts.incidents.LOOKBACK``); a month keeps them for an incident review."""
ENGINE_ACTOR: Final = "engine"


@dataclass(frozen=True, slots=True)
class HeartbeatSpan:
    """One stored span: an ingest worker up and connected from ``started_at`` to ``beat_at``."""

    span_id: int
    instance: str
    started_at: datetime
    beat_at: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    """A recorded SYS incident."""

    incident_id: int
    rule_id: str
    severity: str
    causes: tuple[str, ...]
    started_at: datetime
    ended_at: datetime | None
    opened_at: datetime
    resolved_at: datetime | None


def start_span(engine: Engine, *, instance: str, now: datetime) -> int:
    """Open a heartbeat span for ``instance`` at ``now`` (and prune old spans); its id."""
    now = aware_utc(now, "now")
    with session_scope(engine) as session:
        session.execute(
            delete(ServiceHeartbeat).where(ServiceHeartbeat.beat_at < now - HEARTBEAT_RETENTION)
        )
        row = ServiceHeartbeat(
            component=INGEST_COMPONENT, instance=instance, started_at=now, beat_at=now
        )
        session.add(row)
        session.flush()
        return row.id


def beat(engine: Engine, span_id: int, *, now: datetime) -> None:
    """Move the span's latest heartbeat to ``now``."""
    with session_scope(engine) as session:
        session.execute(
            update(ServiceHeartbeat)
            .where(ServiceHeartbeat.id == span_id)
            .values(beat_at=aware_utc(now, "now"))
        )


def heartbeat_spans(engine: Engine, *, since: datetime) -> list[HeartbeatSpan]:
    """Every ingest span whose latest heartbeat is at or after ``since``, oldest first."""
    with session_scope(engine, write=False) as session:
        rows = session.scalars(
            select(ServiceHeartbeat)
            .where(
                ServiceHeartbeat.component == INGEST_COMPONENT,
                ServiceHeartbeat.beat_at >= aware_utc(since, "since"),
            )
            .order_by(ServiceHeartbeat.started_at, ServiceHeartbeat.id)
        ).all()
        return [
            HeartbeatSpan(
                r.id,
                r.instance,
                aware_utc(r.started_at, "started_at"),
                aware_utc(r.beat_at, "beat_at"),
            )
            for r in rows
        ]


def _incident(row: SystemIncidentRow) -> Incident:
    return Incident(
        incident_id=row.id,
        rule_id=row.rule_id,
        severity=row.severity,
        causes=tuple(c for c in row.causes.split(",") if c),
        started_at=aware_utc(row.started_at, "started_at"),
        ended_at=None if row.ended_at is None else aware_utc(row.ended_at, "ended_at"),
        opened_at=aware_utc(row.opened_at, "opened_at"),
        resolved_at=None if row.resolved_at is None else aware_utc(row.resolved_at, "resolved_at"),
    )


def incidents(engine: Engine, *, rule_id: str, since: datetime | None = None) -> list[Incident]:
    """The incidents of ``rule_id`` open now or ended at or after ``since``, oldest first."""
    with session_scope(engine, write=False) as session:
        query = select(SystemIncidentRow).where(SystemIncidentRow.rule_id == rule_id)
        if since is not None:
            query = query.where(
                SystemIncidentRow.ended_at.is_(None)
                | (SystemIncidentRow.ended_at >= aware_utc(since, "since"))
            )
        rows = session.scalars(query.order_by(SystemIncidentRow.id)).all()
        return [_incident(r) for r in rows]


def _event(
    session: Session, incident: SystemIncidentRow, *, at: datetime, kind: str, reason: str
) -> None:
    session.add(
        SystemIncidentEvent(
            incident_id=incident.id, at=at, kind=kind, actor=ENGINE_ACTOR, reason=reason
        )
    )
    record_audit(
        session,
        at=at,
        actor=ENGINE_ACTOR,
        action=f"incident.{kind}",
        target=f"incident:{incident.id}",
        detail={"rule_id": incident.rule_id, "causes": incident.causes},
    )


def open_incident(
    engine: Engine,
    *,
    rule_id: str,
    severity: str,
    causes: tuple[str, ...],
    started_at: datetime,
    now: datetime,
    ended_at: datetime | None = None,
    reason: str,
) -> int:
    """Record an incident (resolved at once when ``ended_at`` is given); its id.

    The partial unique index refuses a second open incident of the same rule, so two
    evaluators noticing the same outage at once record it once (the loser's transaction
    fails with an ``IntegrityError`` and its next tick finds the winner's row).
    """
    now = aware_utc(now, "now")
    with session_scope(engine) as session:
        row = SystemIncidentRow(
            rule_id=rule_id,
            severity=severity,
            causes=",".join(sorted(causes)),
            started_at=aware_utc(started_at, "started_at"),
            ended_at=ended_at,
            opened_at=now,
            resolved_at=None if ended_at is None else now,
        )
        session.add(row)
        session.flush()
        _event(session, row, at=now, kind="open" if ended_at is None else "record", reason=reason)
        return row.id


def resolve_incident(
    engine: Engine,
    incident_id: int,
    *,
    ended_at: datetime,
    causes: tuple[str, ...],
    now: datetime,
    reason: str,
) -> None:
    """Resolve an open incident: the outage ended at ``ended_at``.

    Raises:
        NotFound: no such incident, or it is already resolved.
    """
    now = aware_utc(now, "now")
    with session_scope(engine) as session:
        row = session.get(SystemIncidentRow, incident_id, with_for_update=True)
        if row is None or row.resolved_at is not None:
            raise NotFound("open incident", str(incident_id))
        row.ended_at = aware_utc(ended_at, "ended_at")
        row.resolved_at = now
        known = set(row.causes.split(",")) | set(causes)
        row.causes = ",".join(sorted(c for c in known if c))
        _event(session, row, at=now, kind="resolve", reason=reason)


def incident_events(engine: Engine, incident_id: int) -> list[tuple[datetime, str, str]]:
    """(at, kind, reason) of the incident's events, oldest first."""
    with session_scope(engine, write=False) as session:
        rows = session.scalars(
            select(SystemIncidentEvent)
            .where(SystemIncidentEvent.incident_id == incident_id)
            .order_by(SystemIncidentEvent.id)
        ).all()
        return [(aware_utc(r.at, "at"), r.kind, r.reason) for r in rows]


def delivered_keys(engine: Engine, incident_id: int) -> set[str]:
    """The idempotency keys of the incident's messages already delivered and recorded."""
    with session_scope(engine, write=False) as session:
        return {
            k
            for k in session.scalars(
                select(SystemIncidentEvent.event_key).where(
                    SystemIncidentEvent.incident_id == incident_id,
                    SystemIncidentEvent.kind == "notify",
                )
            )
            if k is not None
        }


def record_delivery(
    engine: Engine, incident_id: int, *, key: str, channel: str, recipient: str, now: datetime
) -> bool:
    """Record a delivered incident message once (False: its key was recorded already)."""
    now = aware_utc(now, "now")
    try:
        with session_scope(engine) as session:
            row = session.get(SystemIncidentRow, incident_id)
            if row is None:
                raise NotFound("incident", str(incident_id))
            session.add(
                SystemIncidentEvent(
                    incident_id=incident_id,
                    at=now,
                    kind="notify",
                    actor=ENGINE_ACTOR,
                    reason=f"{channel} to {recipient}",
                    event_key=key,
                )
            )
            session.flush()
            record_audit(
                session,
                at=now,
                actor=ENGINE_ACTOR,
                action="incident.notify",
                target=f"incident:{incident_id}",
                detail={"channel": channel, "recipient": recipient},
            )
    except IntegrityError:
        return False
    return True
