"""An alert's explanation in words: its key and parameters rendered in zh-CN and en.

The rules record an :class:`alerts.model.Explanation` (a message key such as
``alert.threshold.firing`` and parameters such as ``events_7d``) plus the thresholds in force.
This module renders them with the web app's own catalogues
(``dashboard_api/static/i18n/{zh-CN,en}.json``, entries ``explain.<key>``), so the page, the
API and a test share one set of sentences: "7 天内 3 次血糖 < 3.9 mmol/L" /
"3 readings of glucose < 3.9 mmol/L in 7 days".

Two derived parameters are filled in here, never stored:

* ``metric`` — the metric in words (``explain.metric.<metric>``);
* ``symptom`` — a reported symptom's code in words (``symptom.<code>``: "胸闷");
* ``limit`` — the rule's condition with the threshold *in force* (per-patient overrides
  included, taken from the alert's recorded thresholds), in the rule's first listed unit:
  ``< 3.9 mmol/L``, ``≥ 180 mmHg / ≥ 110 mmHg``. Numbers and units read the same in both
  languages, so the limit is language-neutral.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Final

from alerts.rules.loader import default_rules
from alerts.rules.model import Condition, Op, Rule

LANGUAGES: Final = ("zh-CN", "en")
PREFIX: Final = "explain."
_OP_SYMBOL: Final = {Op.BELOW: "<", Op.AT_OR_BELOW: "≤", Op.ABOVE: ">", Op.AT_OR_ABOVE: "≥"}
_UNIT_TEXT: Final = {"mm[Hg]": "mmHg"}
"""UCUM codes shown as people write them."""
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")

Params = Mapping[str, str | int | float]


@cache
def catalogue(language: str) -> dict[str, str]:
    """The web app's message catalogue of ``language`` (read once)."""
    source = resources.files("dashboard_api").joinpath("static", "i18n", f"{language}.json")
    loaded: dict[str, str] = json.loads(source.read_text(encoding="utf-8"))
    return loaded


_ONE_DECIMAL_UNITS: Final = frozenset({"mmol/L", "kPa", "kg", "Cel"})
"""Units shown with one decimal (mmol/L by default, issue 11 §5); others as given."""


def _number(value: float, unit: str) -> str:
    return f"{value:.1f}" if unit in _ONE_DECIMAL_UNITS else f"{value:g}"


def _condition_text(condition: Condition, thresholds: Mapping[str, float]) -> str:
    parts = []
    unit = ""
    for bound in condition.bounds:
        unit = next(iter(bound.by_unit))
        stem = condition.name if len(condition.bounds) == 1 else f"{condition.name}.{bound.op}"
        value = thresholds.get(f"{stem} {unit}", bound.by_unit[unit])
        parts.append(f"{_OP_SYMBOL[bound.op]} {_number(value, unit)}")
    return f"{', '.join(parts)} {_UNIT_TEXT.get(unit, unit)}"


def _conditions(rule: Rule, severity: object) -> tuple[Condition, ...]:
    if rule.tiers:
        chosen = [t for t in rule.tiers if t.severity.value == severity] or list(rule.tiers[:1])
        return tuple(c for t in chosen for c in t.conditions)
    return rule.conditions


def limit_text(rule_id: str, severity: object, thresholds: Mapping[str, float]) -> str:
    """The rule's condition with the thresholds in force, e.g. ``< 3.9 mmol/L``; empty for a
    rule without value conditions (stale data, symptoms) or a rule id not in the defaults."""
    try:
        rule = default_rules().get(rule_id)
    except KeyError:
        return ""
    return " / ".join(_condition_text(c, thresholds) for c in _conditions(rule, severity))


def render(language: str, key: str, params: Params) -> str:
    """The sentence for ``key`` in ``language`` with ``{name}`` placeholders filled.

    A key missing from the catalogue shows as ``⟦key⟧`` (as the page's ``t()`` does), so a
    gap is visible rather than silent.
    """
    messages = catalogue(language)
    template = messages.get(PREFIX + key)
    if template is None:
        return f"⟦{PREFIX}{key}⟧"
    return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)


def explain(
    key: str,
    params: Params,
    *,
    rule_id: str,
    metric: str,
    severity: str,
    thresholds: Mapping[str, float],
) -> dict[str, str]:
    """The explanation in every language, keyed by language code."""
    limit = limit_text(rule_id, severity, thresholds)
    out: dict[str, str] = {}
    for language in LANGUAGES:
        words = catalogue(language)
        metric_word = words.get(f"{PREFIX}metric.{metric}", metric)
        derived: dict[str, str | int | float] = {"metric": metric_word, "limit": limit}
        if "symptom" in params:
            derived["symptom"] = words.get(f"symptom.{params['symptom']}", str(params["symptom"]))
        out[language] = render(language, key, {"rule": rule_id, **params, **derived})
    return out
