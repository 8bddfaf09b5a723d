"""A nurse's day route and week: capacity, stops in order, suggestions, reorder, week view.

Who may ask about which nurse (``nurse=`` in the query or body; the caller herself when
left out): the nurse herself, or a current **lead of a team she is a nurse of**; for the
capacity alone also an **admin** (capacity is no health data). Anyone else naming a nurse
gets 404 ``nurse not found`` — the answer for an unknown username too, so accounts cannot
be probed; a caller who names nobody and is no nurse gets 403.

The patients a route shows are those the nurse cares for as a team nurse **and** the caller
may manage visits for (the matrix's ``manage_visits``): a lead of one of two teams of a
nurse sees her visits of that team only. Every request writes one audit row naming every
patient whose task it showed or changed; a refused plan is recorded as ``rejected``.

Setting a route schedules each task through :func:`registry.visit_schedule.apply_route`
(:meth:`~registry.visits.VisitRepository.schedule`), so the task history and the calendar
feed follow. See docs/visit-routes.md.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dashboard_api.authz import Action, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import Caller, CallerDep, ContextDep, route_template
from dashboard_api.visit_route_schemas import (
    FIRST_DAY,
    LAST_DAY,
    CapacityIn,
    CapacityOut,
    DayRoute,
    RouteOrder,
    Stop,
    Suggestion,
    SuggestRequest,
    Week,
    WeekDay,
)
from registry.access import Actor, Relationship, load_actor, related_facts
from registry.audit import AuditOutcome
from registry.care_models import Role, TeamMembership, TeamPosition, UserAccount
from registry.errors import InvalidRegistryInput, NotFound
from registry.visit_models import VisitStatus
from registry.visit_routes import (
    Area,
    Capacity,
    Problem,
    RouteProblem,
    RouteTask,
    arrange,
    day_bounds,
    suggest,
    suggestable,
    validate,
)
from registry.visit_schedule import (
    CapacityRepository,
    RoutePatient,
    apply_route,
    route_patients,
    route_task,
)
from registry.visits import TaskRecord, VisitRepository, VisitStateError

router = APIRouter(prefix=f"{API_PREFIX}/visits", tags=["visits"])

WEEK_DAYS: Final = 7

DayQuery = Annotated[
    date, Query(alias="date", description="the local day", ge=FIRST_DAY, le=LAST_DAY)
]
StartQuery = Annotated[
    date, Query(description="the first local day of the week", ge=FIRST_DAY, le=LAST_DAY)
]
NurseQuery = Annotated[
    str | None, Query(description="the nurse (default: the caller)", min_length=1, max_length=64)
]


_PROBLEMS: Final[dict[int | str, dict[str, object]]] = {
    422: {"description": "The order does not fit: `detail` lists each problem"}
}


@dataclass(frozen=True, slots=True)
class _Scope:
    """Whose route, on what basis, and which patients' tasks the answer may show."""

    caller: Caller
    nurse: Actor
    basis: str
    patient_ids: frozenset[str]


def _deny(
    context: ContextDep, request: Request, caller: Caller, code: int, detail: str
) -> HTTPException:
    template = route_template(request)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.DENIED,
        detail={"status": code},
    )
    return HTTPException(code, detail=detail)


def _team_ids(session: Session, user_id: int, position: TeamPosition, now: datetime) -> set[int]:
    return set(
        session.scalars(
            select(TeamMembership.team_id).where(
                TeamMembership.user_id == user_id,
                TeamMembership.position == position.value,
                TeamMembership.valid_from <= now,
                or_(TeamMembership.valid_to.is_(None), TeamMembership.valid_to > now),
            )
        )
    )


def _scope(
    request: Request,
    caller: Caller,
    context: ContextDep,
    nurse: str | None,
    *,
    admin_may: bool = False,
    patients: bool = True,
) -> _Scope:
    """Decide whether ``caller`` may see ``nurse``'s planning (see the module docstring)."""
    now = context.clock()
    name = nurse or caller.actor.username
    with context.read() as session:
        user_id = session.scalars(
            select(UserAccount.id).where(UserAccount.username == name)
        ).one_or_none()
        target = None if user_id is None else load_actor(session, user_id)
        is_nurse = target is not None and target.active and Role.NURSE in target.roles
        basis: str | None = None
        if target is not None and is_nurse:
            if target.user_id == caller.actor.user_id:
                basis = "self"
            elif admin_may and Role.ADMIN in caller.actor.roles:
                basis = "admin"
            elif _team_ids(session, caller.actor.user_id, TeamPosition.LEAD, now) & _team_ids(
                session, target.user_id, TeamPosition.NURSE, now
            ):
                basis = "team_lead"
        allowed: frozenset[str] = frozenset()
        if basis is not None and target is not None and patients:
            theirs = {
                pid
                for pid, facts in related_facts(session, target, now).items()
                if Relationship.TEAM_NURSE in facts.relationships
            }
            mine = related_facts(session, caller.actor, now, theirs) if theirs else {}
            allowed = frozenset(
                pid for pid, facts in mine.items() if decide(facts, Action.MANAGE_VISITS).basis
            )
    if basis is None or target is None:
        if nurse is None:
            raise _deny(context, request, caller, 403, "not allowed for your role")
        raise _deny(context, request, caller, 404, "nurse not found")
    return _Scope(caller=caller, nurse=target, basis=basis, patient_ids=allowed)


def _audit(
    context: ContextDep,
    request: Request,
    scope: _Scope,
    *,
    outcome: AuditOutcome = AuditOutcome.OK,
    patient_ids: Collection[str] = (),
    code: int = 200,
    count: int | None = None,
) -> None:
    template = route_template(request)
    detail: dict[str, str | int | None] = {"status": code, "basis": scope.basis}
    if scope.nurse.username != scope.caller.actor.username:
        detail["nurse"] = scope.nurse.username
    if count is not None:
        detail["count"] = count
    context.audit(
        actor=scope.caller.actor.username,
        actor_role=scope.basis if scope.basis != "self" else "nurse",
        action=template,
        target=template,
        outcome=outcome,
        patient_ids=sorted(set(patient_ids)),
        detail=detail,
    )


def _capacity_out(nurse: str, capacity: Capacity) -> CapacityOut:
    return CapacityOut(
        nurse=nurse,
        work_start=f"{capacity.work_start:%H:%M}",
        work_end=f"{capacity.work_end:%H:%M}",
        max_visits=capacity.max_visits,
        minutes_per_visit=capacity.minutes_per_visit,
        travel_minutes=capacity.travel_minutes,
        time_zone=capacity.time_zone,
    )


def reason_label(task: TaskRecord) -> str:
    """A short label of why the task exists, for staff (``B2``, ``routine:hypertension``)."""
    return task.rule_id or task.reason_key


def _stop(
    task: TaskRecord, patient: RoutePatient | None, capacity: Capacity, *, placed: bool
) -> Stop:
    area = patient.area if patient is not None else Area()
    start = task.scheduled_at if placed else None
    return Stop(
        task_id=task.id,
        visit_code=task.code,
        patient_id=task.patient_id,
        patient_name=patient.name if patient is not None else None,
        kind=task.kind.value,
        priority=task.priority,
        status=task.status.value,
        district=area.district,
        community=area.community,
        village=area.village,
        due_earliest=task.earliest,
        due_latest=task.latest,
        start=start,
        end=None if start is None else start + timedelta(minutes=capacity.minutes_per_visit),
        reason_label=reason_label(task),
    )


@dataclass(frozen=True, slots=True)
class _Day:
    """What the registry holds about one day of a nurse, within the caller's scope."""

    capacity: Capacity
    stops: list[TaskRecord]
    hidden_stops: int
    """Visits that day of patients outside the caller's scope (they still take slots)."""
    candidates: list[TaskRecord]
    patients: dict[str, RoutePatient]

    def view(self, task: TaskRecord) -> RouteTask:
        patient = self.patients.get(task.patient_id)
        return route_task(task, patient.area if patient is not None else Area())


def _load_day(session: Session, scope: _Scope, day: date) -> _Day:
    capacity = CapacityRepository(session).get(scope.nurse.username)
    start, end = day_bounds(day, capacity)
    visits = VisitRepository(session)
    everything = visits.scheduled_for(scope.nurse.username, start, end)
    stops = [t for t in everything if t.patient_id in scope.patient_ids]
    candidates = [
        t for t in visits.queue(sorted(scope.patient_ids)) if t.status is VisitStatus.REQUESTED
    ]
    patients = route_patients(session, {t.patient_id for t in [*stops, *candidates]})
    return _Day(capacity, stops, len(everything) - len(stops), candidates, patients)


def _day_route(day: date, scope: _Scope, loaded: _Day) -> DayRoute:
    capacity = loaded.capacity
    nurse = scope.nurse.username
    eligible = [
        t for t in loaded.candidates if suggestable(loaded.view(t), day, capacity, nurse=nurse)
    ]
    by_id = {t.id: t for t in eligible}
    ordered = arrange([loaded.view(t) for t in eligible])
    used = len(loaded.stops) + loaded.hidden_stops
    return DayRoute(
        date=day,
        nurse=nurse,
        capacity=_capacity_out(nurse, capacity),
        stops=[
            _stop(t, loaded.patients.get(t.patient_id), capacity, placed=True) for t in loaded.stops
        ],
        suggestions=[
            _stop(
                by_id[v.task_id],
                loaded.patients.get(by_id[v.task_id].patient_id),
                capacity,
                placed=False,
            )
            for v in ordered
        ],
        free_slots=max(0, capacity.max_visits - used),
    )


def _shown(route: DayRoute) -> list[str]:
    return [s.patient_id for s in [*route.stops, *route.suggestions]]


@router.get("/capacity", response_model=CapacityOut)
def get_capacity(
    request: Request, caller: CallerDep, context: ContextDep, nurse: NurseQuery = None
) -> CapacityOut:
    """A nurse's working day: hours, maximum visits, minutes per visit and travel."""
    scope = _scope(request, caller, context, nurse, admin_may=True, patients=False)
    with context.read() as session:
        capacity = CapacityRepository(session).get(scope.nurse.username)
    _audit(context, request, scope)
    return _capacity_out(scope.nurse.username, capacity)


def _civil(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@router.put("/capacity", response_model=CapacityOut)
def put_capacity(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    body: CapacityIn,
    nurse: NurseQuery = None,
) -> CapacityOut:
    """Set a nurse's working day (the nurse herself, a lead of her team, or an admin)."""
    scope = _scope(request, caller, context, nurse, admin_may=True, patients=False)
    try:
        capacity = Capacity(
            work_start=_civil(body.work_start),
            work_end=_civil(body.work_end),
            max_visits=body.max_visits,
            minutes_per_visit=body.minutes_per_visit,
            travel_minutes=body.travel_minutes,
            time_zone=body.time_zone,
        )
    except InvalidRegistryInput as exc:
        _audit(context, request, scope, outcome=AuditOutcome.REJECTED, code=422)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    with context.write() as session:
        stored = CapacityRepository(session, clock=context.clock).set(
            scope.nurse.username, capacity, actor=caller.actor.username
        )
    _audit(context, request, scope)
    return _capacity_out(scope.nurse.username, stored)


@router.get("/route", response_model=DayRoute)
def get_route(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    day: DayQuery,
    nurse: NurseQuery = None,
) -> DayRoute:
    """The nurse's day: stops in route order, suggestions in suggested order, room left."""
    scope = _scope(request, caller, context, nurse)
    with context.read() as session:
        route = _day_route(day, scope, _load_day(session, scope, day))
    _audit(context, request, scope, patient_ids=_shown(route), count=len(route.stops))
    return route


def _problems(problems: Sequence[RouteProblem]) -> list[dict[str, object]]:
    return [
        {"problem": p.problem.value, "task_id": p.task_id, "message": p.message} for p in problems
    ]


def _visible_task(
    visits: VisitRepository, task_id: int, patient_ids: frozenset[str]
) -> TaskRecord | None:
    try:
        task = visits.get(task_id)
    except NotFound:
        return None
    return task if task.patient_id in patient_ids else None


def _order_problems(
    session: Session, scope: _Scope, body: RouteOrder, now: datetime
) -> tuple[_Day, list[RouteProblem], list[str]]:
    """The day, the problems of ``body``'s order, and the patients it involves."""
    loaded = _load_day(session, scope, body.date)
    visits = VisitRepository(session)
    records = {t.id: t for t in loaded.stops}
    for task_id in set(body.task_ids) - set(records):
        task = _visible_task(visits, task_id, scope.patient_ids)
        if task is not None:
            records[task_id] = task
    loaded.patients.update(
        route_patients(session, {t.patient_id for t in records.values()} - set(loaded.patients))
    )
    problems = validate(
        body.date,
        loaded.capacity,
        body.task_ids,
        {task_id: loaded.view(task) for task_id, task in records.items()},
        nurse=scope.nurse.username,
        day_stops={t.id for t in loaded.stops},
        now=now,
    )
    if loaded.hidden_stops:
        problems.insert(
            0,
            RouteProblem(
                Problem.MISSING_STOP,
                None,
                f"the day has {loaded.hidden_stops} visit(s) of patients outside your team: "
                "only the nurse can reorder it",
            ),
        )
    return loaded, problems, [t.patient_id for t in records.values()]


@router.put("/route", response_model=DayRoute, responses=_PROBLEMS)
def put_route(
    request: Request, caller: CallerDep, context: ContextDep, body: RouteOrder
) -> DayRoute:
    """Set the day's order: requested tasks are scheduled, scheduled ones get their new
    time; 422 lists every problem (over capacity, past the working day, outside a due
    window, a task not open or not of the team, a stop of the day left out)."""
    scope = _scope(request, caller, context, body.nurse)
    problems: list[RouteProblem] = []
    involved: list[str] = []
    try:
        # The check and the scheduling in one transaction: what was checked is what is
        # written (the audit rows follow in their own transactions, after it ends).
        with context.write() as session:
            loaded, problems, involved = _order_problems(session, scope, body, context.clock())
            if not problems:
                apply_route(
                    session,
                    body.date,
                    loaded.capacity,
                    body.task_ids,
                    nurse=scope.nurse.username,
                    actor=caller.actor.username,
                    reason=body.reason.strip() or f"day route {body.date.isoformat()}",
                    clock=context.clock,
                )
    except VisitStateError as exc:
        problems = [
            RouteProblem(Problem.NOT_OPEN, exc.task_id, f"task {exc.task_id} is {exc.status}")
        ]
    except InvalidRegistryInput as exc:
        # The repository refused what the planner let through (the nurse is no longer on
        # the patient's team); the transaction rolled back, nothing was scheduled.
        problems = [RouteProblem(Problem.UNKNOWN_TASK, None, str(exc))]
    if problems:
        _audit(
            context, request, scope, outcome=AuditOutcome.REJECTED, code=422,
            patient_ids=involved, count=len(problems),
        )  # fmt: skip
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=_problems(problems))
    with context.read() as session:
        route = _day_route(body.date, scope, _load_day(session, scope, body.date))
    _audit(
        context, request, scope, patient_ids=[*involved, *_shown(route)],
        count=len(body.task_ids),
    )  # fmt: skip
    return route


@router.post("/route/suggest", response_model=Suggestion)
def suggest_route(
    request: Request, caller: CallerDep, context: ContextDep, body: SuggestRequest
) -> Suggestion:
    """A full order for the day: its stops and the most urgent tasks that fit, grouped by
    area. Nothing is changed; ``PUT /visits/route`` with these ids plans it."""
    scope = _scope(request, caller, context, body.nurse)
    with context.read() as session:
        loaded = _load_day(session, scope, body.date)
    order = suggest(
        body.date,
        loaded.capacity,
        [loaded.view(t) for t in loaded.stops],
        [loaded.view(t) for t in loaded.candidates],
        nurse=scope.nurse.username,
    )
    ids = [t.task_id for t in order]
    by_id = {t.id: t.patient_id for t in [*loaded.stops, *loaded.candidates]}
    _audit(context, request, scope, patient_ids=[by_id[i] for i in ids], count=len(ids))
    return Suggestion(task_ids=ids)


@router.get("/week", response_model=Week)
def get_week(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    start: StartQuery,
    nurse: NurseQuery = None,
) -> Week:
    """Seven days of the nurse's scheduled visits from ``start``, each day in route order."""
    if start + timedelta(days=WEEK_DAYS - 1) > LAST_DAY:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="start: too late")
    scope = _scope(request, caller, context, nurse)
    days: list[WeekDay] = []
    shown: list[str] = []
    with context.read() as session:
        capacity = CapacityRepository(session).get(scope.nurse.username)
        visits = VisitRepository(session)
        for offset in range(WEEK_DAYS):
            day = start + timedelta(days=offset)
            first, last = day_bounds(day, capacity)
            tasks = [
                t
                for t in visits.scheduled_for(scope.nurse.username, first, last)
                if t.patient_id in scope.patient_ids
            ]
            patients = route_patients(session, {t.patient_id for t in tasks})
            stops = [_stop(t, patients.get(t.patient_id), capacity, placed=True) for t in tasks]
            days.append(WeekDay(date=day, stops=stops))
            shown.extend(t.patient_id for t in tasks)
    count = sum(len(d.stops) for d in days)
    _audit(context, request, scope, patient_ids=shown, count=count)
    return Week(start=start, nurse=scope.nurse.username, days=days)
