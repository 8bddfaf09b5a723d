"""What every rule kind shares: the evaluation context, values in the device's unit,
lateness, and building findings."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from alerts.model import Explanation, Finding, FindingStatus, Severity
from alerts.rules.model import FIELD_UNITS, Bound, Condition, Rule
from readings.files import PatientProfile
from readings.model import READING_CLASSES, Kind, Reading
from readings.units import canonical_unit, from_canonical

SOURCE_UNIT_DECIMALS: Final = 6
"""A value converted back to the device's unit is rounded to 6 decimals: 300 mg/dL stored
as 16.652… mmol/L comes back as 300.0000000001, which must still be ≥ 300."""


_KIND_OF_CLASS: Final[Mapping[type[Reading], Kind]] = {
    cls: kind for kind, cls in READING_CLASSES.items()
}


def kind_of(reading: Reading) -> Kind:
    """The reading's kind, by class: ``Reading.kind`` builds the enum on every call, and the
    rules ask for it once per reading per rule per evaluation."""
    return _KIND_OF_CLASS[type(reading)]


class CgmSummaryLike(Protocol):
    """What G7 reads from the 14-day CGM summary (the reports' summaries module)."""

    @property
    def days(self) -> float: ...
    @property
    def wear_percent(self) -> float: ...
    @property
    def tir_percent(self) -> float: ...
    @property
    def tbr_below_3_9_percent(self) -> float: ...
    @property
    def tbr_below_3_0_percent(self) -> float: ...


SummaryFn = Callable[[Sequence[Reading], PatientProfile, datetime], CgmSummaryLike | None]
"""Computes a patient's CGM summary over the readings given (injected; G7 uses it)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a rule may read besides the readings; ``now`` is the injected clock."""

    profile: PatientProfile
    now: datetime
    arrived: Collection[str] = frozenset()
    """Ids of the readings that arrived in this evaluation; only they can be late."""
    gateway_last_seen: Mapping[str, datetime] = field(default_factory=dict)
    summary: SummaryFn | None = None
    monitoring_since: Mapping[Kind, datetime] | None = None
    """Per reading kind, since when the patient's paired devices have produced it (the
    start of the current unbroken run of pairings, ``alerts.monitoring``); a kind absent
    is not expected at all. None: pairings unknown (a file backtest), monitoring of a kind
    is then taken to run since its first reading among those given (S1, S2)."""


def field_value(reading: Reading, fields: Sequence[str]) -> tuple[str, float] | None:
    """The first of ``fields`` the reading has, as (field, canonical value)."""
    for name in fields:
        value = getattr(reading.values, name, None)
        if isinstance(value, int | float):
            return name, float(value)
    return None


def in_unit(reading: Reading, field_name: str, value: float, bound: Bound) -> tuple[str, float]:
    """The unit to compare in and ``value`` expressed in it.

    The device's own unit when the bound gives a threshold in it (the clinical sources give
    both, and a device showing 54 mg/dL showed the patient G2, not G1); else the canonical.
    """
    source = reading.source_unit
    if (
        source != bound.canonical.value
        and source in bound.by_unit
        and canonical_unit(source) == FIELD_UNITS[field_name]
    ):
        return source, round(from_canonical(value, source), SOURCE_UNIT_DECIMALS)
    return bound.canonical.value, value


def condition_holds(reading: Reading, condition: Condition) -> bool:
    """Whether every bound of ``condition`` holds for the reading (False if it lacks the field)."""
    found = field_value(reading, condition.fields)
    if found is None:
        return False
    name, value = found
    for bound in condition.bounds:
        unit, compared = in_unit(reading, name, value, bound)
        if not bound.op.holds(compared, bound.threshold_for(unit)[1]):
            return False
    return True


def is_late(reading: Reading, rule: Rule, context: Context) -> bool:
    """Arrived in this evaluation and measured longer than the rule's ``late_after`` ago."""
    return reading.id in context.arrived and context.now - reading.measured_at > rule.late_after


def thresholds_of(conditions: Sequence[Condition]) -> dict[str, float]:
    """The thresholds in force, named ``"<condition>[.<op>] <unit>"``."""
    result: dict[str, float] = {}
    for condition in conditions:
        for bound in condition.bounds:
            stem = condition.name if len(condition.bounds) == 1 else f"{condition.name}.{bound.op}"
            for unit, threshold in bound.by_unit.items():
                result[f"{stem} {unit}"] = threshold
    return result


def bound_thresholds(name: str, bound: Bound) -> dict[str, float]:
    """One named bound's thresholds, per unit."""
    return {f"{name} {unit}": value for unit, value in bound.by_unit.items()}


def finding(
    rule: Rule,
    context: Context,
    *,
    status: FindingStatus,
    severity: Severity,
    readings: Sequence[Reading],
    thresholds: Mapping[str, float],
    key: str,
    params: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Finding:
    """A finding of ``rule`` at the context's instant."""
    return Finding(
        patient_id=context.profile.patient_id,
        rule_id=rule.id,
        rule_version=rule.version,
        metric=rule.metric,
        severity=severity,
        status=status,
        at=context.now,
        reading_ids=tuple(r.id for r in readings),
        thresholds=dict(thresholds),
        explanation=Explanation(key, {"rule": rule.id, **(params or {})}),
        **extra,
    )


def late_review(
    rule: Rule, context: Context, readings: Sequence[Reading], thresholds: Mapping[str, float]
) -> Finding:
    """The review finding for readings that would have alerted but arrived late: P4, never
    a page, saying how late (hours) the oldest of them was."""
    oldest = min(r.measured_at for r in readings)
    hours = round((context.now - oldest).total_seconds() / 3600, 1)
    return finding(
        rule,
        context,
        status=FindingStatus.FIRING,
        severity=Severity.P4,
        readings=readings,
        thresholds=thresholds,
        key="alert.late_review",
        params={"hours_late": hours, "count": len(readings)},
        late=True,
    )


def first_readings(readings: Iterable[Reading]) -> dict[Kind, datetime]:
    """When each kind was first measured among ``readings``: where no pairings are known
    (a backtest), monitoring of a kind is taken to start there (S1, S2)."""
    first: dict[Kind, datetime] = {}
    for reading in readings:
        kind = kind_of(reading)
        if kind not in first or reading.measured_at < first[kind]:
            first[kind] = reading.measured_at
    return first


def sort_readings(readings: Sequence[Reading]) -> list[Reading]:
    """Oldest first; ties broken by id so the order never depends on arrival."""
    return sorted(readings, key=lambda r: (r.measured_at, r.id))
