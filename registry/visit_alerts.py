"""The alert side of visit tasks: the lifecycle sink's ``on_fired`` hook opens the task a
fired alert asks for (:mod:`alerts.visit_tasks`), in the transaction that recorded the alert.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from alerts.lifecycle import Transition
from alerts.visit_tasks import template_for
from registry.clock import Clock, utc_now
from registry.visits import Opened, Reason, VisitRepository

ENGINE_ACTOR = "engine"
"""Who opened a task that an alert rule asked for (the alert events use the same name)."""


def open_task_for_alert(
    session: Session, alert_id: int, transition: Transition, *, clock: Clock = utc_now
) -> Opened | None:
    """Open the task the fired alert ``alert_id`` asks for (see :mod:`alerts.visit_tasks`).

    ``None`` when its rule asks for none. A second firing of the same rule while a task is
    open returns that task (``created`` False): one open task per patient + rule.
    """
    template = template_for(transition.rule_id, transition.severity, transition.at)
    if template is None:
        return None
    return VisitRepository(session, clock=clock).open(
        transition.patient_id,
        Reason.alert(alert_id, transition.rule_id),
        kind=template.kind,
        priority=template.priority,
        earliest=template.earliest,
        latest=template.latest,
        actor=ENGINE_ACTOR,
    )


def visit_task_hook(clock: Clock = utc_now) -> Callable[[Session, int, Transition], None]:
    """The :class:`alerts.pipeline.LifecycleSink` ``on_fired`` hook that opens visit tasks."""

    def on_fired(session: Session, alert_id: int, transition: Transition) -> None:
        open_task_for_alert(session, alert_id, transition, clock=clock)

    return on_fired
