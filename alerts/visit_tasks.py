"""From an alert to a visit task: which rules ask a nurse to act, how, and by when.

A pure function of the alert's rule, tier and firing time; the lifecycle sink calls it
through its ``on_fired`` hook (:mod:`alerts.pipeline`) and the repository opens the task in
the same transaction as the alert (:func:`registry.visit_alerts.open_task_for_alert`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alerts.model import Severity
from registry.visit_models import VisitKind

B2_VISIT_WITHIN: Final = timedelta(days=14)
"""B2 (7-day home BP mean above target, P3): a home visit within two weeks — P3 is "follow-up
within two weeks" in the default rule table, and the visit checks cuff technique and
adherence at home (issue 12)."""

H1_CALL_WITHIN: Final = timedelta(hours=24)
"""H1 (heart-failure weight gain, P2): a phone call within 24 h — ESC 2021 HF guideline:
>2 kg in 3 days warrants contact before decompensation; the call checks symptoms and
diuretic use."""

S2_CALL_WITHIN: Final = timedelta(days=2)
"""S2 (no readings for 3 days, P4): a call within two days — not urgent in itself (a flat
battery, a trip), but silence from a monitored patient should not last a week."""

SAME_DAY: Final = timedelta(hours=8)
"""Other P1/P2 alerts: a phone call the same working day (P2 is "urgent same day" in the
default rule table); the doctor's own response to a P1 runs through escalation, the call
checks on the patient afterwards."""

_PRIORITY: Final = {Severity.P1: 1, Severity.P2: 2, Severity.P3: 3, Severity.P4: 3}


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    """A visit task an alert asks for."""

    reason_key: str
    """``rule:<id>``: one open task per patient and rule, however often the rule fires."""
    kind: VisitKind
    priority: int
    earliest: datetime
    latest: datetime


def reason_key_for_rule(rule_id: str) -> str:
    """The reason key of tasks opened for ``rule_id`` (by the rule or by a doctor)."""
    return f"rule:{rule_id}"


def template_for(rule_id: str, severity: Severity, fired_at: datetime) -> TaskTemplate | None:
    """The task an alert of ``rule_id`` at ``severity`` fired at ``fired_at`` asks for.

    ``None`` for rules a nurse need not act on by herself: P3/P4 findings other than B2 and
    S2 (the doctor reviews them) and SYS (device and data problems go to IT).
    """
    key = reason_key_for_rule(rule_id)
    if rule_id == "B2":
        return TaskTemplate(key, VisitKind.HOME_VISIT, 3, fired_at, fired_at + B2_VISIT_WITHIN)
    if rule_id == "H1":
        return TaskTemplate(key, VisitKind.PHONE, 2, fired_at, fired_at + H1_CALL_WITHIN)
    if rule_id == "S2":
        return TaskTemplate(key, VisitKind.PHONE, 3, fired_at, fired_at + S2_CALL_WITHIN)
    if severity in (Severity.P1, Severity.P2):
        return TaskTemplate(
            key, VisitKind.PHONE, _PRIORITY[severity], fired_at, fired_at + SAME_DAY
        )
    return None
