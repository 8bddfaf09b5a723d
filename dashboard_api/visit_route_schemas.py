"""Request and response models of the day-route routes (:mod:`dashboard_api.routes.visit_routes`).

Field names follow the day-route contract (docs/visit-routes.md); a field named ``date``
is annotated ``dt.date`` so that pydantic does not mistake it for its own type.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from pydantic import BaseModel, Field

from dashboard_api.schemas import RequestModel

FIRST_DAY: Final = dt.date(2000, 1, 1)
LAST_DAY: Final = dt.date(2099, 12, 31)
"""Visits are planned for now and the coming weeks; bounded days keep the time arithmetic
in range (as the report routes bound theirs)."""
_HHMM: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_ORDER: Final = 50
"""More ids than any capacity allows: the planner names the problem, the body stays small."""


class CapacityOut(BaseModel):
    """A nurse's working day as the planner uses it."""

    nurse: str
    work_start: str
    work_end: str
    max_visits: int
    minutes_per_visit: int
    travel_minutes: int
    time_zone: str


class CapacityIn(RequestModel):
    """A new capacity (``HH:MM`` civil times in the nurse's time zone)."""

    work_start: str = Field(pattern=_HHMM)
    work_end: str = Field(pattern=_HHMM)
    max_visits: int = Field(ge=1, le=20)
    minutes_per_visit: int = Field(ge=5, le=240)
    travel_minutes: int = Field(ge=0, le=180)
    time_zone: str = Field(default="Asia/Shanghai", min_length=1, max_length=64)


class Stop(BaseModel):
    """One visit of a route; ``start``/``end`` are empty for a suggestion (not placed)."""

    task_id: int
    visit_code: str
    patient_id: str
    patient_name: str | None
    kind: str
    priority: int
    status: str
    district: str | None
    community: str | None
    village: str | None
    due_earliest: dt.datetime
    due_latest: dt.datetime
    start: dt.datetime | None
    end: dt.datetime | None
    reason_label: str


class DayRoute(BaseModel):
    """The nurse's day: her stops in order, what could be added, and room left."""

    date: dt.date
    nurse: str
    capacity: CapacityOut
    stops: list[Stop]
    suggestions: list[Stop]
    free_slots: int


class RouteOrder(RequestModel):
    """The day's visits in the order the nurse will make them."""

    date: dt.date = Field(ge=FIRST_DAY, le=LAST_DAY)
    nurse: str | None = Field(default=None, min_length=1, max_length=64)
    task_ids: list[int] = Field(max_length=MAX_ORDER)
    reason: str = Field(default="", max_length=2000)
    """Recorded on each rescheduled visit; a default names the route when left empty."""


class SuggestRequest(RequestModel):
    """The day to suggest an order for."""

    date: dt.date = Field(ge=FIRST_DAY, le=LAST_DAY)
    nurse: str | None = Field(default=None, min_length=1, max_length=64)


class Suggestion(BaseModel):
    """A full order for the day (its stops and what fits), ready to ``PUT``."""

    task_ids: list[int]


class WeekDay(BaseModel):
    """One day of the week view."""

    date: dt.date
    stops: list[Stop]


class Week(BaseModel):
    """Seven days of a nurse's scheduled visits, from ``start``."""

    start: dt.date
    nurse: str
    days: list[WeekDay]
