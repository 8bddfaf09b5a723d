"""The alert worker's parts, wired once: `vitalgate alerts run` and the demo use the same.

An evaluator over the registry and the reading store (S3 from the fleet tables, S1–S3 held
back during the clinic's own downtime with one SYS1 incident instead, visit tasks opened in
the transaction that fires their alert), the escalation worker and the visit-reminder
worker, all sending through one set of notifiers. Only the process around them differs: the
command adds metrics and signals; the demo runs them on threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts.escalation import EscalationWorker
from alerts.evaluator import (
    DEFAULT_LEASE_TTL,
    Evaluator,
    RegistryGatewayLastSeen,
    RegistryPatientDirectory,
)
from alerts.incidents import IncidentDelivery, OutageMonitor
from alerts.notify.base import Notifier
from alerts.pipeline import LifecycleSink
from alerts.recipients import registry_message_prefs, registry_recipients
from alerts.rules.engine import evaluate
from alerts.rules.model import RuleSet
from alerts.summary_adapter import cgm_summary_for_rules
from alerts.visit_reminders import VisitReminderWorker
from ingest.stores.base import ReadingStore
from readings.topics import DEFAULT_PARTITIONS
from registry.visit_alerts import visit_task_hook


@dataclass(frozen=True, slots=True)
class AlertWorkerParts:
    """What one alert worker process runs."""

    evaluator: Evaluator
    sink: LifecycleSink
    escalation: EscalationWorker
    visit_reminders: VisitReminderWorker


def assemble_worker(
    engine: Engine,
    store: ReadingStore,
    *,
    rules: RuleSet,
    notifiers: Mapping[str, Notifier],
    holder: str,
    clock: Callable[[], datetime],
    partitions: int = DEFAULT_PARTITIONS,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
) -> AlertWorkerParts:
    """The evaluator, escalation and visit-reminder workers of one process."""
    sink = LifecycleSink(engine, clock=clock, on_fired=visit_task_hook(clock))
    directory = RegistryPatientDirectory(engine)
    evaluator = Evaluator(
        engine=engine,
        store=store,
        directory=directory,
        rules=rules,
        evaluate=evaluate,
        sink=sink,
        clock=clock,
        holder=holder,
        partitions=partitions,
        lease_ttl=lease_ttl,
        summary=cgm_summary_for_rules,
        gateway_last_seen=RegistryGatewayLastSeen(engine),
        # S1/S2 expect a kind from the pairing of a device producing it (same 30-s cache).
        monitoring_since=directory.monitoring_since,
        # IT operators and administrators hear of each outage (not the doctors).
        outage=OutageMonitor.for_rules(
            engine, rules, clock=clock, delivery=IncidentDelivery(engine, notifiers)
        ),
        on_suppressed=sink.suppress,
    )
    # The patients' notification preferences steer their P3/P4 messages (channel, quiet hours).
    escalation = EscalationWorker(
        engine,
        notifiers=notifiers,
        recipients=registry_recipients,
        clock=clock,
        worker_id=holder,
        message_prefs=registry_message_prefs,
    )
    # Visit reminders (the nurse's inbox, the patient's SMS) go through the same notifiers.
    visit_reminders = VisitReminderWorker(
        engine, notifiers=notifiers, clock=clock, worker_id=holder
    )
    return AlertWorkerParts(evaluator, sink, escalation, visit_reminders)
