"""The live stream over a real server: each page gets its patients' new readings, and a
revoked consent stops the flow on a stream already open."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import uvicorn

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from dashboard_api.live import SUBSCRIBER_QUEUE_EVENTS, LiveHub, Subscription
from readings.model import GlucoseValues, Reading, new_reading
from readings.units import Unit
from registry.alerts_repo import AlertRepository
from registry.care import FamilyRepository
from registry.db import session_scope
from tests.dashboard_api.conftest import GATEWAY, METER, T0, Deployment

EVENT_WAIT_SECONDS = 10.0


def reading(patient_id: str, seq: int) -> Reading:
    at = T0 + timedelta(minutes=seq)
    return new_reading(
        values=GlucoseValues(glucose=5.0 + seq / 10),
        source_unit=Unit.MMOL_PER_L,
        measured_at=at,
        received_at=at,
        device_id=METER,
        patient_id=patient_id,
        gateway_id=GATEWAY,
        seq=1000 + seq,
    )


@pytest.fixture
def server(deployment: Deployment) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    served = uvicorn.Server(uvicorn.Config(deployment.app, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(served.serve(sockets=[listener])))
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield url
    served.should_exit = True
    thread.join(timeout=10)


class Stream:
    """An open stream read in a thread; ``events`` collects ``(name, data)``."""

    def __init__(self, url: str, token: str) -> None:
        self.events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
        self.open = threading.Event()
        self._closing = False
        self._client = httpx.Client(base_url=url, timeout=None)
        self._thread = threading.Thread(target=self._read, args=(token,), daemon=True)
        self._thread.start()
        assert self.open.wait(EVENT_WAIT_SECONDS), "the stream did not open"

    def _read(self, token: str) -> None:
        try:
            self._consume(token)
        except httpx.HTTPError:
            if not self._closing:
                raise

    def _consume(self, token: str) -> None:
        with self._client.stream(
            "GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status_code == 200
            name = ""
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.open.set()
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.put((name, json.loads(line.removeprefix("data: "))))

    def named(self, wanted: str, *, wait: float, expect: int) -> list[dict[str, object]]:
        """The data of ``wanted`` events received within ``wait`` s (sooner once ``expect``)."""
        found: list[dict[str, object]] = []
        deadline = time.monotonic() + wait
        while len(found) < expect:
            try:
                name, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return found
            if name == wanted:
                found.append(data)
        return found

    def ids(self, *, wait: float, expect: int | None = None) -> list[str]:
        """Reading ids received within ``wait`` seconds (sooner once ``expect`` arrived)."""
        found: list[str] = []
        deadline = time.monotonic() + wait
        while expect is None or len(found) < expect:
            try:
                name, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return found
            if name == "reading":
                found.append(str(data["id"]))
        return found

    def close(self) -> None:
        self._closing = True
        self._client.close()
        self._thread.join(timeout=5)


def test_a_revoked_consent_stops_an_open_stream(deployment: Deployment, server: str) -> None:
    family = Stream(server, deployment.sms_login("13800000002"))
    doctor = Stream(server, deployment.login("dr.zhang"))
    other_team = Stream(server, deployment.login("dr.chen"))
    try:
        first, foreign = reading("p-wang", 1), reading("p-li", 2)
        deployment.hub.publish([first, foreign])
        assert doctor.ids(wait=EVENT_WAIT_SECONDS, expect=1) == [first.id]
        assert family.ids(wait=1.0) == [first.id]  # not p-li's
        assert other_team.ids(wait=1.0) == [foreign.id]

        with session_scope(deployment.registry) as session:
            FamilyRepository(session, clock=deployment.clock).revoke(
                "p-wang", "wang.daughter", revoked_by="wang.fang"
            )
        deployment.clock.advance(seconds=1)
        after = reading("p-wang", 3)
        deployment.hub.publish([after])
        # The doctor's stream got it, so the family's stream has had its turn too.
        assert doctor.ids(wait=EVENT_WAIT_SECONDS, expect=1) == [after.id]
        assert family.ids(wait=1.0) == []
    finally:
        for stream in (family, doctor, other_team):
            stream.close()


def _record_low(deployment: Deployment, patient_id: str) -> int:
    """An alert as the alert worker records it (its own process, same registry)."""
    now = deployment.clock()
    finding = Finding(
        patient_id, "G1", 1, Metric.GLUCOSE, Severity.P1, FindingStatus.FIRING, now,
        ("r-live-1",), {"below mmol/L": 3.0}, Explanation("glucose.low"),
    )  # fmt: skip
    with session_scope(deployment.registry) as s:
        [alert_id] = AlertRepository(s).record(decide(patient_id, [finding], [], now=now))
    return alert_id


def test_alerts_the_worker_records_reach_the_streams_of_those_who_may_read_them(
    deployment: Deployment, server: str
) -> None:
    doctor = Stream(server, deployment.login("dr.zhang"))
    other_team = Stream(server, deployment.login("dr.chen"))
    try:
        alert_id = _record_low(deployment, "p-wang")
        [event] = doctor.named("alert", wait=EVENT_WAIT_SECONDS, expect=1)
        assert {k: event[k] for k in ("alert_id", "patient_id", "rule_id", "severity")} == {
            "alert_id": alert_id,
            "patient_id": "p-wang",
            "rule_id": "G1",
            "severity": "P1",
        }
        assert "readings" not in event  # ids and state only
        assert "note" not in event
        # p-wang is not dr.chen's: her stream hears of p-li's alert, never of p-wang's.
        foreign = _record_low(deployment, "p-li")
        assert [
            e["alert_id"] for e in other_team.named("alert", wait=EVENT_WAIT_SECONDS, expect=1)
        ] == [foreign]
        # Acknowledging is a change the inbox must hear of too, once.
        with session_scope(deployment.registry) as s:
            AlertRepository(s).acknowledge(
                alert_id, actor="dr.zhang", note="已电话联系", now=deployment.clock()
            )
        changes = doctor.named("alert", wait=EVENT_WAIT_SECONDS, expect=1)
        assert [(c["alert_id"], c["state"]) for c in changes] == [(alert_id, "acknowledged")]
        assert doctor.named("alert", wait=2.0, expect=1) == []  # no repeat
    finally:
        doctor.close()
        other_team.close()


def test_opening_a_stream_needs_a_valid_token(deployment: Deployment, server: str) -> None:
    response = httpx.get(f"{server}/api/v1/stream", timeout=5)
    assert response.status_code == 401


async def test_the_hub_drops_repeats_and_tells_a_slow_page_it_lagged() -> None:
    hub = LiveHub()
    subscription: Subscription = hub.subscribe()
    same = reading("p-wang", 1)
    assert hub.publish([same, same]) == 1
    assert hub.publish([same]) == 0
    burst = [reading("p-wang", 10 + n) for n in range(SUBSCRIBER_QUEUE_EVENTS + 5)]
    hub.publish(burst)
    await asyncio.sleep(0.1)  # the hub hands events over through the loop
    assert subscription.queue.qsize() == SUBSCRIBER_QUEUE_EVENTS
    assert subscription.lagged == 6
    hub.unsubscribe(subscription)
    assert hub.subscribers == 0
