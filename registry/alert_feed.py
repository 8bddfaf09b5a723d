"""The alert events recorded since a point, for the API's live stream.

The alert worker is its own process and records every transition as an append-only
``alert_events`` row; the API tails that table (:mod:`dashboard_api.alert_tail`) so a page
hears of a new or changed alert within a second, without the worker having to know who is
watching. A row carries only what a page needs to decide to ask again — ids, rule, severity,
state — never the readings or a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.alert_models import AlertEvent, AlertRow


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One recorded transition or action on an alert, as the live stream announces it."""

    event_id: int
    alert_id: int
    patient_id: str
    rule_id: str
    severity: str
    kind: str
    """The event's kind (``opened``, ``fired``, ``acknowledged``, ``resolved``, ``seen`` …)."""
    state: str
    """The alert's state after the event."""
    at: datetime


def last_event_id(session: Session) -> int:
    """The id of the newest alert event (0 when there is none)."""
    return int(session.scalar(select(func.max(AlertEvent.id))) or 0)


def changes_after(session: Session, after_id: int, *, limit: int) -> list[AlertChange]:
    """Alert events with an id above ``after_id``, oldest first, at most ``limit``."""
    rows = session.execute(
        select(AlertEvent, AlertRow)
        .join(AlertRow, AlertRow.id == AlertEvent.alert_id)
        .where(AlertEvent.id > after_id)
        .order_by(AlertEvent.id)
        .limit(limit)
    ).all()
    return [
        AlertChange(
            event_id=event.id,
            alert_id=alert.id,
            patient_id=alert.patient_id,
            rule_id=alert.rule_id,
            severity=alert.severity,
            kind=event.kind,
            state=event.to_state or alert.state,
            at=event.at,
        )
        for event, alert in rows
    ]
