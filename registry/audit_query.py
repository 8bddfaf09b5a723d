"""Finding rows of the audit log: by actor, patient, action, outcome and time.

Read-only, in the caller's transaction; the chain itself (appending, verifying) is
:mod:`registry.audit`. Querying the log is itself an access the API records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import AuditEntry, AuditOutcome
from registry.clock import aware_utc
from registry.models import AuditRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditQuery:
    """Which rows to find; every criterion given must hold.

    Attributes:
        actor: exactly this actor (account or operating-system user).
        patient_id: rows that name this patient among their ``patient_ids``.
        action: exactly this action (a route template such as
            ``GET /api/v1/patients/{patient_id}``, or a dotted command verb).
        outcome: only this outcome.
        since: at or after (timezone-aware).
        until: before (timezone-aware).
        before_seq: rows earlier in the chain than this ``seq`` — the stable way to page
            newest-first through a log that grows while one reads it.
    """

    actor: str | None = None
    patient_id: str | None = None
    action: str | None = None
    outcome: AuditOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None

    def __post_init__(self) -> None:
        if self.since is not None:
            aware_utc(self.since, "since")
        if self.until is not None:
            aware_utc(self.until, "until")


def find_audit(
    session: Session, query: AuditQuery, *, offset: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """The rows matching ``query``, newest first (by position in the chain)."""
    statement = select(AuditRecord).order_by(AuditRecord.seq.desc())
    if query.actor is not None:
        statement = statement.where(AuditRecord.actor == query.actor)
    if query.action is not None:
        statement = statement.where(AuditRecord.action == query.action)
    if query.outcome is not None:
        statement = statement.where(AuditRecord.outcome == query.outcome.value)
    if query.since is not None:
        statement = statement.where(AuditRecord.at >= aware_utc(query.since, "since"))
    if query.until is not None:
        statement = statement.where(AuditRecord.at < aware_utc(query.until, "until"))
    if query.before_seq is not None:
        statement = statement.where(AuditRecord.seq < query.before_seq)
    if query.patient_id is not None:
        # patient_ids is a compact JSON array of strings: the quoted id matches one element
        # exactly (not a prefix of another id); autoescape keeps % and _ literal.
        statement = statement.where(
            AuditRecord.patient_ids.contains(
                json.dumps(query.patient_id, ensure_ascii=False), autoescape=True
            )
        )
    rows = session.scalars(statement.offset(offset).limit(limit))
    return [
        AuditEntry(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            actor_role=row.actor_role,
            action=row.action,
            target=row.target,
            patient_ids=tuple(json.loads(row.patient_ids)),
            outcome=AuditOutcome(row.outcome),
            detail=json.loads(row.detail),
        )
        for row in rows
    ]
