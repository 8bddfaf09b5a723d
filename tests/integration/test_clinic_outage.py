"""The clinic's own server down for two hours: one SYS incident, no S1/S2/S3 flood.

Real registry (migrated by the CLI), real reading store, the real evaluator with the shipped
rules, the lifecycle sink, the fleet listener's message handling, the ingest heartbeat and
the outage monitor — all on one injected clock that the test moves in 15-second steps, so
four simulated hours take a few seconds and no broker is needed (what ingest would store
and forward is written to the store and handed to the evaluator directly).

Timeline (T0 = 08:00 UTC):

* 08:00–09:00 the clinic runs: ingest beats, both gateways report online, patient A's CGM
  reads every 5 minutes. Patient B's gateway goes really offline at 08:50.
* 09:00–11:00 the clinic's server is down: no heartbeat, no status, nothing stored.
  S1 (A's CGM silent) and S3 (both gateways) would fire; they are held back.
* 11:00 recovery: ingest beats again, A's gateway reconnects and flushes its outbox.
* after the 10-minute recovery grace, B's gateway — silent since 08:50 — raises S3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from alerts.evaluator import Evaluator, RegistryGatewayLastSeen, RegistryPatientDirectory
from alerts.incidents import IncidentDelivery, OutageMonitor
from alerts.lifecycle import OUTAGE_REASON
from alerts.outage import INCIDENT_RULE, RECOVERY_GRACE, OutageCause
from alerts.pipeline import FileNotifier, LifecycleSink
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from infra.mqtt import ClientSettings, parse_mqtt_url
from ingest.config import load_settings
from ingest.fleet_listener import FleetListener
from ingest.heartbeat import IngestHeartbeat
from ingest.stores import open_store
from ingest.stores.base import ReadingStore
from ingest.worker import open_worker
from readings.codec import GatewayState, StatusMessage, encode_envelope, encode_message
from readings.model import CgmGlucoseValues, Reading, new_reading
from readings.topics import status_topic
from registry.alert_models import AlertRow, AlertSuppression
from registry.audit_query import AuditQuery, find_audit
from registry.db import create_engine_for, session_scope
from registry.incidents import heartbeat_spans, incident_events, incidents
from tests.harness.services import MosquittoServer
from tests.integration.ingest_helpers import make_registry
from vitalgate.cli import app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)
DOWN_AT, BACK_AT = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
B_OFFLINE_AT = T0 + timedelta(minutes=50)
A, B = "patient-a", "patient-b"
GW_A, GW_B = "gw-a", "gw-b"
CGM_A, METER_B = "DEXCOM-G7-0000001", "ROCHE-GUIDE-0000002"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Engine, ReadingStore]]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    for args in (
        ["init"],
        ["gateway", "add", GW_A],
        ["gateway", "add", GW_B],
        ["patient", "add", A],
        ["patient", "add", B],
        ["device", "bind", CGM_A, "--gateway", GW_A, "--patient", A],
        ["device", "bind", METER_B, "--gateway", GW_B, "--patient", B],
    ):
        result = CliRunner().invoke(app, ["registry", "--registry", url, "--actor", "t", *args])
        assert result.exit_code == 0, result.output
    for args in (
        ["add", "it-li", "--role", "it_operator", "--phone", "13800000001"],
        ["add", "dr-wang", "--role", "family_doctor", "--phone", "13800000002"],
    ):
        result = CliRunner().invoke(app, ["users", "--registry", url, "--actor", "t", *args])
        assert result.exit_code == 0, result.output
    engine = create_engine_for(url)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    yield engine, store
    store.close()
    engine.dispose()


def cgm(at: datetime) -> Reading:
    return new_reading(
        values=CgmGlucoseValues(glucose=6.2),
        source_unit="mmol/L",
        measured_at=at,
        received_at=at,
        device_id=CGM_A,
        patient_id=A,
        gateway_id=GW_A,
    )


def status(listener: FleetListener, gateway: str, at: datetime) -> None:
    message = StatusMessage(gateway_id=gateway, state=GatewayState.ONLINE, at=at)
    handled = listener.handle(status_topic(gateway), encode_message(message))
    assert handled.outcome == "status", handled


def open_alerts(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine, write=False) as session:
        rows = session.scalars(select(AlertRow).where(AlertRow.resolved_at.is_(None))).all()
        return sorted((r.patient_id, r.rule_id) for r in rows)


def every_alert(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine, write=False) as session:
        return sorted((r.patient_id, r.rule_id) for r in session.scalars(select(AlertRow)))


def test_two_hours_of_clinic_downtime_raise_one_incident_and_no_stale_alerts(
    registry: tuple[Engine, ReadingStore], tmp_path: Path
) -> None:
    engine, store = registry
    clock = Clock()
    sink = LifecycleSink(engine, clock=clock)
    sent = tmp_path / "sms.jsonl"
    delivery = IncidentDelivery(engine, {"sms": FileNotifier("sms", sent)}, sleep=lambda _: None)
    evaluator = Evaluator(
        engine=engine,
        store=store,
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=sink,
        clock=clock,
        holder="alerts-0",
        partitions=1,
        lease_ttl=timedelta(days=1),  # one worker; the clock jumps
        gateway_last_seen=RegistryGatewayLastSeen(engine),
        outage=OutageMonitor(engine, clock=clock, delivery=delivery),
        on_suppressed=sink.suppress,
    )
    settings = ClientSettings(endpoint=parse_mqtt_url("mqtt://127.0.0.1:1"), client_id="fleet")
    listener = FleetListener(settings, engine, clock=clock)
    clinic_up = True
    heartbeat = IngestHeartbeat(
        engine, instance="ingest-0", connected=lambda: clinic_up, clock=clock
    )
    outbox: list[Reading] = []  # gateway A's readings not yet taken by ingest

    def deliver(readings: list[Reading]) -> None:
        store.write(readings)
        evaluator.handle_accepted(0, encode_envelope(GW_A, clock.now, readings))

    heartbeat.pulse()
    evaluator.refresh_leases()
    during: list[list[tuple[str, str]]] = []
    end = BACK_AT + RECOVERY_GRACE + timedelta(minutes=20)
    while clock.now < end:
        clock.now += STEP
        now = clock.now
        clinic_up = not DOWN_AT <= now < BACK_AT
        heartbeat.pulse()
        if now.second == 0 and now.minute % 5 == 0:
            outbox.append(cgm(now))
        if clinic_up:
            if outbox:
                deliver(outbox)  # a 2-h backlog leaves at once on recovery
                outbox = []
            if now.second == 0:  # each gateway's status every 60 s
                status(listener, GW_A, now)
                if now < B_OFFLINE_AT:
                    status(listener, GW_B, now)
        if now.second == 0 and now.minute % 2 == 0:
            evaluator.tick()
        if DOWN_AT <= now < BACK_AT + RECOVERY_GRACE:
            during.append(open_alerts(engine))

    # During the outage and its grace: nothing S1/S2/S3 opened, for nobody.
    assert all(snapshot == [] for snapshot in during), sorted({a for s in during for a in s})
    # Exactly one incident, from the last heartbeat to the recovery, resolved.
    found = incidents(engine, rule_id=INCIDENT_RULE)
    assert len(found) == 1
    incident = found[0]
    assert incident.causes == ("ingest",)
    assert DOWN_AT - STEP <= incident.started_at < DOWN_AT
    assert incident.ended_at == BACK_AT
    assert incident.resolved_at is not None
    assert DOWN_AT < incident.opened_at <= DOWN_AT + timedelta(minutes=3)  # seen within a tick
    with session_scope(engine, write=False) as session:
        actions = [e.action for e in find_audit(session, AuditQuery(actor="engine"), limit=1000)]
        held = session.scalars(select(AlertSuppression)).all()
        suppressed = sorted((s.patient_id, s.rule_id, s.reason) for s in held)
        since = {s.since for s in held}
    assert "incident.open" in actions
    assert "incident.resolve" in actions
    # What was held back is visible: A's stale CGM and gateway, B's gateway; one row each.
    assert suppressed == [
        (A, "S1", OUTAGE_REASON),
        (A, "S3", OUTAGE_REASON),
        (B, "S3", OUTAGE_REASON),
    ]
    assert since == {incident.started_at}
    # IT is told twice (down, back), under one key each; the doctor is not told.
    lines = [json.loads(line) for line in sent.read_text(encoding="utf-8").splitlines()]
    assert [(m["recipient"], m["subject"]) for m in lines] == [
        (lines[0]["recipient"], "VitalGate 系统故障"),
        (lines[0]["recipient"], "VitalGate 系统恢复"),
    ]
    assert {m["address"] for m in lines} == {"13800000001"}
    assert "gw-" not in sent.read_text(encoding="utf-8")  # nobody's gateway or patient
    assert "patient" not in sent.read_text(encoding="utf-8")
    kinds = [kind for _, kind, _ in incident_events(engine, incident.incident_id)]
    assert kinds == ["open", "notify", "resolve", "notify"]
    # After the grace: B's gateway, really offline since 08:50, raises S3; A is fine.
    assert open_alerts(engine) == [(B, "S3")]
    assert every_alert(engine) == [(B, "S3")]


def test_evaluator_downtime_is_one_incident_and_holds_no_real_silence_back(
    registry: tuple[Engine, ReadingStore],
) -> None:
    """Only the evaluator was down (ingest stored everything): one incident, recorded on
    restart; A's CGM, really silent since 08:30, raises S1 at once — nothing explains it."""
    engine, store = registry
    clock = Clock()

    def evaluator(holder: str) -> Evaluator:
        sink = LifecycleSink(engine, clock=clock)
        return Evaluator(
            engine=engine,
            store=store,
            directory=RegistryPatientDirectory(engine),
            rules=default_rules(),
            evaluate=evaluate,
            sink=sink,
            clock=clock,
            holder=holder,
            partitions=1,
            lease_ttl=timedelta(minutes=5),
            gateway_last_seen=RegistryGatewayLastSeen(engine),
            outage=OutageMonitor(engine, clock=clock),
            on_suppressed=sink.suppress,
        )

    heartbeat = IngestHeartbeat(engine, instance="ingest-0", connected=lambda: True, clock=clock)
    heartbeat.pulse()
    store.write([cgm(T0 + timedelta(minutes=m)) for m in range(0, 31, 5)])
    first = evaluator("host-a-alerts-0")
    first.refresh_leases()
    first.mark_caught_up()
    # The evaluator dies here (its lease simply runs out); ingest keeps beating.
    while clock.now < T0 + timedelta(hours=2):
        clock.now += STEP
        heartbeat.pulse()
    second = evaluator("host-b-alerts-0")
    second.refresh_leases()  # start-up: measures its own downtime, then catches up
    found = incidents(engine, rule_id=INCIDENT_RULE)
    assert [(i.causes, i.started_at, i.ended_at) for i in found] == [
        (("evaluator",), T0, T0 + timedelta(hours=2))
    ]
    assert [kind for _, kind, _ in incident_events(engine, found[0].incident_id)] == ["record"]
    assert open_alerts(engine) == [(A, "S1")]
    second.tick()
    assert len(incidents(engine, rule_id=INCIDENT_RULE)) == 1  # recorded once


def test_the_evaluator_cut_off_from_the_broker_is_an_outage(
    registry: tuple[Engine, ReadingStore],
) -> None:
    """Nothing reaches the evaluator's windows while it has no broker: its own disconnection
    is an outage (cause ``broker``), and it ends when the link is back."""
    engine, _ = registry
    clock = Clock()
    monitor = OutageMonitor(engine, clock=clock)
    heartbeat = IngestHeartbeat(engine, instance="ingest-0", connected=lambda: True, clock=clock)
    heartbeat.pulse()
    monitor.refresh()
    clock.now += STEP
    monitor.broker(False, clock.now)
    lost = clock.now
    for _ in range(8):
        clock.now += STEP
        heartbeat.pulse()
        monitor.broker(False, clock.now)
    assert [o.causes for o in monitor.refresh()] == [frozenset({OutageCause.BROKER})]
    assert [i.resolved_at for i in incidents(engine, rule_id=INCIDENT_RULE)] == [None]
    clock.now += STEP
    monitor.broker(True, clock.now)
    outages = monitor.refresh()
    assert [(o.start, o.end) for o in outages] == [(lost, clock.now)]
    (incident,) = incidents(engine, rule_id=INCIDENT_RULE)
    assert incident.causes == ("broker",)
    assert incident.ended_at == clock.now


def test_a_real_ingest_worker_beats_only_while_connected(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """`open_worker` wires the heartbeat: a span at start, none while the broker is gone,
    a new span once the worker is back on the broker."""
    registry_url = make_registry(tmp_path / "registry.db", [])
    settings = load_settings(
        mqtt_url=mosquitto.url,
        store_url=f"sqlite:///{tmp_path / 'readings.db'}",
        registry_url=registry_url,
        client_id="ingest-heartbeat-test",
        metrics_port=None,
    )
    worker = open_worker(settings)
    engine = create_engine_for(registry_url)
    since = datetime.now(UTC) - timedelta(minutes=1)
    try:
        worker.start()
        (heartbeat,) = worker.companions
        assert isinstance(heartbeat, IngestHeartbeat)
        wait_until(lambda: len(heartbeat_spans(engine, since=since)) == 1, 10, "first span")
        assert heartbeat_spans(engine, since=since)[0].instance == "ingest-heartbeat-test"
        mosquitto.kill()
        wait_until(lambda: not worker.connected, 15, "the worker to notice the broker gone")
        heartbeat.pulse()
        assert heartbeat.span_id is None  # no beat while cut off: the span ended
        mosquitto.start()
        wait_until(lambda: worker.connected, 30, "the worker to reconnect")
        heartbeat.pulse()
        spans = heartbeat_spans(engine, since=since)
        assert len(spans) == 2
        assert spans[1].started_at > spans[0].beat_at
    finally:
        worker.close()
        engine.dispose()
