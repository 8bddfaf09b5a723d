"""Per-patient overrides, effective-dated, and condition profiles applied to a rule.

A patient's ``overrides`` (from the care model, or the backtest's patients file) are keyed
``"<rule>.<name>"``, where name is a condition's name (``G2.range.below`` for one bound of
a range), a change (``H1.gain_3d``), a parameter (``G7.tir_min_percent``) or ``enabled``.
A value is a number in the field's canonical unit, a mapping of unit → number, or a list
of ``{value, from, until}`` entries (ISO times, half-open [from, until)) of which the one
in force at the evaluation instant applies. P1 rules cannot be disabled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from alerts.model import Severity
from alerts.rules.model import Bound, Condition, Rule, RuleSet, Tier
from readings.units import canonical_unit, parse_unit


class OverrideError(ValueError):
    """A patient's override names no rule setting or has a value of the wrong form."""


def profile_variant(rule: Rule, conditions: frozenset[str]) -> Rule:
    """The rule as it applies to a patient with these conditions (a profile replaces it)."""
    for condition in sorted(rule.profiles):
        if condition in conditions:
            return rule.profiles[condition]
    return rule


def active_rules(rules: RuleSet, conditions: frozenset[str]) -> list[Rule]:
    """The rules for a patient: those that apply to their conditions, minus the general
    rules a condition-specific rule replaces (COPD's O2 replaces O1 instead of adding)."""
    applying = [r for r in rules.rules if not r.applies_to or r.applies_to & conditions]
    replaced = {r.replaces for r in applying if r.replaces}
    return [profile_variant(r, conditions) for r in applying if r.id not in replaced]


def _in_force(value: Any, now: datetime, key: str) -> Any:
    if not isinstance(value, list):
        return value
    for entry in value:
        if not isinstance(entry, dict) or "value" not in entry:
            raise OverrideError(f"{key}: each dated entry needs a value (and from/until)")
        start = _time(entry.get("from"), key)
        end = _time(entry.get("until"), key)
        if (start is None or start <= now) and (end is None or now < end):
            return entry["value"]
    return None


def _time(value: Any, key: str) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else None
    if moment is None:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise OverrideError(f"{key}: {value!r} is not an ISO time") from None
    if moment.tzinfo is None:
        raise OverrideError(f"{key}: {value!r} has no UTC offset")
    return moment


def _bound(old: Bound, value: Any, key: str) -> Bound:
    if isinstance(value, bool):
        raise OverrideError(f"{key}: expected a number or unit → number mapping")
    if isinstance(value, int | float):
        return replace(old, by_unit={old.canonical.value: float(value)})
    if isinstance(value, dict) and value:
        by_unit: dict[str, float] = {}
        for unit, number in value.items():
            try:
                parsed = parse_unit(str(unit))
            except ValueError:
                raise OverrideError(f"{key}: unknown unit {unit!r}") from None
            if (
                canonical_unit(parsed) != old.canonical
                or isinstance(number, bool)
                or not isinstance(number, int | float)
            ):
                raise OverrideError(f"{key}.{unit}: not a threshold of {old.canonical.value}")
            by_unit[parsed.value] = float(number)
        if old.canonical.value not in by_unit:
            raise OverrideError(f"{key}: needs the canonical unit {old.canonical.value}")
        return replace(old, by_unit=by_unit)
    raise OverrideError(f"{key}: expected a number or unit → number mapping")


def _condition(condition: Condition, name: str, value: Any, key: str) -> Condition | None:
    if name == condition.name and len(condition.bounds) == 1:
        return replace(condition, bounds=(_bound(condition.bounds[0], value, key),))
    bounds = list(condition.bounds)
    for index, bound in enumerate(bounds):
        if name == f"{condition.name}.{bound.op}":
            bounds[index] = _bound(bound, value, key)
            return replace(condition, bounds=tuple(bounds))
    return None


def _is_p1(rule: Rule) -> bool:
    return rule.severity is Severity.P1 or any(t.severity is Severity.P1 for t in rule.tiers)


def apply_overrides(rule: Rule, overrides: Mapping[str, Any], now: datetime) -> Rule | None:
    """``rule`` with the patient's overrides in force at ``now``; None if disabled.

    Raises:
        OverrideError: an unknown name, a value of the wrong form, or disabling a P1 rule.
    """
    prefix = f"{rule.id}."
    for key in sorted(k for k in overrides if k.startswith(prefix)):
        name = key.removeprefix(prefix)
        value = _in_force(overrides[key], now, key)
        if value is None:
            continue
        if name == "enabled":
            if not isinstance(value, bool):
                raise OverrideError(f"{key}: expected true or false")
            if not value and _is_p1(rule):
                raise OverrideError(f"{key}: {rule.id} is a P1 rule and cannot be disabled")
            if not value:
                return None
            continue
        rule = _apply_one(rule, name, value, key)
    return rule


def _apply_one(rule: Rule, name: str, value: Any, key: str) -> Rule:
    tiers: list[Tier] = []
    changed = False
    for tier in rule.tiers:
        conditions = []
        for condition in tier.conditions:
            new = _condition(condition, name, value, key)
            changed = changed or new is not None
            conditions.append(new or condition)
        tiers.append(replace(tier, conditions=tuple(conditions)))
    conditions = []
    for condition in rule.conditions:
        new = _condition(condition, name, value, key)
        changed = changed or new is not None
        conditions.append(new or condition)
    changes = tuple(
        replace(c, bound=_bound(c.bound, value, key)) if c.name == name else c for c in rule.changes
    )
    changed = changed or any(c.name == name for c in rule.changes)
    params = dict(rule.params)
    if name in params:
        changed = True
        old = params[name]
        if isinstance(old, Bound):
            params[name] = _bound(old, value, key)
        elif isinstance(old, timedelta):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OverrideError(f"{key}: expected a number of minutes")
            params[name] = timedelta(minutes=float(value))
        elif isinstance(old, bool) or isinstance(value, bool) or not isinstance(value, int | float):
            raise OverrideError(f"{key}: expected a number")
        else:
            params[name] = type(old)(value)
    if not changed:
        raise OverrideError(f"{key}: rule {rule.id} has no setting {name!r}")
    return replace(
        rule, tiers=tuple(tiers), conditions=tuple(conditions), changes=changes, params=params
    )


def check_overrides(
    rules: RuleSet, patient_id: str, overrides: Mapping[str, Any], now: datetime
) -> None:
    """Raise :class:`OverrideError` (naming the patient) if an override cannot apply."""
    known = {r.id for r in rules.rules}
    for key in overrides:
        if key.split(".", 1)[0] not in known or "." not in key:
            raise OverrideError(f"patient {patient_id}: {key}: no rule {key.split('.', 1)[0]!r}")
    try:
        for rule in rules.rules:
            for variant in (rule, *rule.profiles.values()):
                apply_overrides(variant, overrides, now)
    except OverrideError as exc:
        raise OverrideError(f"patient {patient_id}: {exc}") from None
