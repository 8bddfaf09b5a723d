"""Rules as values: what :mod:`alerts.rules.loader` builds from YAML and the rule kinds read.

Every number carries its unit: a :class:`Bound` holds one threshold per unit (UCUM code)
so that a reading is compared in the unit its device used (``source_unit``). A bound with
no entry for that unit falls back to the canonical unit of the field (mmol/L, mmHg …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

from alerts.model import Metric, Severity
from readings.model import Kind
from readings.units import Unit


class Op(StrEnum):
    """A comparison; ``below``/``at_or_above`` pairs make half-open intervals."""

    BELOW = "below"
    AT_OR_BELOW = "at_or_below"
    ABOVE = "above"
    AT_OR_ABOVE = "at_or_above"

    def holds(self, value: float, threshold: float) -> bool:
        """Whether ``value`` (op) ``threshold``."""
        match self:
            case Op.BELOW:
                return value < threshold
            case Op.AT_OR_BELOW:
                return value <= threshold
            case Op.ABOVE:
                return value > threshold
            case Op.AT_OR_ABOVE:
                return value >= threshold


FIELD_UNITS: Final[Mapping[str, Unit]] = {
    "glucose": Unit.MMOL_PER_L,
    "systolic": Unit.MMHG,
    "diastolic": Unit.MMHG,
    "mean_arterial": Unit.MMHG,
    "pulse": Unit.PER_MIN,
    "heart_rate": Unit.PER_MIN,
    "spo2": Unit.PERCENT,
    "weight": Unit.KG,
    "temperature": Unit.CELSIUS,
}
"""The canonical unit of each reading field a rule may compare (``readings.model`` values)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """One threshold, given in one or more units; ``by_unit`` always has the canonical one."""

    op: Op
    by_unit: Mapping[str, float]
    canonical: Unit

    def threshold_for(self, unit: str) -> tuple[str, float]:
        """The unit to compare in and the threshold in it: the device's unit if given."""
        if unit in self.by_unit:
            return unit, self.by_unit[unit]
        return self.canonical.value, self.by_unit[self.canonical.value]


@dataclass(frozen=True, slots=True)
class Condition:
    """A named test on one field: every bound must hold (two bounds make a range)."""

    name: str
    fields: tuple[str, ...]
    """The field to read; the first one a reading has (``heart_rate`` or a cuff's ``pulse``)."""
    bounds: tuple[Bound, ...]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """When a matching reading becomes an alert.

    ``count`` consecutive matching readings spanning at least ``span`` (``cgm_span`` for
    a CGM, which sends every few minutes) within ``within`` of the newest confirm it.
    ``combine: mean`` confirms on the mean of the last ``count`` readings instead (home
    BP protocol). Until then the finding is pending; with a ``deadline`` (dangerous single
    readings) it fires unconfirmed once the deadline passes.
    """

    count: int = 1
    span: timedelta = timedelta(0)
    within: timedelta = timedelta(days=1)
    cgm_span: timedelta | None = None
    deadline: timedelta | None = None
    retest_within: timedelta | None = None
    combine: str = "run"


@dataclass(frozen=True, slots=True)
class Tier:
    """One severity level of a threshold rule: any condition (or the flag) matches."""

    severity: Severity
    conditions: tuple[Condition, ...]
    confirmation: Confirmation
    flag: str | None = None
    """A reading flag that matches whatever the value: ``result_low`` is G1, ``result_high`` G4."""


@dataclass(frozen=True, slots=True)
class Level:
    """A named step of a staleness rule: silent for ``after`` or longer."""

    name: str
    after: timedelta


@dataclass(frozen=True, slots=True)
class MissingGroup:
    """S2: a kind of reading a patient with one of ``conditions`` should send every ``after``."""

    name: str
    kinds: frozenset[Kind]
    conditions: frozenset[str]
    after: timedelta


@dataclass(frozen=True, slots=True)
class Change:
    """H1: the change against the patient's own reading ``over`` earlier."""

    name: str
    over: timedelta
    bound: Bound


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a rule file, validated. ``profiles`` hold its variants by condition."""

    id: str
    version: int
    title: str
    kind: str
    metric: Metric
    source: str
    late_after: timedelta
    """A reading older than this when it arrives raises a review finding, never a page."""
    severity: Severity | None = None
    kinds: frozenset[Kind] = frozenset()
    applies_to: frozenset[str] = frozenset()
    """Care-model conditions the rule is for (empty: every patient)."""
    replaces: str | None = None
    """The general rule this condition-specific one replaces for its patients."""
    exclude_flags: frozenset[str] = frozenset()
    tiers: tuple[Tier, ...] = ()
    conditions: tuple[Condition, ...] = ()
    levels: tuple[Level, ...] = ()
    groups: tuple[MissingGroup, ...] = ()
    changes: tuple[Change, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    profiles: Mapping[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one file, in file order."""

    rules: tuple[Rule, ...]
    origin: str

    def get(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def lookback(self) -> timedelta:
        """How much history the rules read: the evaluator's per-patient window."""
        longest = timedelta(days=1)
        for rule in self.rules:
            for variant in (rule, *rule.profiles.values()):
                for value in variant.params.values():
                    if isinstance(value, timedelta):
                        longest = max(longest, value)
                if variant.kind == "cgm_summary":
                    longest = max(longest, timedelta(days=int(variant.params["days"])))
                if variant.kind == "moving_average_rise":
                    longest = max(longest, timedelta(days=2 * int(variant.params["days"]) + 1))
                longest = max([longest, *(c.over + timedelta(days=1) for c in variant.changes)])
                longest = max([longest, *(g.after for g in variant.groups)])
                for tier in variant.tiers:
                    longest = max(longest, tier.confirmation.within)
        return longest
