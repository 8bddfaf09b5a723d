"""APScheduler only wakes the escalation and visit-reminder workers; the registry holds every
step and every reminder.

APScheduler's own job stores would lose a one-off job killed mid-run and skip late runs by
default, so no step is ever an APScheduler job: one interval job calls
:meth:`~alerts.escalation.EscalationWorker.run_once`, which claims whatever is due in the
registry. A tick missed while the process was down changes nothing: the next tick finds the
overdue steps and runs them.
"""

from __future__ import annotations

from typing import Final

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.escalation import EscalationWorker
from alerts.visit_reminders import VisitReminderWorker

TICK_SECONDS: Final = 15.0
"""How often the worker looks for due steps: small against the shortest deadline (P1's
10 minutes to phone the family, CLINICAL table (a))."""

VISIT_REMINDER_TICK_SECONDS: Final = 60.0
"""How often the visit-reminder worker looks: reminders are set to the minute (18:00, 07:30)
and an overdue task waits on a window of days, so a minute late is never late."""


def wake_worker(
    worker: EscalationWorker,
    *,
    tick_seconds: float = TICK_SECONDS,
    visit_reminders: VisitReminderWorker | None = None,
    visit_tick_seconds: float = VISIT_REMINDER_TICK_SECONDS,
) -> BackgroundScheduler:
    """Start a background scheduler that calls ``worker.run_once`` every ``tick_seconds``
    (and ``visit_reminders.run_once`` every ``visit_tick_seconds``, in a job of its own).

    ``max_instances=1`` keeps ticks of one process from overlapping (other processes are
    kept apart by the step claims); ``coalesce`` folds ticks missed under load into one.
    """
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        worker.run_once,
        "interval",
        seconds=tick_seconds,
        max_instances=1,
        coalesce=True,
        id="escalation-tick",
    )
    if visit_reminders is not None:
        scheduler.add_job(
            visit_reminders.run_once,
            "interval",
            seconds=visit_tick_seconds,
            max_instances=1,
            coalesce=True,
            id="visit-reminder-tick",
        )
    scheduler.start()
    return scheduler
