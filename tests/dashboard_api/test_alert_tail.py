"""The alert tail: each recorded alert event reaches the hub once, including one whose
transaction committed after a later id's (PostgreSQL sequences do not commit in order)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from dashboard_api.alert_tail import SETTLE_SECONDS, AlertTail
from dashboard_api.live import LiveAlert, LiveHub
from registry.alert_models import AlertEvent
from registry.alerts_repo import AlertRepository
from registry.db import session_scope
from tests.dashboard_api.conftest import Deployment


class Seconds:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record_low(deployment: Deployment) -> int:
    now = deployment.clock()
    finding = Finding(
        "p-wang", "G1", 1, Metric.GLUCOSE, Severity.P1, FindingStatus.FIRING, now,
        ("r-tail-1",), {"below mmol/L": 3.0}, Explanation("glucose.low"),
    )  # fmt: skip
    with session_scope(deployment.registry) as s:
        [alert_id] = AlertRepository(s).record(decide("p-wang", [finding], [], now=now))
    return alert_id


def _event(deployment: Deployment, alert_id: int, kind: str, *, event_id: int) -> int:
    with session_scope(deployment.registry) as s:
        row = AlertEvent(
            alert_id=alert_id,
            at=deployment.clock() + timedelta(seconds=1),
            kind=kind,
            from_state="firing",
            to_state="firing",
            actor="system",
            reason="",
        )
        row.id = event_id
        s.add(row)
        s.flush()
        return row.id


async def test_every_event_is_announced_once_even_when_a_lower_id_commits_late(
    deployment: Deployment,
) -> None:
    hub = LiveHub()
    subscription = hub.subscribe()
    seconds = Seconds()
    tail = AlertTail(deployment.registry, hub, monotonic=seconds)
    before = _record_low(deployment)
    tail.begin()  # history is the inbox's own query: nothing before the start is announced
    assert tail.poll_once() == 0

    alert_id = before
    # Ids given by hand: as a sequence would hand them out, whatever the backend.
    with session_scope(deployment.registry, write=False) as s:
        newest = max(e.id for e in s.query(AlertEvent).all())
    first = _event(deployment, alert_id, "seen", event_id=newest + 1)
    third = _event(deployment, alert_id, "seen", event_id=first + 2)
    assert tail.poll_once() == 2
    # The transaction that took the id in between commits only now.
    late = _event(deployment, alert_id, "seen", event_id=first + 1)
    assert tail.poll_once() == 1
    seconds.now += SETTLE_SECONDS + 1
    assert tail.poll_once() == 0  # settled: nothing announced twice
    fourth = _event(deployment, alert_id, "seen", event_id=first + 3)
    assert tail.poll_once() == 1

    await asyncio.sleep(0.1)  # the hub hands events over through the loop
    announced = []
    while not subscription.queue.empty():
        event = subscription.queue.get_nowait()
        assert isinstance(event, LiveAlert)
        announced.append(event.event_id)
    assert announced == [first, third, late, fourth]
