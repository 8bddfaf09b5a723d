"""Pure decisions of nurse visits: which status may follow which, and what the national
basic public-health service (国家基本公共卫生服务规范, 第三版 2017: 高血压/2型糖尿病患者
健康管理) asks for after a follow-up.

Nothing here reads a database or a clock; the repository (:mod:`registry.visits`) feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from registry.visit_models import VisitKind, VisitStatus

TRANSITIONS: Final[dict[VisitStatus, frozenset[VisitStatus]]] = {
    VisitStatus.REQUESTED: frozenset({VisitStatus.SCHEDULED, VisitStatus.CANCELLED}),
    # scheduled → scheduled is a reschedule (a new time, with its reason in the history).
    VisitStatus.SCHEDULED: frozenset(
        {
            VisitStatus.SCHEDULED,
            VisitStatus.COMPLETED,
            VisitStatus.CANCELLED,
            VisitStatus.MISSED,
        }
    ),
    VisitStatus.COMPLETED: frozenset(),
    VisitStatus.CANCELLED: frozenset(),
    VisitStatus.MISSED: frozenset(),
}
"""requested → scheduled → completed | cancelled | missed; closed tasks stay closed (a new
visit is a new task, so the history of the old one is never rewritten)."""


def may_move(current: VisitStatus, target: VisitStatus) -> bool:
    """Whether a task in ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


class Programme(StrEnum):
    """The 基本公卫 chronic-disease programmes whose follow-up rules are modelled."""

    HYPERTENSION = "hypertension"
    DIABETES_TYPE2 = "diabetes_type2"


class FollowUpClass(StrEnum):
    """The follow-up classification (随访分类) the nurse records."""

    CONTROLLED = "controlled"
    """控制满意: blood pressure or glucose at target, no adverse reaction, no new complication."""
    NOT_CONTROLLED = "not_controlled"
    """控制不满意 (or adverse drug reaction, new complication): adjust and see again soon."""


CONTROLLED_INTERVAL: Final = timedelta(days=91)
"""Controlled → next follow-up "in 3 months" (规范: 每年至少4次面对面随访, quarterly)."""

CONTROLLED_LEAD: Final = timedelta(days=14)
"""The due window opens two weeks before the three months are up, so a day route can fit it."""

NOT_CONTROLLED_WITHIN: Final = timedelta(days=14)
"""Not controlled → "随访 again within 2 weeks" (规范: 2周内随访)."""

REFERRAL_FOLLOW_UP_WITHIN: Final = timedelta(days=14)
"""Not controlled twice in a row → refer, and "2周内主动随访转诊情况" (follow the referral up
within two weeks)."""


@dataclass(frozen=True, slots=True)
class NextFollowUp:
    """The task a completed follow-up asks for."""

    reason_key: str
    kind: VisitKind
    priority: int
    earliest: datetime
    latest: datetime
    referral: bool
    """True when the patient is to be referred (two uncontrolled follow-ups in a row)."""


def next_follow_up(
    programme: Programme,
    classification: FollowUpClass,
    *,
    previous: FollowUpClass | None,
    kind: VisitKind,
    at: datetime,
) -> NextFollowUp:
    """What follows a 基本公卫 follow-up classified ``classification`` at ``at``.

    Args:
        programme: hypertension or type 2 diabetes.
        classification: this follow-up's classification.
        previous: the classification of the patient's previous follow-up in the same
            programme (``None`` if this is the first).
        kind: how this follow-up was made; the next routine one is made the same way.
        at: when this follow-up ended (the check-out time).
    """
    if classification is FollowUpClass.CONTROLLED:
        due = at + CONTROLLED_INTERVAL
        return NextFollowUp(
            reason_key=f"routine:{programme.value}",
            kind=kind,
            priority=3,
            earliest=due - CONTROLLED_LEAD,
            latest=due,
            referral=False,
        )
    if previous is FollowUpClass.NOT_CONTROLLED:
        return NextFollowUp(
            reason_key=f"referral:{programme.value}",
            kind=VisitKind.PHONE,
            priority=1,
            earliest=at,
            latest=at + REFERRAL_FOLLOW_UP_WITHIN,
            referral=True,
        )
    return NextFollowUp(
        reason_key=f"routine:{programme.value}",
        kind=kind,
        priority=2,
        earliest=at,
        latest=at + NOT_CONTROLLED_WITHIN,
        referral=False,
    )
