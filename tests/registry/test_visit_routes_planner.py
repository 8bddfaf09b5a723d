"""The pure day-route planner: slot times, grouping by area, validation, suggestions.

No database: the planner is fed frozen task views. The property tests draw whole days of
tasks (areas, priorities, windows that open and close in the middle of the day) and check
that a suggested order never breaks what validation would refuse.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidRegistryInput
from registry.visit_models import VisitStatus
from registry.visit_routes import (
    DEFAULT_CAPACITY,
    Area,
    Capacity,
    Problem,
    RouteTask,
    arrange,
    slots,
    suggest,
    timing_problems,
    validate,
    work_bounds,
)

DAY = date(2026, 3, 5)
NURSE = "nurse.liu"
# 08:30 in Shanghai is 00:30 UTC.
WORK_START = datetime(2026, 3, 5, 0, 30, tzinfo=UTC)
BEFORE = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def task(
    task_id: int,
    *,
    priority: int = 2,
    earliest: datetime = BEFORE,
    latest: datetime = BEFORE + timedelta(days=14),
    status: VisitStatus = VisitStatus.REQUESTED,
    assignee: str | None = None,
    scheduled_at: datetime | None = None,
    community: str | None = "和平社区",
    district: str | None = "东城区",
    village: str | None = None,
) -> RouteTask:
    return RouteTask(
        task_id,
        priority,
        earliest,
        latest,
        status,
        assignee,
        scheduled_at,
        Area(district, community, village),
    )


def test_the_defaults_are_a_working_day_of_six_visits() -> None:
    assert DEFAULT_CAPACITY.work_start == time(8, 30)
    assert DEFAULT_CAPACITY.work_end == time(17, 30)
    assert DEFAULT_CAPACITY.max_visits == 6
    assert DEFAULT_CAPACITY.time_zone == "Asia/Shanghai"
    # Six default visits end before the end of the default day (else the defaults refuse
    # themselves).
    assert not timing_problems(DAY, DEFAULT_CAPACITY, [task(i) for i in range(6)])


def test_slots_start_after_travel_and_follow_each_other_in_the_nurses_zone() -> None:
    capacity = Capacity(minutes_per_visit=45, travel_minutes=30)
    first, second = slots(DAY, capacity, [7, 3])
    assert (first.task_id, first.start, first.end) == (
        7,
        WORK_START + timedelta(minutes=30),
        WORK_START + timedelta(minutes=75),
    )
    assert second.start == WORK_START + timedelta(minutes=105)
    berlin = Capacity(time_zone="Europe/Berlin")
    assert work_bounds(DAY, berlin)[0] == datetime(2026, 3, 5, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"work_start": time(18, 0)}, "work_end"),
        ({"max_visits": 0}, "max_visits"),
        ({"max_visits": 21}, "max_visits"),
        ({"minutes_per_visit": 4}, "minutes_per_visit"),
        ({"travel_minutes": -1}, "travel_minutes"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ],
)
def test_a_capacity_out_of_range_is_refused_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRegistryInput) as raised:
        Capacity(**change)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_one_communitys_visits_are_consecutive_and_groups_follow_urgency() -> None:
    tasks = [
        task(1, priority=3, community="A"),
        task(2, priority=1, community="B"),
        task(3, priority=2, community="A"),
        task(4, priority=3, community="B"),
        task(5, priority=2, community="C", district="西城区"),
    ]
    # B holds the most urgent visit, then A (priority 2), then 西城区's C.
    assert [t.task_id for t in arrange(tasks)] == [2, 4, 3, 1, 5]


def test_within_the_same_priority_the_earlier_deadline_comes_first() -> None:
    soon = task(1, latest=BEFORE + timedelta(days=2))
    later = task(2, latest=BEFORE + timedelta(days=9))
    assert [t.task_id for t in arrange([later, soon])] == [1, 2]


def test_validation_names_each_problem() -> None:
    tasks = {
        1: task(1),
        2: task(2, status=VisitStatus.COMPLETED),
        3: task(3, assignee="nurse.sun"),
        4: task(4, latest=WORK_START),  # the window closes before the first slot
        5: task(5, status=VisitStatus.SCHEDULED, assignee=NURSE, scheduled_at=WORK_START),
    }
    problems = validate(
        DAY, DEFAULT_CAPACITY, [1, 1, 2, 3, 4, 99], tasks, nurse=NURSE, day_stops={5}, now=NOW
    )
    named = {(p.problem, p.task_id) for p in problems}
    assert named == {
        (Problem.DUPLICATE, 1),
        (Problem.NOT_OPEN, 2),
        (Problem.ASSIGNED_ELSEWHERE, 3),
        (Problem.OUTSIDE_WINDOW, 4),
        (Problem.UNKNOWN_TASK, 99),
        (Problem.MISSING_STOP, 5),
    }
    assert all(p.message for p in problems)


def test_over_capacity_and_past_the_end_of_the_day_are_refused() -> None:
    capacity = Capacity(max_visits=3, work_end=time(10, 30))
    tasks = {i: task(i) for i in range(1, 5)}
    problems = validate(DAY, capacity, [1, 2, 3, 4], tasks, nurse=NURSE, day_stops=(), now=NOW)
    named = {(p.problem, p.task_id) for p in problems}
    # 08:30 + 30 travel: 09:00–09:45, 10:15–11:00 (past 10:30), …
    assert (Problem.OVER_CAPACITY, 4) in named
    assert {t for p, t in named if p is Problem.PAST_WORK_END} == {2, 3, 4}
    assert not validate(DAY, capacity, [1], tasks, nurse=NURSE, day_stops=(), now=NOW)


def test_a_window_opening_later_that_day_is_respected() -> None:
    opens = WORK_START + timedelta(hours=2)  # 10:30 local
    tasks = {1: task(1), 2: task(2, earliest=opens)}
    first = validate(DAY, DEFAULT_CAPACITY, [2, 1], tasks, nurse=NURSE, day_stops=(), now=NOW)
    assert [(p.problem, p.task_id) for p in first] == [(Problem.OUTSIDE_WINDOW, 2)]
    # Third in the day it starts at 11:00, inside the window.
    tasks[3] = task(3)
    assert not validate(DAY, DEFAULT_CAPACITY, [1, 3, 2], tasks, nurse=NURSE, day_stops=(), now=NOW)


def test_a_visit_already_placed_outside_its_window_may_be_moved_within_the_day() -> None:
    late = task(
        1,
        latest=BEFORE,
        status=VisitStatus.SCHEDULED,
        assignee=NURSE,
        scheduled_at=WORK_START + timedelta(hours=3),
    )
    assert not validate(DAY, DEFAULT_CAPACITY, [1], {1: late}, nurse=NURSE, day_stops={1}, now=NOW)


def test_a_day_that_is_over_cannot_be_planned() -> None:
    after = WORK_START + timedelta(hours=10)
    problems = validate(DAY, DEFAULT_CAPACITY, [], {}, nurse=NURSE, day_stops=(), now=after)
    assert [p.problem for p in problems] == [Problem.DAY_OVER]


def test_suggestions_keep_the_stops_and_add_the_most_urgent_that_fit() -> None:
    capacity = Capacity(max_visits=3)
    stop = task(10, status=VisitStatus.SCHEDULED, assignee=NURSE, scheduled_at=WORK_START)
    candidates = [
        task(1, priority=3),
        task(2, priority=1, community="B"),
        task(3, priority=2),
        task(4, priority=1, assignee="nurse.sun"),  # another nurse's
        task(5, priority=1, earliest=WORK_START + timedelta(days=3)),  # not yet due
        task(6, priority=1, status=VisitStatus.SCHEDULED, assignee=NURSE),  # not requested
    ]
    order = suggest(DAY, capacity, [stop], candidates, nurse=NURSE)
    assert [t.task_id for t in order] == [2, 3, 10]


def test_a_candidate_that_would_break_a_window_is_left_out() -> None:
    closes = WORK_START + timedelta(minutes=40)  # only the first slot (09:00) is in time
    tasks = [task(1, priority=1), task(2, priority=2, latest=closes, community="Z")]
    order = suggest(DAY, DEFAULT_CAPACITY, [], tasks, nurse=NURSE)
    # Grouped by urgency 1 comes first, pushing 2 to 10:15, past its window: 2 is left
    # for the nurse to place by hand.
    assert [t.task_id for t in order] == [1]


AREAS = st.builds(
    Area,
    district=st.sampled_from(["东城区", "西城区", None]),
    community=st.sampled_from(["和平社区", "幸福社区", "红星村", None]),
    village=st.sampled_from(["一组", "二组", None]),
)
OFFSETS = st.integers(min_value=-24 * 60, max_value=3 * 24 * 60)
"""Window bounds in minutes from 08:30 local: from the day before to three days later."""


@st.composite
def open_tasks(draw: st.DrawFn) -> list[RouteTask]:
    count = draw(st.integers(min_value=0, max_value=14))
    out = []
    for task_id in range(1, count + 1):
        start = draw(OFFSETS)
        length = draw(st.integers(min_value=1, max_value=3 * 24 * 60))
        out.append(
            RouteTask(
                task_id,
                draw(st.integers(min_value=1, max_value=3)),
                WORK_START + timedelta(minutes=start),
                WORK_START + timedelta(minutes=start + length),
                VisitStatus.REQUESTED,
                draw(st.sampled_from([None, NURSE, "nurse.sun"])),
                None,
                draw(AREAS),
            )
        )
    return out


CAPACITIES = st.builds(
    Capacity,
    work_start=st.sampled_from([time(7, 0), time(8, 30), time(13, 0)]),
    work_end=st.sampled_from([time(17, 30), time(19, 0)]),
    max_visits=st.integers(min_value=1, max_value=10),
    minutes_per_visit=st.integers(min_value=5, max_value=120),
    travel_minutes=st.integers(min_value=0, max_value=90),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(capacity=CAPACITIES, tasks=open_tasks())
def test_a_suggested_order_always_passes_validation(
    capacity: Capacity, tasks: list[RouteTask]
) -> None:
    order = suggest(DAY, capacity, [], tasks, nurse=NURSE)
    ids = [t.task_id for t in order]
    assert len(ids) <= capacity.max_visits
    assert not validate(
        DAY, capacity, ids, {t.task_id: t for t in tasks}, nurse=NURSE, day_stops=(), now=NOW
    )
    for planned, slot in zip(order, slots(DAY, capacity, ids), strict=True):
        assert planned.earliest <= slot.start <= planned.latest
        assert planned.assignee in (None, NURSE)


_INTERLEAVED = [
    task(1, priority=1, community="A"),
    task(2, priority=2, community="B"),
    task(3, priority=3, community="A"),
]
"""By urgency alone A, B, A: the case the grouping exists for, tried on every run."""


@PROPERTY
@given(capacity=CAPACITIES, tasks=open_tasks())
@example(capacity=DEFAULT_CAPACITY, tasks=_INTERLEAVED)
def test_a_suggested_order_keeps_each_community_together(
    capacity: Capacity, tasks: list[RouteTask]
) -> None:
    order = suggest(DAY, capacity, [], tasks, nurse=NURSE)
    communities = [(t.area.district, t.area.community) for t in order]
    runs = [c for i, c in enumerate(communities) if i == 0 or communities[i - 1] != c]
    assert len(runs) == len(set(runs))


@PROPERTY
@given(tasks=open_tasks())
def test_nothing_that_fits_is_left_out_while_there_is_room(tasks: list[RouteTask]) -> None:
    # With room for everyone and windows covering the whole day, every task of hers or
    # nobody's is suggested.
    wide = [
        RouteTask(
            t.task_id, t.priority, BEFORE, BEFORE + timedelta(days=5), t.status, t.assignee,
            None, t.area,
        )
        for t in tasks
    ]  # fmt: skip
    capacity = Capacity(max_visits=20, minutes_per_visit=5, travel_minutes=0)
    order = suggest(DAY, capacity, [], wide, nurse=NURSE)
    assert {t.task_id for t in order} == {t.task_id for t in wide if t.assignee != "nurse.sun"}
