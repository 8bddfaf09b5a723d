"""The ingest pipeline end to end on real Mosquitto, real InfluxDB 1.x and a SQLite registry.

A test gateway publishes envelopes; the worker stores them, acknowledges them end to end
on ``gw/{id}/ack`` and republishes them on ``accepted/{partition}``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from ingest.config import IngestSettings, load_settings
from ingest.worker import IngestWorker, open_worker
from readings.codec import decode_envelope
from readings.model import (
    BloodPressureValues,
    Kind,
    Spo2Values,
    WeightValues,
    new_reading,
)
from readings.topics import ALL_ACCEPTED_FILTER, parse_topic, partition_for
from readings.units import Unit
from registry.db import create_engine_for
from registry.quarantine import QuarantineStore
from tests.harness.services import InfluxDBServer, MosquittoServer
from tests.integration.ingest_helpers import (
    REPO_ROOT,
    Binding,
    CountingStore,
    Subscriber,
    TestGateway,
    assert_written_once,
    batches,
    influx_ids,
    make_readings,
    make_registry,
    open_counted_worker,
    scrape,
)
from vitalgate.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration

GW1_METER = Binding("gw1", "Acme-GlucoMeter-0001", "patient-a")
GW1_CUFF = Binding("gw1", "Acme-Cuff-0002", "patient-a")
GW1_SCALE = Binding("gw1", "Acme-Scale-0003", "patient-b")
GW1_OXIMETER = Binding("gw1", "Acme-Oxi-0004", "patient-b")
THROUGHPUT_READINGS = 50_000
THROUGHPUT_READINGS_PER_ENVELOPE = 250
DRAIN_TIMEOUT_SECONDS = 60.0


@dataclass
class Pipeline:
    mosquitto: MosquittoServer
    influxdb: InfluxDBServer
    database: str
    registry_url: str
    worker: IngestWorker
    store: CountingStore


def settings_for(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    database: str,
    registry_url: str,
    **extra: object,
) -> IngestSettings:
    return load_settings(
        mqtt_url=mosquitto.url,
        store_url=f"influxdb-v1://{influxdb.host}:{influxdb.port}/{database}",
        registry_url=registry_url,
        client_id=f"ingest-test-{uuid.uuid4().hex[:8]}",
        metrics_port=0,
        **extra,
    )


@pytest.fixture
def pipeline(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_database: str, tmp_path: Path
) -> Iterator[Pipeline]:
    registry_url = make_registry(
        tmp_path / "registry.db", [GW1_METER, GW1_CUFF, GW1_SCALE, GW1_OXIMETER]
    )
    worker, store = open_counted_worker(
        settings_for(mosquitto, influxdb, influx_database, registry_url)
    )
    worker.start()
    yield Pipeline(mosquitto, influxdb, influx_database, registry_url, worker, store)
    worker.close()


def test_readings_are_stored_acked_and_handed_to_the_alert_engine(pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    meter = make_readings(GW1_METER, 30)
    others = [
        new_reading(
            values=BloodPressureValues(systolic=142, diastolic=91, pulse=77),
            source_unit=Unit.MMHG,
            measured_at=now - timedelta(minutes=10),
            received_at=now,
            device_id=GW1_CUFF.device_id,
            patient_id=GW1_CUFF.patient_id,
            gateway_id="gw1",
            seq=7,
        ),
        new_reading(
            values=WeightValues(weight=81.2),
            source_unit=Unit.KG,
            measured_at=now - timedelta(minutes=9),
            received_at=now,
            device_id=GW1_SCALE.device_id,
            patient_id=GW1_SCALE.patient_id,
            gateway_id="gw1",
            seq=3,
        ),
        new_reading(
            values=Spo2Values(spo2=95, pulse=70),
            source_unit=Unit.PERCENT,
            measured_at=now - timedelta(minutes=8),
            received_at=now,
            device_id=GW1_OXIMETER.device_id,
            patient_id=GW1_OXIMETER.patient_id,
            gateway_id="gw1",
            seq=11,
        ),
    ]
    every = meter + others
    broker = pipeline.mosquitto
    with (
        Subscriber(broker.host, broker.port, ALL_ACCEPTED_FILTER) as accepted,
        TestGateway(broker.host, broker.port, "gw1") as gateway,
    ):
        for batch in batches(every, 10):
            gateway.send(batch)
        gateway.wait_for_acks(reading.id for reading in every)
        deadline = time.monotonic() + 10
        while sum(len(decode_envelope(m.payload).readings) for m in accepted.messages) < len(every):
            assert time.monotonic() < deadline, "accepted/ did not get every reading"
            time.sleep(0.05)

    stored = influx_ids(pipeline.influxdb, pipeline.database)
    assert sorted(stored) == sorted(reading.id for reading in every)
    assert_written_once(pipeline.store, (reading.id for reading in every))
    assert all(not ack.quarantined for ack in gateway.acks)
    for message in accepted.messages:
        partition = parse_topic(message.topic).partition
        for reading in decode_envelope(message.payload).readings:
            assert partition == partition_for(reading.patient_id)
    republished = {
        reading.id: reading
        for message in accepted.messages
        for reading in decode_envelope(message.payload).readings
    }
    assert republished == {reading.id: reading for reading in every}
    engine = create_engine_for(pipeline.registry_url)
    try:
        assert QuarantineStore(engine).recent() == []
    finally:
        engine.dispose()

    metrics = pipeline.worker.metrics
    assert metrics.readings_stored._value.get() == len(every)
    assert metrics.readings_received._value.get() == len(every)
    assert metrics.backlog._value.get() == 0
    # One ack per gateway and worker batch: at most one per message, fewer when the worker
    # took several of the gateway's messages in one batch.
    assert 1 <= metrics.e2e_acks_published._value.get() <= len(batches(every, 10))


@pytest.mark.slow
def test_throughput_end_to_end(pipeline: Pipeline) -> None:
    """Readings/s from first publish to the last end-to-end ack (printed with ``-s``)."""
    bindings = [Binding("gw1", GW1_METER.device_id, GW1_METER.patient_id)]
    readings = make_readings(bindings[0], THROUGHPUT_READINGS)
    envelopes = batches(readings, THROUGHPUT_READINGS_PER_ENVELOPE)
    broker = pipeline.mosquitto
    with TestGateway(broker.host, broker.port, "gw1") as gateway:
        began = time.perf_counter()
        for envelope in envelopes:
            gateway.send(envelope)
        gateway.drain(DRAIN_TIMEOUT_SECONDS, resend_after=DRAIN_TIMEOUT_SECONDS)
        elapsed = time.perf_counter() - began
    rate = len(readings) / elapsed
    print(
        f"\ningest throughput: {len(readings)} readings in {len(envelopes)} messages, "
        f"{elapsed:.2f} s end to end = {rate:,.0f} readings/s"
    )
    assert len(influx_ids(pipeline.influxdb, pipeline.database, [Kind.GLUCOSE])) == len(readings)
    assert_written_once(pipeline.store, (reading.id for reading in readings))


def test_metrics_endpoint_serves_the_counters(pipeline: Pipeline) -> None:
    from ingest.metrics import start_metrics_server

    server = start_metrics_server(pipeline.worker.metrics, 0)
    try:
        broker = pipeline.mosquitto
        readings = make_readings(GW1_METER, 5)
        with TestGateway(broker.host, broker.port, "gw1") as gateway:
            gateway.send(readings)
            gateway.wait_for_acks(reading.id for reading in readings)
        samples = scrape(server.url)
    finally:
        server.close()
    assert samples["vitalgate_ingest_readings_stored_total"] == 5
    assert samples["vitalgate_ingest_messages_received_total"] == 1
    assert samples["vitalgate_ingest_backlog_messages"] == 0
    assert samples["vitalgate_ingest_store_write_seconds_count"] == 1
    assert samples["vitalgate_ingest_mqtt_connected"] == 1


def test_cli_refuses_bad_configuration_naming_the_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vitalgate", "ingest", "run", "--mqtt-url", "http://x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "mqtt_url" in result.stderr


def test_cli_reports_an_unreachable_broker(tmp_path: Path, influx_database: str) -> None:
    registry_url = make_registry(tmp_path / "registry.db", [GW1_METER])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitalgate",
            "ingest",
            "run",
            "--mqtt-url",
            "mqtt://127.0.0.1:9",
            "--store",
            f"sqlite:///{tmp_path}/readings.db",
            "--registry",
            registry_url,
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot connect to the MQTT broker at 127.0.0.1:9" in result.stderr


def test_mqtt_311_worker_on_the_embedded_broker(tmp_path: Path) -> None:
    """The demo's topology: amqtt speaks only MQTT 3.1.1 and has no shared subscriptions."""
    registry_url = make_registry(tmp_path / "registry.db", [GW1_METER])
    readings = make_readings(GW1_METER, 40)
    with EmbeddedBroker() as broker:
        settings = load_settings(
            mqtt_url=broker.url,
            mqtt_protocol="3.1.1",
            store_url=f"sqlite:///{tmp_path / 'readings.db'}",
            registry_url=registry_url,
            client_id="ingest-demo-0",
            metrics_port=None,
        )
        worker = open_worker(settings)
        worker.start()
        try:
            assert worker.subscription == "vitalgate/v1/gw/+/readings"
            with TestGateway("127.0.0.1", broker.port, "gw1", protocol=mqtt.MQTTv311) as gateway:
                for batch in batches(readings, 10):
                    gateway.send(batch)
                gateway.wait_for_acks(reading.id for reading in readings)
            assert worker.metrics.readings_stored._value.get() == len(readings)
        finally:
            worker.close()
