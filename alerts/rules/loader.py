"""Load and validate rule files (YAML); every error names the file, the rule and the key.

``vitalgate alerts rules check FILE`` runs :func:`load_rules` and prints the first error,
e.g. ``rules.yaml: rule G3: tiers[0].conditions[0].at_or_above: unit 'mg/dl' is not a unit
of glucose``. The packaged default set is :func:`default_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from alerts.model import Metric, Severity
from alerts.rules.model import (
    FIELD_UNITS,
    Bound,
    Change,
    Condition,
    Confirmation,
    Level,
    MissingGroup,
    Op,
    Rule,
    RuleSet,
    Tier,
)
from readings.files import CONDITION_NAMES
from readings.model import Kind
from readings.units import canonical_unit, parse_unit


class RuleFileError(ValueError):
    """A rule file cannot be used; the message names the file, the rule and the key."""


KINDS: Final[frozenset[str]] = frozenset(
    {
        "threshold",
        "window_mean",
        "weight_change",
        "moving_average_rise",
        "forecast_ar2",
        "cgm_summary",
        "stale",
        "missing",
        "gateway_offline",
        "plausibility",
        "clinic_outage",
        "symptom",
    }
)
"""The rule kinds the engine knows (``alerts.rules.engine``)."""

_PARAMS: Final[Mapping[str, Mapping[str, str]]] = {
    "window_mean": {
        "window": "duration",
        "min_readings": "int",
        "drop_first_day": "bool",
        "retest_within": "duration",
    },
    "weight_change": {"tolerance": "duration"},
    "moving_average_rise": {"days": "int", "min_days": "int", "rise_above": "above:kg"},
    "forecast_ar2": {
        "below": "below:mmol/L",
        "horizon": "duration",
        "max_age": "duration",
        "min_loss": "number",
    },
    "cgm_summary": {
        "days": "int",
        "min_wear_percent": "number",
        "tbr_below_3_9_max_percent": "number",
        "tbr_below_3_0_max_percent": "number",
        "tir_min_percent": "number",
    },
    "stale": {"active_within": "duration"},
    "gateway_offline": {"after": "duration"},
    "clinic_outage": {"heartbeat_grace": "duration", "recovery_grace": "duration"},
    "symptom": {"symptoms": "symptoms"},
}
"""Each kind's ``params``: name → type (``OP:U`` is a per-unit threshold map of unit U,
compared with OP; ``symptoms`` a list of codes of :data:`alerts.symptoms.SYMPTOMS`)."""

_NEEDS_SEVERITY: Final = KINDS - {"threshold", "plausibility"}
_RULE_KEYS: Final = frozenset(
    {
        "id",
        "version",
        "title",
        "kind",
        "metric",
        "kinds",
        "late_after",
        "severity",
        "source",
        "applies_to",
        "replaces",
        "exclude_flags",
        "tiers",
        "conditions",
        "params",
        "levels",
        "groups",
        "changes",
        "profiles",
    }
)
_ID_RE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
_DURATION_RE: Final = re.compile(r"^(\d+(?:\.\d+)?)(s|min|h|d)$")
_DURATION_UNITS: Final = {"s": 1, "min": 60, "h": 3600, "d": 86400}
_OPS: Final = frozenset(op.value for op in Op)


def parse_duration(text: object) -> timedelta:
    """``"30s"``, ``"15min"``, ``"2h"``, ``"3d"`` as a timedelta (ValueError otherwise)."""
    match = _DURATION_RE.match(str(text)) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a duration like 30s, 15min, 2h or 3d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def default_rules() -> RuleSet:
    """The packaged default rule set (``alerts/rules/default.yaml``)."""
    source = resources.files("alerts.rules").joinpath("default.yaml")
    return parse_rules(source.read_text(encoding="utf-8"), "default.yaml")


def load_rules(path: Path) -> RuleSet:
    """The rules of a YAML file, validated.

    Raises:
        RuleFileError: naming the file, the rule and the key at fault.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, origin: str) -> RuleSet:
    """Rules from YAML text; ``origin`` names the file in errors."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{origin}: not YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleFileError(f"{origin}: expected a mapping with a list 'rules'")
    if document.get("format", 1) != 1:
        raise RuleFileError(f"{origin}: format: only format 1 is known")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["rules"]):
        rule_id = entry.get("id") if isinstance(entry, dict) else None
        where = (
            f"{origin}: rule {rule_id}" if isinstance(rule_id, str) else f"{origin}: rules[{index}]"
        )
        rule = _Parser(where).rule(entry)
        if rule.id in seen:
            raise RuleFileError(f"{where}: id: defined twice")
        seen.add(rule.id)
        rules.append(rule)
    for rule in rules:
        if rule.replaces is not None and rule.replaces not in seen:
            raise RuleFileError(
                f"{origin}: rule {rule.id}: replaces: no rule {rule.replaces!r} in the file"
            )
    return RuleSet(tuple(rules), origin)


class _Parser:
    """Builds one rule; ``where`` prefixes every error."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str) -> RuleFileError:
        return RuleFileError(f"{self.where}: {key}: {problem}")

    def rule(self, entry: object, base: Mapping[str, Any] | None = None) -> Rule:
        if not isinstance(entry, dict):
            raise RuleFileError(f"{self.where}: expected a mapping")
        unknown = sorted(str(k) for k in entry if k not in _RULE_KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (known: {', '.join(sorted(_RULE_KEYS))})")
        raw = {**(base or {}), **entry}
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _ID_RE.match(rule_id):
            raise self.fail("id", "required: upper-case letters and digits, e.g. G1")
        version = raw.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail("version", "required: a whole number ≥ 1")
        kind = raw.get("kind")
        if kind not in KINDS:
            raise self.fail("kind", f"{kind!r} is not one of {', '.join(sorted(KINDS))}")
        for key in ("title", "source"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise self.fail(key, "required: text")
        metric = self.enum(Metric, raw.get("metric"), "metric")
        severity = (
            None
            if raw.get("severity") is None
            else self.enum(Severity, raw["severity"], "severity")
        )
        if severity is None and kind in _NEEDS_SEVERITY:
            raise self.fail("severity", f"required for kind {kind}")
        late_after = self.duration(raw.get("late_after"), "late_after")
        kinds = frozenset(
            self.enum(Kind, k, f"kinds[{i}]") for i, k in enumerate(self.list(raw, "kinds"))
        )
        applies_to = frozenset(self.list(raw, "applies_to"))
        unknown_conditions = sorted(applies_to - CONDITION_NAMES)
        if unknown_conditions:
            raise self.fail("applies_to", f"unknown condition {unknown_conditions[0]!r}")
        replaces = raw.get("replaces")
        if replaces is not None and not isinstance(replaces, str):
            raise self.fail("replaces", "expected a rule id")
        tiers = tuple(self.tier(t, f"tiers[{i}]") for i, t in enumerate(self.list(raw, "tiers")))
        if kind == "threshold" and not tiers:
            raise self.fail("tiers", "a threshold rule needs at least one tier")
        conditions = tuple(
            self.condition(c, f"conditions[{i}]")
            for i, c in enumerate(self.list(raw, "conditions"))
        )
        if kind == "window_mean" and not conditions:
            raise self.fail("conditions", "a window_mean rule needs conditions")
        rule = Rule(
            id=rule_id,
            version=version,
            title=raw["title"],
            kind=kind,
            metric=metric,
            source=raw["source"],
            late_after=late_after,
            severity=severity,
            kinds=kinds,
            applies_to=applies_to,
            replaces=replaces,
            exclude_flags=frozenset(self.list(raw, "exclude_flags")),
            tiers=tiers,
            conditions=conditions,
            levels=tuple(
                self.level(v, f"levels[{i}]") for i, v in enumerate(self.list(raw, "levels"))
            ),
            groups=tuple(
                self.group(g, f"groups[{i}]") for i, g in enumerate(self.list(raw, "groups"))
            ),
            changes=tuple(
                self.change(c, f"changes[{i}]") for i, c in enumerate(self.list(raw, "changes"))
            ),
            params=self.params(kind, raw.get("params") or {}),
        )
        if kind == "stale" and not rule.levels:
            raise self.fail("levels", "a stale rule needs levels")
        if kind == "missing" and not rule.groups:
            raise self.fail("groups", "a missing rule needs groups")
        if kind == "weight_change" and not rule.changes:
            raise self.fail("changes", "a weight_change rule needs changes")
        profiles = raw.get("profiles") or {}
        if base is None and profiles:
            if not isinstance(profiles, dict):
                raise self.fail("profiles", "expected a mapping of condition → rule keys")
            variants: dict[str, Rule] = {}
            for condition, overlay in profiles.items():
                if condition not in CONDITION_NAMES:
                    raise self.fail(f"profiles.{condition}", "not a condition of the care model")
                sub = _Parser(f"{self.where}: profiles.{condition}")
                base_raw = {k: v for k, v in entry.items() if k != "profiles"}
                variants[condition] = sub.rule(overlay, base=base_raw)
            rule = _replace_profiles(rule, variants)
        return rule

    def list(self, raw: Mapping[str, Any], key: str) -> list[Any]:
        value = raw.get(key) or []
        if not isinstance(value, list):
            raise self.fail(key, "expected a list")
        return value

    def enum(self, cls: Any, value: object, key: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(member.value for member in cls)
            raise self.fail(key, f"{value!r} is not one of {known}") from None

    def duration(self, value: object, key: str) -> timedelta:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}")
        return float(value)

    def units(self, value: object, key: str, canonical: str) -> dict[str, float]:
        if not isinstance(value, dict) or not value:
            raise self.fail(key, "expected a mapping of unit → threshold, e.g. {mmol/L: 3.0}")
        result: dict[str, float] = {}
        for unit, number in value.items():
            try:
                parsed = parse_unit(str(unit))
            except ValueError:
                raise self.fail(key, f"unknown unit {unit!r}") from None
            if canonical_unit(parsed).value != canonical:
                raise self.fail(key, f"unit {unit!r} does not measure what {canonical} does")
            result[parsed.value] = self.number(number, f"{key}.{unit}")
        if canonical not in result:
            raise self.fail(key, f"needs the canonical unit {canonical}")
        return result

    def bound(self, op: str, value: object, key: str, canonical: str) -> Bound:
        return Bound(Op(op), self.units(value, key, canonical), parse_unit(canonical))

    def condition(self, entry: object, key: str) -> Condition:
        if not isinstance(entry, dict):
            raise self.fail(key, "expected a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail(f"{key}.name", "required")
        fields_raw = entry.get("field")
        fields = (fields_raw,) if isinstance(fields_raw, str) else tuple(fields_raw or ())
        if not fields or any(f not in FIELD_UNITS for f in fields):
            raise self.fail(f"{key}.field", f"expected one of {', '.join(sorted(FIELD_UNITS))}")
        canonical = FIELD_UNITS[fields[0]].value
        unknown = sorted(str(k) for k in entry if k not in {"name", "field", *_OPS})
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", "unknown key")
        bounds = tuple(
            self.bound(op, entry[op], f"{key}.{op}", canonical) for op in Op if op.value in entry
        )
        if not bounds:
            raise self.fail(key, f"needs one of {', '.join(sorted(_OPS))}")
        return Condition(name, fields, bounds)

    def tier(self, entry: object, key: str) -> Tier:
        if not isinstance(entry, dict):
            raise self.fail(key, "expected a mapping")
        severity = self.enum(Severity, entry.get("severity"), f"{key}.severity")
        conditions = tuple(
            self.condition(c, f"{key}.conditions[{i}]")
            for i, c in enumerate(entry.get("conditions") or [])
        )
        if not conditions:
            raise self.fail(f"{key}.conditions", "required")
        flag = entry.get("flag")
        return Tier(severity, conditions, self.confirmation(entry.get("confirmation"), key), flag)

    def confirmation(self, entry: object, key: str) -> Confirmation:
        key = f"{key}.confirmation"
        if not isinstance(entry, dict):
            raise self.fail(key, "required: a mapping")
        known = {"count", "span", "within", "cgm_span", "deadline", "retest_within", "combine"}
        unknown = sorted(str(k) for k in entry if k not in known)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", "unknown key")
        count = entry.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise self.fail(f"{key}.count", "expected a whole number ≥ 1")
        combine = entry.get("combine", "run")
        if combine not in {"run", "mean"}:
            raise self.fail(f"{key}.combine", "expected run or mean")

        def optional(name: str) -> timedelta | None:
            value = entry.get(name)
            return None if value is None else self.duration(value, f"{key}.{name}")

        return Confirmation(
            count=count,
            span=optional("span") or timedelta(0),
            within=optional("within") or timedelta(days=1),
            cgm_span=optional("cgm_span"),
            deadline=optional("deadline"),
            retest_within=optional("retest_within"),
            combine=combine,
        )

    def level(self, entry: object, key: str) -> Level:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise self.fail(key, "expected {name, after}")
        return Level(entry["name"], self.duration(entry.get("after"), f"{key}.after"))

    def group(self, entry: object, key: str) -> MissingGroup:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise self.fail(key, "expected {name, kinds, conditions, after}")
        kinds = frozenset(
            self.enum(Kind, k, f"{key}.kinds[{i}]") for i, k in enumerate(entry.get("kinds") or [])
        )
        conditions = frozenset(entry.get("conditions") or [])
        if not kinds or not conditions or conditions - CONDITION_NAMES:
            raise self.fail(f"{key}.conditions", "needs kinds and known care-model conditions")
        return MissingGroup(
            entry["name"], kinds, conditions, self.duration(entry.get("after"), f"{key}.after")
        )

    def change(self, entry: object, key: str) -> Change:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise self.fail(key, "expected {name, over, above}")
        return Change(
            entry["name"],
            self.duration(entry.get("over"), f"{key}.over"),
            self.bound("above", entry.get("above"), f"{key}.above", "kg"),
        )

    def symptoms(self, value: object, key: str) -> frozenset[str]:
        known = _symptom_codes()
        if not isinstance(value, list) or not value:
            raise self.fail(key, "expected a list of symptom codes")
        for code in value:
            if code not in known:
                raise self.fail(
                    key, f"unknown symptom {code!r} (known: {', '.join(sorted(known))})"
                )
        return frozenset(value)

    def params(self, kind: str, raw: object) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail("params", "expected a mapping")
        spec = _PARAMS.get(kind, {})
        unknown = sorted(str(k) for k in raw if k not in spec)
        if unknown:
            raise self.fail(f"params.{unknown[0]}", f"unknown for kind {kind}")
        missing = sorted(k for k in spec if k not in raw)
        if missing:
            raise self.fail(f"params.{missing[0]}", "required")
        result: dict[str, Any] = {}
        for name, type_ in spec.items():
            value, key = raw[name], f"params.{name}"
            if type_ == "duration":
                result[name] = self.duration(value, key)
            elif type_ == "int":
                result[name] = int(self.number(value, key))
            elif type_ == "bool":
                if not isinstance(value, bool):
                    raise self.fail(key, "expected true or false")
                result[name] = value
            elif type_ == "number":
                result[name] = self.number(value, key)
            elif type_ == "symptoms":
                result[name] = self.symptoms(value, key)
            else:
                op, canonical = type_.split(":", 1)
                result[name] = self.bound(op, value, key, canonical)
        return result


def _symptom_codes() -> frozenset[str]:
    # Imported here: alerts.symptoms imports the rule model this module builds.
    from alerts.symptoms import SYMPTOMS

    return frozenset(SYMPTOMS)


def _replace_profiles(rule: Rule, profiles: dict[str, Rule]) -> Rule:
    return replace(rule, profiles=profiles)
