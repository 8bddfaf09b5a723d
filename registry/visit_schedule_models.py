"""Registry table of a nurse's day capacity: work hours, how many visits, how long each.

One row per nurse account; a nurse without a row works with
:data:`registry.visit_routes.DEFAULT_CAPACITY`. Times of day are stored as minutes after
local midnight in the row's own time zone (a civil time of day is not a UTC instant: 08:30
in Shanghai stays 08:30 whatever the date), so both backends store plain integers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import Base


class VisitCapacity(Base):
    """How much a nurse can do in a working day (the planner's constraints)."""

    __tablename__ = "visit_capacities"
    __table_args__ = (
        CheckConstraint("work_start_minute < work_end_minute", name="work_hours"),
        CheckConstraint("work_start_minute >= 0 AND work_end_minute <= 1440", name="day_minutes"),
        CheckConstraint("max_visits > 0", name="max_visits"),
        CheckConstraint("minutes_per_visit > 0 AND travel_minutes >= 0", name="durations"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), primary_key=True)
    work_start_minute: Mapped[int] = mapped_column(Integer)
    """Start of the working day, minutes after local midnight (510 = 08:30)."""
    work_end_minute: Mapped[int] = mapped_column(Integer)
    """End of the working day: the last visit must be over by then."""
    max_visits: Mapped[int] = mapped_column(Integer)
    minutes_per_visit: Mapped[int] = mapped_column(Integer)
    travel_minutes: Mapped[int] = mapped_column(Integer)
    """Travel before each visit (from the centre to the first, then between stops)."""
    time_zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))
