"""Conditions, monitoring consent, targets, status, access grants (:mod:`registry.care`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_lookup import (
    check_reason,
    find_account,
    find_patient,
)
from registry.care_models import (
    AccessGrant,
    Condition,
    GrantKind,
    MonitoringConsent,
    PatientConditionRow,
    PatientStatus,
    PatientStatusChange,
    PatientTarget,
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound
from registry.models import Patient

_IDS_PER_QUERY = 500
"""Ids per ``IN (…)`` list: far below SQLite's bound-parameter limit (32,766)."""


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for first in range(0, len(ids), _IDS_PER_QUERY):
        yield ids[first : first + _IDS_PER_QUERY]


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """A personal target, effective from a moment on."""

    patient_id: str
    metric: str
    low: float | None
    high: float | None
    unit: str
    effective_from: datetime
    set_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """The patient's monitoring status from a moment on."""

    patient_id: str
    status: PatientStatus
    reason: str
    effective_from: datetime
    recorded_by: str


class PatientCareRepository:
    """The patient's conditions, monitoring consent, targets, status and access grants."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def set_conditions(self, patient_id: str, conditions: Iterable[Condition]) -> None:
        """Replace the patient's list of conditions."""
        find_patient(self._session, patient_id)
        wanted = {condition.value for condition in conditions}
        rows = self._session.scalars(
            select(PatientConditionRow).where(PatientConditionRow.patient_id == patient_id)
        ).all()
        for row in rows:
            if row.condition not in wanted:
                self._session.delete(row)
        have = {row.condition for row in rows}
        now = self._clock()
        for condition in sorted(wanted - have):
            self._session.add(
                PatientConditionRow(patient_id=patient_id, condition=condition, recorded_at=now)
            )
        self._session.flush()

    def conditions(self, patient_id: str) -> frozenset[Condition]:
        """The patient's conditions."""
        return frozenset(
            Condition(value)
            for value in self._session.scalars(
                select(PatientConditionRow.condition).where(
                    PatientConditionRow.patient_id == patient_id
                )
            )
        )

    def conditions_of(self, patient_ids: Collection[str]) -> dict[str, frozenset[Condition]]:
        """:meth:`conditions` of many patients in one query per chunk (for lists)."""
        found: dict[str, set[Condition]] = {patient_id: set() for patient_id in patient_ids}
        for chunk in _chunks(list(found)):
            rows = self._session.execute(
                select(PatientConditionRow.patient_id, PatientConditionRow.condition).where(
                    PatientConditionRow.patient_id.in_(chunk)
                )
            )
            for patient_id, condition in rows:
                found[patient_id].add(Condition(condition))
        return {patient_id: frozenset(each) for patient_id, each in found.items()}

    def record_monitoring_consent(
        self, patient_id: str, *, recorded_by: str, document_ref: str | None = None
    ) -> None:
        """Record the patient's separate consent to remote monitoring (from now)."""
        find_patient(self._session, patient_id)
        if self.monitoring_consented(patient_id, self._clock()):
            raise AlreadyExists("monitoring consent", patient_id)
        self._session.add(
            MonitoringConsent(
                patient_id=patient_id,
                granted_at=self._clock(),
                recorded_by=recorded_by,
                document_ref=document_ref,
                withdrawn_at=None,
                withdrawn_by=None,
            )
        )
        self._session.flush()

    def withdraw_monitoring_consent(self, patient_id: str, *, withdrawn_by: str) -> None:
        """The patient withdraws consent to monitoring (from now).

        Raises:
            NotFound: there is no consent in force.
        """
        rows = self._session.scalars(
            select(MonitoringConsent).where(
                MonitoringConsent.patient_id == patient_id,
                MonitoringConsent.withdrawn_at.is_(None),
            )
        ).all()
        if not rows:
            raise NotFound("monitoring consent", patient_id)
        for row in rows:
            row.withdrawn_at = self._clock()
            row.withdrawn_by = withdrawn_by

    def monitoring_consented(self, patient_id: str, at: datetime) -> bool:
        """The patient had consented to monitoring at ``at``."""
        moment = aware_utc(at, "at")
        return (
            self._session.scalars(
                select(MonitoringConsent.id).where(
                    MonitoringConsent.patient_id == patient_id,
                    MonitoringConsent.granted_at <= moment,
                    (MonitoringConsent.withdrawn_at.is_(None))
                    | (MonitoringConsent.withdrawn_at > moment),
                )
            ).first()
            is not None
        )

    def set_target(
        self,
        patient_id: str,
        metric: str,
        *,
        low: float | None,
        high: float | None,
        unit: str,
        set_by: str,
        reason: str,
        effective_from: datetime | None = None,
    ) -> TargetRecord:
        """Append a target effective from ``effective_from`` (default now).

        Raises:
            InvalidRegistryInput: no bound, bounds out of order, or no reason.
        """
        find_patient(self._session, patient_id)
        if low is None and high is None:
            raise InvalidRegistryInput("low", "give a lower or an upper bound")
        if low is not None and high is not None and not low < high:
            raise InvalidRegistryInput("high", "must be above low")
        start = (
            aware_utc(effective_from, "effective_from")
            if effective_from is not None
            else self._clock()
        )
        row = PatientTarget(
            patient_id=patient_id,
            metric=metric,
            low=low,
            high=high,
            unit=unit,
            effective_from=start,
            set_by=set_by,
            reason=check_reason(reason),
        )
        self._session.add(row)
        self._session.flush()
        return self._target(row)

    def target_at(self, patient_id: str, metric: str, at: datetime) -> TargetRecord | None:
        """The target of ``metric`` in force at ``at`` (``None``: never set by then)."""
        row = self._session.scalars(
            select(PatientTarget)
            .where(
                PatientTarget.patient_id == patient_id,
                PatientTarget.metric == metric,
                PatientTarget.effective_from <= aware_utc(at, "at"),
            )
            .order_by(PatientTarget.effective_from.desc(), PatientTarget.id.desc())
        ).first()
        return None if row is None else self._target(row)

    def set_status(
        self,
        patient_id: str,
        status: PatientStatus,
        *,
        reason: str,
        recorded_by: str,
        effective_from: datetime | None = None,
    ) -> StatusRecord:
        """Append a status change (hospitalised, deceased …) with its reason."""
        find_patient(self._session, patient_id)
        start = (
            aware_utc(effective_from, "effective_from")
            if effective_from is not None
            else self._clock()
        )
        row = PatientStatusChange(
            patient_id=patient_id,
            status=status.value,
            reason=check_reason(reason),
            effective_from=start,
            recorded_by=recorded_by,
        )
        self._session.add(row)
        self._session.flush()
        return self._status(row)

    def status_at(self, patient_id: str, at: datetime) -> StatusRecord:
        """The status in force at ``at``; ``active`` (reason ``enrolled``) before any change."""
        row = self._session.scalars(
            select(PatientStatusChange)
            .where(
                PatientStatusChange.patient_id == patient_id,
                PatientStatusChange.effective_from <= aware_utc(at, "at"),
            )
            .order_by(PatientStatusChange.effective_from.desc(), PatientStatusChange.id.desc())
        ).first()
        if row is None:
            patient = find_patient(self._session, patient_id)
            return StatusRecord(
                patient_id=patient_id,
                status=PatientStatus.ACTIVE,
                reason="enrolled",
                effective_from=patient.created_at,
                recorded_by="registry",
            )
        return self._status(row)

    def statuses_at(self, patient_ids: Collection[str], at: datetime) -> dict[str, StatusRecord]:
        """:meth:`status_at` of many patients, a query or two per chunk (for lists);
        unknown ids are left out."""
        moment = aware_utc(at, "at")
        latest: dict[str, PatientStatusChange] = {}
        wanted = list(dict.fromkeys(patient_ids))
        for chunk in _chunks(wanted):
            rows = self._session.scalars(
                select(PatientStatusChange)
                .where(
                    PatientStatusChange.patient_id.in_(chunk),
                    PatientStatusChange.effective_from <= moment,
                )
                .order_by(PatientStatusChange.effective_from, PatientStatusChange.id)
            )
            for row in rows:  # in order: the last one seen per patient is in force
                latest[row.patient_id] = row
        found = {patient_id: self._status(row) for patient_id, row in latest.items()}
        never_changed = [patient_id for patient_id in wanted if patient_id not in latest]
        for chunk in _chunks(never_changed):
            for patient_id, created_at in self._session.execute(
                select(Patient.id, Patient.created_at).where(Patient.id.in_(chunk))
            ):
                found[patient_id] = StatusRecord(
                    patient_id=patient_id,
                    status=PatientStatus.ACTIVE,
                    reason="enrolled",
                    effective_from=created_at,
                    recorded_by="registry",
                )
        return found

    def grant_access(
        self,
        username: str,
        patient_id: str,
        *,
        kind: GrantKind,
        reason: str,
        ends_at: datetime,
    ) -> int:
        """Open time-limited access (break-glass, or paged by escalation); returns its id."""
        find_patient(self._session, patient_id)
        account = find_account(self._session, username)
        now = self._clock()
        end = aware_utc(ends_at, "ends_at")
        if end <= now:
            raise InvalidRegistryInput("ends_at", "must be in the future")
        row = AccessGrant(
            user_id=account.id,
            patient_id=patient_id,
            kind=kind.value,
            reason=check_reason(reason),
            starts_at=now,
            ends_at=end,
            revoked_at=None,
        )
        self._session.add(row)
        self._session.flush()
        return row.id

    @staticmethod
    def _target(row: PatientTarget) -> TargetRecord:
        return TargetRecord(
            patient_id=row.patient_id,
            metric=row.metric,
            low=row.low,
            high=row.high,
            unit=row.unit,
            effective_from=row.effective_from,
            set_by=row.set_by,
            reason=row.reason,
        )

    @staticmethod
    def _status(row: PatientStatusChange) -> StatusRecord:
        return StatusRecord(
            patient_id=row.patient_id,
            status=PatientStatus(row.status),
            reason=row.reason,
            effective_from=row.effective_from,
            recorded_by=row.recorded_by,
        )
