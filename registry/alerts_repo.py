"""Alerts in the registry: load what the lifecycle needs, record what it decided.

:class:`AlertRepository` works inside the caller's transaction. Every transition becomes one
append-only :class:`~registry.alert_models.AlertEvent` (who, when, why) and one link in the
audit chain; a transition that fires an alert schedules its escalation chain
(:mod:`registry.escalation_repo`) in the same transaction, so an alert is never recorded
without its steps or the steps without the alert.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.lifecycle import (
    OPEN_STATES,
    AlertState,
    Decision,
    MonitoringStatus,
    OpenAlert,
    Silence,
    Transition,
    TransitionKind,
    acknowledge,
    make_silence,
    resolve_by_hand,
)
from alerts.model import Metric, Severity
from registry.alert_models import AlertEvent, AlertRow, AlertSilence, AlertSuppression
from registry.audit import record_audit
from registry.errors import NotFound
from registry.escalation_repo import cancel_steps, schedule_chain
from registry.patient_care import PatientCareRepository


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One recorded event of an alert."""

    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    muted_by: str | None


def _open_alert(row: AlertRow) -> OpenAlert:
    return OpenAlert(
        alert_id=str(row.id),
        patient_id=row.patient_id,
        rule_id=row.rule_id,
        metric=Metric(row.metric),
        severity=Severity(row.severity),
        state=AlertState(row.state),
        opened_at=row.opened_at,
        acknowledged_at=row.acknowledged_at,
        last_notified_at=row.last_notified_at,
    )


class AlertRepository:
    """The registry side of the lifecycle, inside one transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def open_alerts(self, patient_id: str) -> list[OpenAlert]:
        """The patient's alerts not yet resolved."""
        rows = self._session.scalars(
            select(AlertRow)
            .where(AlertRow.patient_id == patient_id, AlertRow.resolved_at.is_(None))
            .order_by(AlertRow.id)
        )
        return [_open_alert(row) for row in rows]

    def silences(self, patient_id: str, now: datetime) -> list[Silence]:
        """The patient's silences in force at ``now``."""
        rows = self._session.scalars(
            select(AlertSilence).where(
                AlertSilence.patient_id == patient_id,
                AlertSilence.starts_at <= now,
                AlertSilence.ends_at > now,
            )
        )
        return [
            Silence(
                str(r.id),
                r.patient_id,
                Metric(r.metric),
                Severity(r.severity),
                r.author,
                r.reason,
                r.starts_at,
                r.ends_at,
            )
            for r in rows
        ]

    def alerts_of(
        self, patient_id: str, *, state: str | None = None, severity: str | None = None
    ) -> list[AlertRow]:
        """The patient's alerts, newest first, optionally filtered by state and severity."""
        query = select(AlertRow).where(AlertRow.patient_id == patient_id)
        if state is not None:
            query = query.where(AlertRow.state == state)
        if severity is not None:
            query = query.where(AlertRow.severity == severity)
        return list(self._session.scalars(query.order_by(AlertRow.id.desc())))

    def inbox(
        self,
        patient_ids: Collection[str],
        *,
        reader: str,
        state: str | None = None,
        severity: str | None = None,
        unread: bool | None = None,
        limit: int = 200,
    ) -> list[AlertRow]:
        """Alerts of ``patient_ids``, newest first, in one query (the caller-wide inbox).

        ``unread=True`` keeps the open alerts ``reader`` has not marked read (a resolved
        alert needs nobody's attention); ``unread=False`` the ones they have.
        """
        if not patient_ids:
            return []
        query = select(AlertRow).where(AlertRow.patient_id.in_(sorted(patient_ids)))
        if state is not None:
            query = query.where(AlertRow.state == state)
        if severity is not None:
            query = query.where(AlertRow.severity == severity)
        if unread is not None:
            seen = (
                select(AlertEvent.id)
                .where(
                    AlertEvent.alert_id == AlertRow.id,
                    AlertEvent.kind == "seen",
                    AlertEvent.actor == reader,
                )
                .exists()
            )
            if unread:
                query = query.where(AlertRow.resolved_at.is_(None), ~seen)
            else:
                query = query.where(seen)
        return list(self._session.scalars(query.order_by(AlertRow.id.desc()).limit(limit)))

    def monitoring_status(self, patient_id: str, now: datetime) -> MonitoringStatus:
        """The patient's monitoring status in force at ``now`` (care model)."""
        record = PatientCareRepository(self._session).status_at(patient_id, now)
        return MonitoringStatus(record.status.value, record.effective_from)

    def add_silence(
        self,
        patient_id: str,
        *,
        metric: Metric,
        severity: Severity,
        author: str,
        reason: str,
        starts_at: datetime,
        ends_at: datetime,
    ) -> int:
        """Record a validated silence (capped on P1, see :func:`alerts.lifecycle.make_silence`)."""
        make_silence(
            silence_id="new",
            patient_id=patient_id,
            metric=metric,
            severity=severity,
            author=author,
            reason=reason,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        row = AlertSilence(
            patient_id=patient_id,
            metric=metric.value,
            severity=severity.value,
            author=author,
            reason=reason,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        self._session.add(row)
        self._session.flush()
        record_audit(
            self._session,
            at=starts_at,
            actor=author,
            action="alert.silence",
            target=f"silence:{row.id}",
            detail={"metric": metric.value, "severity": severity.value, "until": str(ends_at)},
            patient_ids=[patient_id],
        )
        return row.id

    def record(self, decision: Decision) -> list[int]:
        """Apply a decision's transitions; the alert ids touched, in order."""
        touched: list[int] = []
        for transition in decision.transitions:
            if transition.kind is TransitionKind.SUPPRESS:
                self._suppress(transition)
                continue
            touched.append(self.apply(transition))
        return touched

    def apply(self, transition: Transition) -> int:
        """Record one transition: the alert row, its event, the audit link, the escalation."""
        if transition.alert_id is None:
            row = self._create(transition)
        else:
            found = self._session.get(AlertRow, int(transition.alert_id), with_for_update=True)
            if found is None:
                raise NotFound("alert", transition.alert_id)
            row = found
            if transition.from_state is not None and row.state != transition.from_state:
                raise NotFound("alert in state", f"{transition.alert_id}:{transition.from_state}")
        self._update(row, transition)
        self._session.flush()
        self._session.add(
            AlertEvent(
                alert_id=row.id,
                at=transition.at,
                kind=transition.kind.value,
                from_state=None if transition.from_state is None else transition.from_state.value,
                to_state=None if transition.to_state is None else transition.to_state.value,
                actor=transition.actor,
                reason=transition.reason,
                muted_by=transition.muted_by,
            )
        )
        record_audit(
            self._session,
            at=transition.at,
            actor=transition.actor,
            action=f"alert.{transition.kind.value}",
            target=f"alert:{row.id}",
            detail={"rule_id": row.rule_id, "severity": row.severity, "state": row.state},
            patient_ids=[row.patient_id],
        )
        # A RENOTIFY schedules the chain too: an alert that fired while muted (a silence, an
        # inhibiting alert) has none yet, and without this nobody would be told once the
        # mute ended. For an alert whose chain exists it adds nothing (the steps' keys are
        # taken; the chain's last step already repeats until someone acknowledges).
        notifying = (TransitionKind.FIRE, TransitionKind.UPGRADE, TransitionKind.RENOTIFY)
        if transition.kind in notifying and transition.notify:
            schedule_chain(self._session, row, transition.at)
        if row.state in (AlertState.ACKNOWLEDGED, AlertState.RESOLVED):
            cancel_steps(self._session, row.id, transition.at)
        return row.id

    def _create(self, transition: Transition) -> AlertRow:
        finding = transition.finding
        assert finding is not None, "an opening transition carries its finding"
        row = AlertRow(
            patient_id=transition.patient_id,
            rule_id=transition.rule_id,
            rule_version=finding.rule_version,
            metric=finding.metric.value,
            severity=finding.severity.value,
            state=AlertState.PENDING.value,
            confirmed=finding.confirmed,
            late=finding.late,
            reading_ids=json.dumps(list(finding.reading_ids)),
            thresholds=json.dumps(dict(finding.thresholds), sort_keys=True),
            explanation_key=finding.explanation.key,
            explanation_params=json.dumps(dict(finding.explanation.params), sort_keys=True),
            opened_at=transition.at,
        )
        self._session.add(row)
        return row

    @staticmethod
    def _update(row: AlertRow, transition: Transition) -> None:
        if transition.to_state is not None:
            row.state = transition.to_state.value
        finding = transition.finding
        if finding is not None and transition.kind is not TransitionKind.RESOLVE:
            if Severity(finding.severity).rank < Severity(row.severity).rank:
                row.severity = finding.severity.value
            row.confirmed = finding.confirmed
            row.reading_ids = json.dumps(list(finding.reading_ids))
            row.thresholds = json.dumps(dict(finding.thresholds), sort_keys=True)
        if transition.kind is TransitionKind.FIRE:
            row.fired_at = transition.at
        if transition.kind is TransitionKind.ACKNOWLEDGE:
            row.acknowledged_at = transition.at
            row.acknowledged_by = transition.actor
        if transition.to_state is AlertState.RESOLVED:
            row.resolved_at = transition.at
        if transition.notify:
            row.last_notified_at = transition.at
        row.muted_by = transition.muted_by

    def _suppress(self, transition: Transition) -> None:
        since = transition.since
        if since is None:
            status = self.monitoring_status(transition.patient_id, transition.at)
            since = status.since or transition.at
        existing = self._session.scalars(
            select(AlertSuppression).where(
                AlertSuppression.patient_id == transition.patient_id,
                AlertSuppression.rule_id == transition.rule_id,
                AlertSuppression.reason == transition.reason,
                AlertSuppression.since == since,
            )
        ).one_or_none()
        if existing is not None:
            existing.count += 1
            existing.last_at = transition.at
            return
        self._session.add(
            AlertSuppression(
                patient_id=transition.patient_id,
                rule_id=transition.rule_id,
                reason=transition.reason,
                since=since,
                first_at=transition.at,
                last_at=transition.at,
                count=1,
            )
        )
        record_audit(
            self._session,
            at=transition.at,
            actor=transition.actor,
            action="alert.suppress",
            target=f"rule:{transition.rule_id}",
            detail={"reason": transition.reason},
            patient_ids=[transition.patient_id],
        )

    def suppressions(self, patient_id: str) -> list[AlertSuppression]:
        """The patient's suppressed rules (what a pause held back), oldest first."""
        return list(
            self._session.scalars(
                select(AlertSuppression)
                .where(AlertSuppression.patient_id == patient_id)
                .order_by(AlertSuppression.id)
            )
        )

    def _open(self, alert_id: int) -> OpenAlert:
        row = self._session.get(AlertRow, alert_id)
        if row is None or AlertState(row.state) not in OPEN_STATES:
            raise NotFound("open alert", str(alert_id))
        return _open_alert(row)

    def acknowledge(self, alert_id: int, *, actor: str, note: str, now: datetime) -> None:
        """A person acknowledges: escalation stops (its due steps are cancelled)."""
        self.apply(acknowledge(self._open(alert_id), actor=actor, note=note, now=now))

    def resolve(self, alert_id: int, *, actor: str, note: str, now: datetime) -> None:
        """A person resolves an open alert with a note."""
        self.apply(resolve_by_hand(self._open(alert_id), actor=actor, note=note, now=now))

    def mark_seen(self, alert_id: int, *, actor: str, now: datetime) -> None:
        """A family member saw the alert: recorded, but the doctor's steps still run."""
        alert = self._open(alert_id)
        self._session.add(
            AlertEvent(
                alert_id=alert_id,
                at=now,
                kind="seen",
                from_state=alert.state.value,
                to_state=alert.state.value,
                actor=actor,
                reason="seen",
                muted_by=None,
            )
        )
        record_audit(
            self._session,
            at=now,
            actor=actor,
            action="alert.seen",
            target=f"alert:{alert_id}",
            patient_ids=[alert.patient_id],
        )

    def assign(self, alert_id: int, *, assignee: str, actor: str, now: datetime) -> None:
        """Give an open alert to a team member."""
        alert = self._open(alert_id)
        self._session.execute(
            update(AlertRow).where(AlertRow.id == alert_id).values(assignee=assignee)
        )
        self._session.add(
            AlertEvent(
                alert_id=alert_id,
                at=now,
                kind="assign",
                from_state=alert.state.value,
                to_state=alert.state.value,
                actor=actor,
                reason=f"assigned to {assignee}",
                muted_by=None,
            )
        )
        record_audit(
            self._session,
            at=now,
            actor=actor,
            action="alert.assign",
            target=f"alert:{alert_id}",
            patient_ids=[alert.patient_id],
        )

    def snooze(
        self,
        alert_id: int,
        *,
        actor: str,
        reason: str,
        now: datetime,
        ends_at: datetime,
    ) -> int:
        """Silence an open alert's metric at its tier and below until ``ends_at``.

        The silence is the lifecycle's (:func:`alerts.lifecycle.make_silence`: P1 capped at
        :data:`alerts.lifecycle.MAX_P1_SILENCE`, a higher tier breaks through); the alert
        gets a ``snooze`` event naming the silence. Returns the silence id.

        Raises:
            NotFound: the alert is not open.
            LifecycleError: no reason, or longer than the tier's cap.
        """
        alert = self._open(alert_id)
        silence_id = self.add_silence(
            alert.patient_id,
            metric=alert.metric,
            severity=alert.severity,
            author=actor,
            reason=reason,
            starts_at=now,
            ends_at=ends_at,
        )
        self._session.add(
            AlertEvent(
                alert_id=alert_id,
                at=now,
                kind="snooze",
                from_state=alert.state.value,
                to_state=alert.state.value,
                actor=actor,
                reason=reason,
                muted_by=f"silence:{silence_id}",
            )
        )
        return silence_id

    def seen_by(self, alert_ids: Sequence[int], actor: str) -> set[int]:
        """Which of ``alert_ids`` ``actor`` has marked read (one query)."""
        if not alert_ids:
            return set()
        return set(
            self._session.scalars(
                select(AlertEvent.alert_id).where(
                    AlertEvent.alert_id.in_(alert_ids),
                    AlertEvent.kind == "seen",
                    AlertEvent.actor == actor,
                )
            )
        )

    def events(self, alert_id: int) -> list[EventRecord]:
        """The alert's events, oldest first."""
        rows: Sequence[AlertEvent] = self._session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
        ).all()
        return [
            EventRecord(r.at, r.kind, r.from_state, r.to_state, r.actor, r.reason, r.muted_by)
            for r in rows
        ]
