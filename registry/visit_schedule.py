"""A nurse's day capacity in the registry, and her day route applied to the visit tasks.

:class:`CapacityRepository` reads and writes :class:`~registry.visit_schedule_models.
VisitCapacity` rows (a nurse without one works with the defaults). :func:`apply_route`
turns an order the pure planner (:mod:`registry.visit_routes`) accepted into times and
schedules each task through :meth:`registry.visits.VisitRepository.schedule`, so every
change is in the task's history with who and why, and the calendar feed shows the new time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_lookup import find_account
from registry.clock import Clock, utc_now
from registry.models import Patient
from registry.visit_routes import DEFAULT_CAPACITY, Area, Capacity, RouteTask, slots
from registry.visit_schedule_models import VisitCapacity
from registry.visits import TaskRecord, VisitRepository


def _minute(value: time) -> int:
    return value.hour * 60 + value.minute


def _time(minute: int) -> time:
    return time(minute // 60, minute % 60)


class CapacityRepository:
    """Nurses' capacities, inside the caller's transaction."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def get(self, username: str) -> Capacity:
        """``username``'s capacity; the defaults when none was set.

        Raises:
            NotFound: no such account.
        """
        account = find_account(self._session, username)
        row = self._session.get(VisitCapacity, account.id)
        if row is None:
            return DEFAULT_CAPACITY
        return Capacity(
            work_start=_time(row.work_start_minute),
            work_end=_time(row.work_end_minute),
            max_visits=row.max_visits,
            minutes_per_visit=row.minutes_per_visit,
            travel_minutes=row.travel_minutes,
            time_zone=row.time_zone,
        )

    def set(self, username: str, capacity: Capacity, *, actor: str) -> Capacity:
        """Store ``username``'s capacity (seconds of the working hours are dropped).

        Raises:
            NotFound: no such account.
        """
        account = find_account(self._session, username)
        row = self._session.get(VisitCapacity, account.id)
        if row is None:
            row = VisitCapacity(user_id=account.id)
            self._session.add(row)
        row.work_start_minute = _minute(capacity.work_start)
        row.work_end_minute = _minute(capacity.work_end)
        row.max_visits = capacity.max_visits
        row.minutes_per_visit = capacity.minutes_per_visit
        row.travel_minutes = capacity.travel_minutes
        row.time_zone = capacity.time_zone
        row.updated_at = self._clock()
        row.updated_by = actor
        self._session.flush()
        return self.get(username)


@dataclass(frozen=True, slots=True)
class RoutePatient:
    """What a route shows of a patient: the name (staff only) and the area."""

    patient_id: str
    name: str | None
    area: Area


def route_patients(session: Session, patient_ids: Collection[str]) -> dict[str, RoutePatient]:
    """Name and area of each of ``patient_ids`` (one query; unknown ids are left out)."""
    if not patient_ids:
        return {}
    rows = session.execute(
        select(
            Patient.id, Patient.display_name, Patient.district, Patient.community, Patient.village
        ).where(Patient.id.in_(sorted(patient_ids)))
    ).all()
    return {
        pid: RoutePatient(pid, name, Area(district, community, village))
        for pid, name, district, community, village in rows
    }


def route_task(task: TaskRecord, area: Area) -> RouteTask:
    """The planner's view of ``task``."""
    return RouteTask(
        task_id=task.id,
        priority=task.priority,
        earliest=task.earliest,
        latest=task.latest,
        status=task.status,
        assignee=task.assignee,
        scheduled_at=task.scheduled_at,
        area=area,
    )


def apply_route(
    session: Session,
    day: date,
    capacity: Capacity,
    task_ids: Sequence[int],
    *,
    nurse: str,
    actor: str,
    reason: str,
    clock: Clock = utc_now,
) -> list[TaskRecord]:
    """Schedule ``task_ids`` on ``day`` for ``nurse`` in this order (validate it first).

    A requested task is scheduled; a scheduled one whose time (or nurse) changes is
    rescheduled with ``reason``; one that keeps its time is left alone, so its history
    records only real changes.

    Raises:
        InvalidRegistryInput: ``nurse`` is no longer a nurse of a patient's team.
        VisitStateError: a task was closed meanwhile.
    """
    visits = VisitRepository(session, clock=clock)
    out: list[TaskRecord] = []
    for slot in slots(day, capacity, task_ids):
        task = visits.get(slot.task_id)
        if task.scheduled_at == slot.start and task.assignee == nurse:
            out.append(task)
            continue
        out.append(
            visits.schedule(slot.task_id, slot.start, actor=actor, reason=reason, assignee=nurse)
        )
    return out
