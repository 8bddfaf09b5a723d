"""Symptoms a patient reports from the portal, and the finding a report becomes.

A report is not a measurement, so no rule evaluates readings for it: the ``symptom`` rules
of the rule file (kind ``symptom``) say which symptom opens an alert at which severity, and
:func:`symptom_finding` builds the firing finding the lifecycle records, like any other —
one open alert per patient and rule, inhibition, escalation, the doctor's inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from alerts.rules.model import RuleSet

SYMPTOMS: Final[Mapping[str, Mapping[str, str]]] = {
    "dizziness": {"zh-CN": "头晕", "en": "dizziness"},
    "chest_tightness": {"zh-CN": "胸闷", "en": "chest tightness"},
    "palpitations": {"zh-CN": "心慌", "en": "palpitations"},
    "shortness_of_breath": {"zh-CN": "气短", "en": "shortness of breath"},
    "leg_swelling": {"zh-CN": "脚肿", "en": "swollen feet"},
    "other": {"zh-CN": "其他", "en": "other"},
}
"""The symptoms the portal offers, by code, in each language."""

MAX_NOTE_LENGTH: Final = 500
"""The patient's own words: a few sentences on a phone, enough for the doctor to call back."""


class UnknownSymptom(ValueError):
    """No symptom rule of the rule set covers this symptom code."""


def symptom_finding(
    rules: RuleSet,
    patient_id: str,
    symptom: str,
    *,
    at: datetime,
    report_id: int,
    note: str = "",
) -> Finding:
    """The firing finding of a symptom report (the most urgent rule that lists it).

    Raises:
        UnknownSymptom: no symptom rule lists ``symptom``.
    """
    matching = [
        rule
        for rule in rules.rules
        if rule.kind == "symptom" and symptom in rule.params.get("symptoms", ())
    ]
    if not matching:
        raise UnknownSymptom(symptom)
    rule = min(matching, key=lambda r: (Severity(r.severity or "P3").rank, r.id))
    severity = rule.severity or Severity.P3
    return Finding(
        patient_id=patient_id,
        rule_id=rule.id,
        rule_version=rule.version,
        metric=Metric.SYMPTOM,
        severity=severity,
        status=FindingStatus.FIRING,
        at=at,
        reading_ids=(),
        thresholds={},
        # The patient's words go to the doctor with the alert (the inbox shows them).
        explanation=Explanation(
            "symptom.reported_note" if note else "symptom.reported",
            {"symptom": symptom, "report_id": report_id, **({"note": note} if note else {})},
        ),
    )
