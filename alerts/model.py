"""The values that pass between the alert engine's parts.

A rule never touches the registry, the broker or the wall clock: it is given the patient's
readings, their targets and profile, and the evaluation instant, and answers with
:class:`Finding` values. The lifecycle (pending → firing → acknowledged → resolved) is the
only place that turns findings into alerts, so one open alert per patient + rule, inhibition,
silences and the audit record are decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Severity(StrEnum):
    """Clinical priority, from the default rule table.

    P1 emergency, P2 urgent same day, P3 follow-up within two weeks, P4 review; SYS is a
    data or device problem (stale CGM, gateway offline, the clinic's own outage).
    """

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    SYS = "SYS"

    @property
    def rank(self) -> int:
        """0 for P1 … 3 for P4, 4 for SYS: lower is more urgent."""
        return _RANK[self]


_RANK: dict[Severity, int] = {
    Severity.P1: 0,
    Severity.P2: 1,
    Severity.P3: 2,
    Severity.P4: 3,
    Severity.SYS: 4,
}


class Metric(StrEnum):
    """What a rule watches; inhibition works per patient and metric (P1 mutes P2/P3)."""

    GLUCOSE = "glucose"
    CGM = "cgm"
    BLOOD_PRESSURE = "blood_pressure"
    WEIGHT = "weight"
    SPO2 = "spo2"
    HEART_RATE = "heart_rate"
    TEMPERATURE = "temperature"
    SYMPTOM = "symptom"
    ADHERENCE = "adherence"
    DEVICE = "device"
    SYSTEM = "system"


class FindingStatus(StrEnum):
    """What a rule concluded at the evaluation instant."""

    PENDING = "pending"
    """The condition holds on a reading that needs confirming (a re-test, N of M); the
    finding carries the deadline after which it fires anyway, marked unconfirmed."""
    FIRING = "firing"
    """The condition holds and is confirmed (or its confirmation deadline passed)."""
    CLEAR = "clear"
    """The condition no longer holds: an open alert of this rule may resolve ("all clear")."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The reason in words, as a message key and its parameters, rendered in zh-CN or en.

    E.g. ``Explanation("glucose.low_count", {"count": 3, "threshold_mmol_l": 3.9, "days": 7})``
    reads "3 readings < 3.9 mmol/L in 7 days" / "7 天内 3 次血糖 < 3.9 mmol/L".
    """

    key: str
    params: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's conclusion about one patient at one instant, from data alone."""

    patient_id: str
    rule_id: str
    rule_version: int
    metric: Metric
    severity: Severity
    status: FindingStatus
    at: datetime
    """The evaluation instant (the injected clock), UTC."""
    reading_ids: tuple[str, ...]
    """The readings that caused it, oldest first (empty for stale/missing-data rules)."""
    thresholds: Mapping[str, float]
    """The thresholds in force for this patient at ``at``, named with their unit."""
    explanation: Explanation
    confirmed: bool = True
    """False when it fired at its confirmation deadline with no confirming re-test."""
    late: bool = False
    """Its readings arrived late: a review alert saying so, never a page."""
    deadline: datetime | None = None
    """For a pending finding: when it fires anyway if nothing confirms or clears it."""
    ask_retest_within: timedelta | None = None
    """Ask the patient to measure again within this time (persistence rules, re-tests)."""
