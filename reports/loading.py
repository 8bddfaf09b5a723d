"""Gather what a report or export needs from the registry and the reading store.

The one place where :mod:`reports` touches a session or a store: the API routes and the
``vitalgate report``/``vitalgate export`` commands both call :func:`load_patient_data`, and
everything after it is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.window import reading_from_stored
from ingest.stores.base import ReadingStore
from readings.model import Kind, Reading
from registry.alert_models import AlertRow
from registry.care import PatientCareRepository
from registry.care_models import UserAccount
from registry.models import Patient
from registry.visit_models import VisitStatus
from registry.visits import VisitRepository
from reports.errors import ReportsError
from reports.summaries import Period, Targets
from reports.visits import VisitLine, visit_line, visits_of_period

DEFAULT_DAYS: Final = 14
"""The consensus reporting period (Battelino et al., Diabetes Care 2019)."""

TARGET_METRICS: Final = ("glucose", "systolic", "diastolic", "spo2")

_CLOSED_WITH_REASON: Final = frozenset({VisitStatus.CANCELLED, VisitStatus.MISSED})
"""Statuses whose task history holds the staff's reason for closing."""


class UnknownPatient(ReportsError, LookupError):
    """No patient with that id in the registry."""


@dataclass(frozen=True, slots=True)
class PatientData:
    """One patient's readings, alerts, visits, targets and name over a period."""

    patient_id: str
    display_name: str | None
    period: Period
    targets: Targets
    readings: tuple[Reading, ...]
    alerts: tuple[AlertRow, ...]
    visits: tuple[VisitLine, ...] = ()
    patient_accounts: frozenset[str] = frozenset()
    """Usernames of the patient's own account (at most one): a manual reading whose
    ``entered_by`` is one of them was typed in by the patient (``reports.fhir``)."""


def report_period(
    first: date | None, last: date | None, zone: ZoneInfo, today: date, days: int = DEFAULT_DAYS
) -> Period:
    """Local days ``first`` … ``last`` inclusive; by default the ``days`` (14) days ending
    ``today``."""
    last = last or today
    first = first or last - timedelta(days=days - 1)
    return Period.local_days(first, last + timedelta(days=1), zone)


def load_patient_data(
    session: Session,
    store: ReadingStore,
    patient_id: str,
    first: date | None,
    last: date | None,
    clock: Callable[[], datetime],
    days: int = DEFAULT_DAYS,
) -> PatientData:
    """The patient's data for the local days ``first`` … ``last`` in the patient's zone
    (without ``first``: the ``days`` days ending with ``last``, by default today).

    Raises:
        UnknownPatient: no such patient.
        InvalidPeriod: ``last`` before ``first``.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise UnknownPatient(patient_id)
    zone = ZoneInfo(patient.time_zone)
    period = report_period(first, last, zone, clock().astimezone(zone).date(), days)
    care = PatientCareRepository(session, clock=clock)
    bounds = {}
    for metric in TARGET_METRICS:
        target = care.target_at(patient_id, metric, period.end)
        if target is not None:
            bounds[metric] = (target.low, target.high)
    conditions = care.conditions_of([patient_id]).get(patient_id, frozenset())
    targets = Targets.from_bounds(bounds, frozenset(str(c) for c in conditions))
    readings = tuple(
        reading_from_stored(stored)
        for kind in Kind
        for stored in store.readings(patient_id, kind, period.start, period.end)
    )
    alerts = tuple(
        session.scalars(
            select(AlertRow)
            .where(AlertRow.patient_id == patient_id)
            .where(AlertRow.opened_at >= period.start, AlertRow.opened_at < period.end)
            .order_by(AlertRow.opened_at, AlertRow.id)
        )
    )
    return PatientData(
        patient_id=patient_id,
        display_name=patient.display_name,
        period=period,
        targets=targets,
        readings=readings,
        alerts=alerts,
        visits=load_visits(session, patient_id, period),
        patient_accounts=frozenset(
            session.scalars(
                select(UserAccount.username).where(UserAccount.patient_id == patient_id)
            )
        ),
    )


def load_visits(session: Session, patient_id: str, period: Period) -> tuple[VisitLine, ...]:
    """The patient's visit tasks of ``period`` (:func:`reports.visits.visits_of_period`),
    each with its visit record and closing reason; read-only."""
    visits = VisitRepository(session)
    lines = []
    for task in visits.tasks_of_patient(patient_id):
        record = visits.record_of(task.id) if task.status is VisitStatus.COMPLETED else None
        history = visits.history(task.id) if task.status in _CLOSED_WITH_REASON else ()
        lines.append(visit_line(task, record, history))
    return tuple(visits_of_period(lines, period))
