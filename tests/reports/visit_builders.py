"""Visit lines for the report and CSV tests, without a registry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from reports.visits import VisitLine

AT = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
"""10:00 in Shanghai on 2026-03-04, inside the seeded fortnight."""


def visit(**changes: Any) -> VisitLine:
    """A completed, controlled hypertension follow-up at ``AT``; override any field."""
    line = VisitLine(
        task_id=1,
        code="V-ABCDEFGHIJ",
        patient_id="p-1",
        kind="home_visit",
        status="completed",
        reason_kind="routine",
        rule_id=None,
        alert_id=None,
        priority=3,
        note="季度随访",
        earliest=AT - timedelta(days=7),
        latest=AT + timedelta(days=7),
        scheduled_at=AT,
        assignee="nurse.liu",
        created_at=AT - timedelta(days=8),
        created_by="dr.zhang",
        closed_at=AT + timedelta(minutes=40),
        check_in_at=AT,
        check_out_at=AT + timedelta(minutes=40),
        consent=True,
        assessment="血压控制良好",
        programme="hypertension",
        classification="controlled",
        recorded_by="nurse.liu",
        reading_ids=("r-a",),
        next_task_id=2,
    )
    return replace(line, **changes)
