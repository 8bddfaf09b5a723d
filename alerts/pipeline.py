"""Findings into alerts: the sink the evaluator hands each patient's findings to.

One registry transaction per patient evaluation: the patient's open alerts, silences and
monitoring status are read, :func:`alerts.lifecycle.decide` chooses the transitions, and
the repository records them — alert rows, append-only events, audit links, escalation
steps — before the evaluator acknowledges the message. A crash in between leaves the
message unacknowledged; its redelivery decides again from what was recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.lifecycle import (
    Decision,
    Transition,
    TransitionKind,
    decide,
    outage_suppression,
)
from alerts.model import Finding, FindingStatus
from alerts.notify.base import Message, Receipt
from registry.alerts_repo import AlertRepository
from registry.db import session_scope

OnFired = Callable[[Session, int, Transition], None]
"""Called for each alert that fired, in the transaction that recorded it, with its id: a
hook for work that must not be lost between the alert and what follows it (a visit task,
:func:`registry.visit_alerts.visit_task_hook`). An exception rolls the whole evaluation back."""


class LifecycleSink:
    """``FindingSink`` of the evaluator: decide and record, one transaction per patient."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime],
        on_fired: OnFired | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._on_fired = on_fired
        self.recorded = 0
        """Transitions recorded (a metric, and for tests)."""

    def __call__(self, patient_id: str, findings: Sequence[Finding]) -> None:
        now = self._clock()
        if all(f.status is FindingStatus.CLEAR for f in findings):
            # The common case, readings in range: "all clear" only resolves open alerts, so
            # with none open there is nothing to decide — one read instead of a write
            # transaction per evaluation (a quarter of the worker's time at 1,000 readings/s).
            with session_scope(self._engine, write=False) as session:
                if not AlertRepository(session).open_alerts(patient_id):
                    return
        with session_scope(self._engine) as session:
            repo = AlertRepository(session)
            decision = decide(
                patient_id,
                findings,
                repo.open_alerts(patient_id),
                silences=repo.silences(patient_id, now),
                status=repo.monitoring_status(patient_id, now),
                now=now,
            )
            if decision.transitions:
                touched = repo.record(decision)
                self.recorded += len(decision.transitions)
                if self._on_fired is not None:
                    # record() returns one id per transition it applied (suppressions have none).
                    applied = [
                        t for t in decision.transitions if t.kind is not TransitionKind.SUPPRESS
                    ]
                    for transition, alert_id in zip(applied, touched, strict=True):
                        if transition.kind is TransitionKind.FIRE:
                            self._on_fired(session, alert_id, transition)

    def suppress(self, patient_id: str, held: Sequence[tuple[Finding, datetime]]) -> None:
        """Record findings held back by a clinic-side outage (finding, outage start)."""
        now = self._clock()
        transitions = tuple(
            outage_suppression(finding, outage_start=start, now=now) for finding, start in held
        )
        if not transitions:
            return
        with session_scope(self._engine) as session:
            AlertRepository(session).record(Decision(patient_id, transitions))
            self.recorded += len(transitions)


class FileNotifier:
    """Writes each message as a JSON line to a file (the demo, and sites testing a route).

    Like the API's file SMS sender: a stand-in for a channel (SMS, voice, WeChat) whose
    gateway the deployment has not configured yet. The file holds what would be sent, so
    it is health data: it is created with mode 0600.
    """

    def __init__(self, channel: str, path: Path) -> None:
        self.channel = channel
        self._path = path

    def send(self, message: Message) -> Receipt:
        line = json.dumps(
            {
                "channel": self.channel,
                "key": message.idempotency_key,
                "recipient": message.recipient,
                "address": message.address,
                "subject": message.subject,
                "body": message.body,
                "alert_id": message.alert_id,
            },
            ensure_ascii=False,
        )
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")
        return Receipt(self.channel, message.idempotency_key)
