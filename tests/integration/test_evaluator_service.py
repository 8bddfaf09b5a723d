"""The evaluator on a real Mosquitto: evaluates what arrives, and what the broker lost.

The broker is SIGKILLed while an ``accepted/`` message waits for the stopped evaluator
(Mosquitto keeps in-flight queues in memory between autosaves, so the message is gone);
the restarted evaluator still evaluates the reading — from the store, since its
partition's watermark — and the hypo among them fires G1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from alerts.evaluator import Evaluator, RegistryPatientDirectory
from alerts.model import Finding, FindingStatus
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from alerts.service import EvaluatorService
from infra.mqtt import ClientSettings, parse_mqtt_url
from ingest.stores import open_store
from ingest.stores.base import ReadingStore
from readings.codec import encode_envelope
from readings.model import GlucoseValues, Reading, new_reading
from readings.topics import accepted_topic, partition_for
from registry.db import create_engine_for
from tests.harness.services import MosquittoServer
from vitalgate.cli import app

pytestmark = pytest.mark.integration

PATIENT, DEVICE, GATEWAY = "patient-0001", "ROCHE-GUIDE-0000001", "gw-0001"
PARTITIONS = 4
PART = partition_for(PATIENT, PARTITIONS)


class Sink:
    def __init__(self) -> None:
        self.g1: list[tuple[str, ...]] = []
        self.event = threading.Event()

    def __call__(self, patient_id: str, findings: Sequence[Finding]) -> None:
        for finding in findings:
            if finding.rule_id == "G1" and finding.status is FindingStatus.FIRING:
                self.g1.append(finding.reading_ids)
                self.event.set()


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Engine, ReadingStore]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    for args in (
        ["init"],
        ["gateway", "add", GATEWAY],
        ["patient", "add", PATIENT],
        ["device", "bind", DEVICE, "--gateway", GATEWAY, "--patient", PATIENT],
    ):
        result = CliRunner().invoke(app, ["registry", "--registry", url, "--actor", "t", *args])
        assert result.exit_code == 0, result.output
    engine = create_engine_for(url)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    yield engine, store
    store.close()
    engine.dispose()


def glucose(mmol: float, seq: int) -> Reading:
    at = datetime.now(UTC) - timedelta(minutes=2)
    return new_reading(
        values=GlucoseValues(glucose=mmol),
        source_unit="mmol/L",
        measured_at=at,
        received_at=at,
        device_id=DEVICE,
        patient_id=PATIENT,
        gateway_id=GATEWAY,
        seq=seq,
    )


def start_service(
    deployment: tuple[Engine, ReadingStore], broker: MosquittoServer, sink: Sink
) -> tuple[EvaluatorService, threading.Thread]:
    engine, store = deployment
    evaluator = Evaluator(
        engine=engine,
        store=store,
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=sink,
        clock=lambda: datetime.now(UTC),
        holder="alerts-0",
        partitions=PARTITIONS,
        lease_ttl=timedelta(seconds=3),
    )
    settings = ClientSettings(
        endpoint=parse_mqtt_url(broker.url),
        client_id="vitalgate-alerts-0",
        persistent_session=True,
        session_expiry_seconds=3600,
        manual_ack=True,
    )
    service = EvaluatorService(evaluator, settings, tick=timedelta(hours=1))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    return service, thread


def publish(broker: MosquittoServer, reading: Reading) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    info = client.publish(
        accepted_topic(PART, PARTITIONS),
        encode_envelope(GATEWAY, datetime.now(UTC), [reading]),
        qos=1,
    )
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def wait_subscribed(service: EvaluatorService) -> None:
    deadline = time.monotonic() + 10
    while PART not in service.evaluator.held and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # SUBACK


def test_a_published_hypo_fires_g1(deployment, mosquitto: MosquittoServer) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()
    service, thread = start_service(deployment, mosquitto, sink)
    try:
        wait_subscribed(service)
        low = glucose(2.5, 1)
        deployment[1].write([low])
        publish(mosquitto, low)
        assert sink.event.wait(10), "no G1 from the published hypo"
        assert sink.g1 == [(low.id,)]
    finally:
        service.stop()
        thread.join(10)


@pytest.mark.fault
def test_broker_killed_while_the_evaluator_is_down(deployment, mosquitto: MosquittoServer) -> None:  # type: ignore[no-untyped-def]
    first = Sink()
    service, thread = start_service(deployment, mosquitto, first)
    wait_subscribed(service)
    service.stop()
    thread.join(10)
    # Ingest stored the hypo and published it; the evaluator's session queues it ...
    low = glucose(2.3, 2)
    deployment[1].write([low])
    publish(mosquitto, low)
    # ... and the broker dies before the evaluator is back: the queue is gone.
    mosquitto.kill()
    mosquitto.start()
    second = Sink()
    service, thread = start_service(deployment, mosquitto, second)
    try:
        assert second.event.wait(15), "the hypo escaped evaluation"
        assert second.g1[0] == (low.id,)
        assert first.g1 == []
    finally:
        service.stop()
        thread.join(10)
