"""Pure day-route planning of a nurse's visits: capacity, suggested order, validation.

Nothing here reads a database or a clock; :mod:`registry.visit_schedule` feeds it rows and
applies its answers through :meth:`registry.visits.VisitRepository.schedule`.

The day is a row of equal slots. Before each visit the nurse travels (from the centre to
the first patient, then between patients), so stop ``i`` (from 0) starts at::

    work_start + travel + i * (travel + minutes_per_visit)

and ends ``minutes_per_visit`` later. A phone call takes a slot like a visit: the figures
are for planning, and a nurse who phones between visits is better served by slack than by
a second, finer timetable. Durations are added in UTC (elapsed time), the working hours
are civil times in the nurse's time zone.

The suggested order (:func:`suggest`): the most urgent tasks first — priority, then the
end of the due window — as many as fit the capacity and their windows, then arranged by
area (district → community → village) so that one community's visits are consecutive;
areas come in the order of their most urgent visit. There is no map service: areas are
what the patient's address says, and the nurse reorders by hand when she knows better.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from registry.errors import InvalidRegistryInput
from registry.models import DEFAULT_PATIENT_TIME_ZONE
from registry.visit_models import OPEN_STATUSES, VisitStatus

DEFAULT_WORK_START: Final = time(8, 30)
"""社区卫生服务中心 open 08:00–08:30; the first half hour is the morning meeting and the bag."""
DEFAULT_WORK_END: Final = time(17, 30)
"""Centres close at 17:00–17:30; a visit should be over by then, not started."""
DEFAULT_MAX_VISITS: Final = 6
"""Home visits a community nurse makes in a day next to her clinic duties (a figure the
team lead changes per nurse; rural village routes are often fewer)."""
DEFAULT_MINUTES_PER_VISIT: Final = 45
"""A 基本公卫 face-to-face follow-up: BP (two readings), medication review, education and
the form — the calendar feed blocks 45 min for a home visit too."""
DEFAULT_TRAVEL_MINUTES: Final = 30
"""By e-bike between communities or villages; within one community it is less (slack)."""

MAX_VISITS_LIMIT: Final = 20
"""More than 20 stops in a working day leaves under 30 min each: a typing error, refused."""
VISIT_MINUTES_RANGE: Final = (5, 240)
"""A phone follow-up takes at least 5 min; longer than 4 h is not a visit but a shift."""
TRAVEL_MINUTES_RANGE: Final = (0, 180)
"""0 for a nurse phoning from the centre; 3 h is the far end of a mountain village route."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a nurse can do in a working day; checked when built.

    Raises:
        InvalidRegistryInput: the day ends before it starts, a figure outside its range, an
            unknown time zone.
    """

    work_start: time = DEFAULT_WORK_START
    work_end: time = DEFAULT_WORK_END
    max_visits: int = DEFAULT_MAX_VISITS
    minutes_per_visit: int = DEFAULT_MINUTES_PER_VISIT
    travel_minutes: int = DEFAULT_TRAVEL_MINUTES
    time_zone: str = DEFAULT_PATIENT_TIME_ZONE

    def __post_init__(self) -> None:
        if self.work_start.tzinfo is not None or self.work_end.tzinfo is not None:
            raise InvalidRegistryInput("work_start", "a civil time of day, without a zone")
        if self.work_end <= self.work_start:
            raise InvalidRegistryInput("work_end", "the working day ends before it starts")
        if not 1 <= self.max_visits <= MAX_VISITS_LIMIT:
            raise InvalidRegistryInput("max_visits", f"1 … {MAX_VISITS_LIMIT}")
        low, high = VISIT_MINUTES_RANGE
        if not low <= self.minutes_per_visit <= high:
            raise InvalidRegistryInput("minutes_per_visit", f"{low} … {high} minutes")
        low, high = TRAVEL_MINUTES_RANGE
        if not low <= self.travel_minutes <= high:
            raise InvalidRegistryInput("travel_minutes", f"{low} … {high} minutes")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidRegistryInput("time_zone", "an IANA time zone name") from exc


DEFAULT_CAPACITY: Final = Capacity()


@dataclass(frozen=True, slots=True)
class Area:
    """Where the patient lives, as far as a route cares (no street address)."""

    district: str | None = None
    community: str | None = None
    """社区 or 村委会: the unit a nurse's route is planned by."""
    village: str | None = None


@dataclass(frozen=True, slots=True)
class RouteTask:
    """A visit task as the planner sees it."""

    task_id: int
    priority: int
    earliest: datetime
    latest: datetime
    status: VisitStatus
    assignee: str | None
    scheduled_at: datetime | None
    area: Area


class Problem(StrEnum):
    """What is wrong with a proposed day order."""

    DUPLICATE = "duplicate"
    UNKNOWN_TASK = "unknown_task"
    """No such task, or not of a patient of this nurse's team (the same answer)."""
    NOT_OPEN = "not_open"
    ASSIGNED_ELSEWHERE = "assigned_elsewhere"
    MISSING_STOP = "missing_stop"
    """A visit already scheduled that day is left out of the order."""
    OVER_CAPACITY = "over_capacity"
    PAST_WORK_END = "past_work_end"
    OUTSIDE_WINDOW = "outside_window"
    DAY_OVER = "day_over"


@dataclass(frozen=True, slots=True)
class RouteProblem:
    """One problem, the task it is about (if any) and what to do, in words."""

    problem: Problem
    task_id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Slot:
    """When a stop of the route starts and ends (UTC)."""

    task_id: int
    start: datetime
    end: datetime


def _zone(capacity: Capacity) -> ZoneInfo:
    return ZoneInfo(capacity.time_zone)


def day_bounds(day: date, capacity: Capacity) -> tuple[datetime, datetime]:
    """Local midnight of ``day`` and of the next day, in UTC (what "that day" covers)."""
    zone = _zone(capacity)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def work_bounds(day: date, capacity: Capacity) -> tuple[datetime, datetime]:
    """The start and end of the working day ``day``, in UTC."""
    zone = _zone(capacity)
    start = datetime.combine(day, capacity.work_start, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day, capacity.work_end, tzinfo=zone).astimezone(UTC)
    return start, end


def slots(day: date, capacity: Capacity, task_ids: Sequence[int]) -> list[Slot]:
    """The times of ``task_ids`` visited in this order on ``day`` (see the module docstring)."""
    first, _ = work_bounds(day, capacity)
    travel = timedelta(minutes=capacity.travel_minutes)
    visit = timedelta(minutes=capacity.minutes_per_visit)
    out = []
    for index, task_id in enumerate(task_ids):
        start = first + travel + index * (travel + visit)
        out.append(Slot(task_id, start, start + visit))
    return out


def _urgency(task: RouteTask) -> tuple[int, datetime, int]:
    return (task.priority, task.latest, task.task_id)


def arrange(tasks: Sequence[RouteTask]) -> list[RouteTask]:
    """``tasks`` grouped by district, community, village; each group and each task within
    its group in order of urgency (priority, then due window end) of its most urgent task."""
    ranks: dict[tuple[str, ...], tuple[int, datetime, int]] = {}
    for task in tasks:
        for key in _area_keys(task.area):
            ranks[key] = min(ranks.get(key, _urgency(task)), _urgency(task))

    def order(task: RouteTask) -> tuple[tuple[int, datetime, int], ...]:
        return (*(ranks[key] for key in _area_keys(task.area)), _urgency(task))

    return sorted(tasks, key=order)


def _area_keys(area: Area) -> tuple[tuple[str, ...], ...]:
    district = (area.district or "",)
    community = (*district, area.community or "")
    return (district, community, (*community, area.village or ""))


def _in_window(task: RouteTask, at: datetime) -> bool:
    return task.earliest <= at <= task.latest


def _exempt_from_window(task: RouteTask) -> bool:
    # A visit already scheduled outside its window was decided with a reason in its
    # history (the patient is only home then); moving it within the day is not refused.
    return task.scheduled_at is not None and not _in_window(task, task.scheduled_at)


def timing_problems(
    day: date, capacity: Capacity, order: Sequence[RouteTask]
) -> list[RouteProblem]:
    """Capacity, working hours and due windows of ``order`` visited on ``day``."""
    problems: list[RouteProblem] = []
    if len(order) > capacity.max_visits:
        problems.append(
            RouteProblem(
                Problem.OVER_CAPACITY,
                order[capacity.max_visits].task_id,
                f"{len(order)} visits: at most {capacity.max_visits} fit this nurse's day",
            )
        )
    _, work_end = work_bounds(day, capacity)
    for task, slot in zip(order, slots(day, capacity, [t.task_id for t in order]), strict=True):
        if slot.end > work_end:
            problems.append(
                RouteProblem(
                    Problem.PAST_WORK_END,
                    task.task_id,
                    f"task {task.task_id} would end after the working day "
                    f"({capacity.work_end:%H:%M})",
                )
            )
        if not _in_window(task, slot.start) and not _exempt_from_window(task):
            problems.append(
                RouteProblem(
                    Problem.OUTSIDE_WINDOW,
                    task.task_id,
                    f"task {task.task_id} would start outside its due window",
                )
            )
    return problems


def validate(
    day: date,
    capacity: Capacity,
    task_ids: Sequence[int],
    tasks: Mapping[int, RouteTask],
    *,
    nurse: str,
    day_stops: Collection[int],
    now: datetime,
) -> list[RouteProblem]:
    """Every problem of visiting ``task_ids`` in this order on ``day``; empty when it fits.

    Args:
        tasks: the tasks of the nurse's team patients the caller may plan (any status);
            an id not in it is answered like one that does not exist.
        nurse: who makes the visits.
        day_stops: the ids of the tasks already scheduled for her that day.
        now: the time of the request (a day that is over cannot be planned).
    """
    problems: list[RouteProblem] = []
    _, work_end = work_bounds(day, capacity)
    if work_end <= now:
        problems.append(
            RouteProblem(Problem.DAY_OVER, None, f"{day.isoformat()}'s working day is over")
        )
    seen: set[int] = set()
    order: list[RouteTask] = []
    for task_id in task_ids:
        if task_id in seen:
            problems.append(
                RouteProblem(Problem.DUPLICATE, task_id, f"task {task_id} is listed twice")
            )
            continue
        seen.add(task_id)
        task = tasks.get(task_id)
        if task is None:
            problems.append(
                RouteProblem(
                    Problem.UNKNOWN_TASK,
                    task_id,
                    f"task {task_id} is not a task of this nurse's team patients",
                )
            )
            continue
        if task.status not in OPEN_STATUSES:
            problems.append(
                RouteProblem(Problem.NOT_OPEN, task_id, f"task {task_id} is {task.status.value}")
            )
        elif task.assignee is not None and task.assignee != nurse:
            problems.append(
                RouteProblem(
                    Problem.ASSIGNED_ELSEWHERE,
                    task_id,
                    f"task {task_id} is another nurse's: reassign it first",
                )
            )
        order.append(task)
    for task_id in sorted(set(day_stops) - seen):
        problems.append(
            RouteProblem(
                Problem.MISSING_STOP,
                task_id,
                f"task {task_id} is scheduled that day: keep it in the order, "
                "or move or cancel it first",
            )
        )
    return problems + timing_problems(day, capacity, order)


def suggestable(task: RouteTask, day: date, capacity: Capacity, *, nurse: str) -> bool:
    """A requested task, hers or nobody's, whose due window overlaps the working day."""
    start, end = work_bounds(day, capacity)
    return (
        task.status is VisitStatus.REQUESTED
        and task.assignee in (None, nurse)
        and task.earliest < end
        and task.latest >= start
    )


def suggest(
    day: date,
    capacity: Capacity,
    stops: Sequence[RouteTask],
    candidates: Sequence[RouteTask],
    *,
    nurse: str,
) -> list[RouteTask]:
    """The suggested order of ``day``: its stops and as many urgent candidates as fit.

    The day's stops are always kept (moving a visit to another day is the nurse's
    decision). Candidates that are not :func:`suggestable` are ignored; the others are
    tried most urgent first and kept when the arranged order still fits capacity, working
    hours and every due window. If the stops do not fit even in their current order,
    that order is returned with nothing added.
    """
    chosen = list(stops)
    best = arrange(chosen)
    if timing_problems(day, capacity, best):
        best = sorted(chosen, key=lambda t: (t.scheduled_at or t.latest, t.task_id))
        if timing_problems(day, capacity, best):
            return best
    taken = {t.task_id for t in chosen}
    for task in sorted(candidates, key=_urgency):
        if len(chosen) >= capacity.max_visits:
            break
        if task.task_id in taken or not suggestable(task, day, capacity, nurse=nurse):
            continue
        trial = arrange([*chosen, task])
        if not timing_problems(day, capacity, trial):
            chosen.append(task)
            taken.add(task.task_id)
            best = trial
    return best
