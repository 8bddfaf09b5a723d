"""Fault tests of the ingest worker (RELIABILITY.md A6 R4–R6, B6 S8) on real services.

* R4: ingest SIGKILLed mid-stream and restarted — every reading stored exactly once.
* R5: InfluxDB SIGSTOPped for 60 s under load — nothing acknowledged meanwhile, nothing
  lost afterwards, the backlog metric rises and falls.
* Two workers in one shared-subscription group split the work without duplicates.
* S8: readings a gateway does not own are quarantined as security events.
* Malformed payloads of many kinds are quarantined with their reason while the good
  readings of the same batch are stored and the worker keeps running.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ingest.config import load_settings
from ingest.worker import IngestWorker, open_worker
from readings.codec import MAX_PAYLOAD_BYTES, decode_envelope, encode_envelope, reading_to_builtins
from readings.model import (
    BloodPressureValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    new_reading,
)
from readings.topics import ALL_ACCEPTED_FILTER
from readings.units import Unit
from registry.db import create_engine_for
from registry.quarantine import QuarantineEntry, QuarantineStore
from tests.harness.services import InfluxDBServer, MosquittoServer
from tests.integration.ingest_helpers import (
    Binding,
    IngestProcess,
    Subscriber,
    TestGateway,
    batches,
    influx_ids,
    make_readings,
    make_registry,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

GW1_METER = Binding("gw1", "Acme-GlucoMeter-0001", "patient-a")
GW1_CUFF = Binding("gw1", "Acme-Cuff-0002", "patient-a")
GW2_METER = Binding("gw2", "Acme-GlucoMeter-0009", "patient-b")
BINDINGS = [GW1_METER, GW1_CUFF, GW2_METER]
DRAIN_TIMEOUT_SECONDS = 90.0
INFLUX_PAUSE_SECONDS = 60.0
STORE_TIMEOUT_SECONDS = 2
"""The store's HTTP timeout in the pause test: each attempt against the stopped InfluxDB
fails after 2 s instead of the default 10 s."""


def store_url(influxdb: InfluxDBServer, database: str, **options: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"influxdb-v1://{influxdb.host}:{influxdb.port}/{database}" + (
        f"?{query}" if query else ""
    )


def start_worker(
    mosquitto: MosquittoServer, store: str, registry_url: str, **extra: object
) -> IngestWorker:
    settings = load_settings(
        mqtt_url=mosquitto.url,
        store_url=store,
        registry_url=registry_url,
        client_id=extra.pop("client_id", f"ingest-fault-{uuid.uuid4().hex[:8]}"),
        metrics_port=None,
        **extra,
    )
    worker = open_worker(settings)
    worker.start()
    return worker


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def quarantine_entries(registry_url: str) -> list[QuarantineEntry]:
    engine = create_engine_for(registry_url)
    try:
        return QuarantineStore(engine).recent(limit=10_000)
    finally:
        engine.dispose()


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return make_registry(tmp_path / "registry.db", BINDINGS)


@pytest.fixture
def worker(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_database: str, registry_url: str
) -> Iterator[IngestWorker]:
    running = start_worker(mosquitto, store_url(influxdb, influx_database), registry_url)
    yield running
    running.close()


# -- R4: SIGKILL mid-stream -------------------------------------------------------------


def test_ingest_sigkilled_mid_stream_loses_and_duplicates_nothing(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_database: str,
    registry_url: str,
    tmp_path: Path,
) -> None:
    readings = make_readings(GW1_METER, 20_000)
    envelopes = batches(readings, 100)
    ingest = IngestProcess(
        tmp_path,
        [
            "--mqtt-url",
            mosquitto.url,
            "--store",
            store_url(influxdb, influx_database),
            "--registry",
            registry_url,
            "--client-id",
            "ingest-sigkill",
            "--metrics-port",
            "0",
        ],
    )
    try:
        ingest.start()
        with TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway:
            publisher = threading.Thread(
                target=lambda: [
                    (gateway.send(envelope), time.sleep(0.005)) for envelope in envelopes
                ]
            )
            publisher.start()
            wait_until(lambda: len(gateway.acked_ids) >= 2_000, 30, "first acks")
            ingest.kill()
            acked_before_kill = len(gateway.acked_ids)
            publisher.join()
            assert acked_before_kill < len(readings), "the kill came after the stream ended"
            ingest.start()
            gateway.drain(DRAIN_TIMEOUT_SECONDS)
            assert not gateway.unacked()
        exit_code = ingest.terminate()
    finally:
        ingest.close()
    stored = influx_ids(influxdb, influx_database)
    assert len(stored) == len(set(stored)), "a reading is stored twice"
    assert set(stored) == {reading.id for reading in readings}
    assert exit_code == 0, ingest.log_tail()


# -- R5: InfluxDB stopped under load ----------------------------------------------------


def test_influxdb_paused_for_a_minute_under_load(
    mosquitto: MosquittoServer, influxdb_fresh: InfluxDBServer, registry_url: str
) -> None:
    influxdb_fresh.create_database("vitalgate")
    worker = start_worker(
        mosquitto,
        store_url(influxdb_fresh, "vitalgate", timeout=STORE_TIMEOUT_SECONDS),
        registry_url,
        receive_maximum=500,
        batch_max_messages=100,
    )
    metrics = worker.metrics
    readings = make_readings(GW1_METER, 36_000)
    envelopes = batches(readings, 20)
    stop_publishing = threading.Event()
    backlog_samples: list[float] = []

    try:
        with TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway:

            def publish() -> None:
                for envelope in envelopes:
                    if stop_publishing.is_set():
                        return
                    gateway.send(envelope)
                    time.sleep(0.02)

            publisher = threading.Thread(target=publish)
            publisher.start()
            wait_until(lambda: len(gateway.acked_ids) >= 500, 30, "acks before the pause")
            influxdb_fresh.pause()
            time.sleep(STORE_TIMEOUT_SECONDS + 1)  # let a write already on the wire time out
            acked_at_pause = len(gateway.acked_ids)
            mqtt_acked_at_pause = metrics.messages_acked._value.get()
            pause_ends = time.monotonic() + INFLUX_PAUSE_SECONDS - STORE_TIMEOUT_SECONDS - 1
            while time.monotonic() < pause_ends:
                backlog_samples.append(metrics.backlog._value.get())
                time.sleep(1)
            assert len(gateway.acked_ids) == acked_at_pause, "acknowledged while InfluxDB was down"
            assert metrics.messages_acked._value.get() == mqtt_acked_at_pause
            assert metrics.store_retrying._value.get() == 1
            assert metrics.store_retries._value.get() >= 3
            stop_publishing.set()
            influxdb_fresh.resume()
            publisher.join()
            sent = {reading_id for batch in gateway._batches for reading_id in batch.ids}
            # No re-publishing: whatever the broker and the worker held must all arrive.
            gateway.drain(DRAIN_TIMEOUT_SECONDS, resend_after=DRAIN_TIMEOUT_SECONDS * 2)
        wait_until(lambda: metrics.backlog._value.get() == 0, 10, "the backlog to empty")
    finally:
        stop_publishing.set()
        if influxdb_fresh.paused:
            influxdb_fresh.resume()
        worker.close()
    assert max(backlog_samples) >= 400, "the backlog did not rise while InfluxDB was down"
    assert backlog_samples[0] <= max(backlog_samples)
    stored = influx_ids(influxdb_fresh, "vitalgate")
    assert len(stored) == len(set(stored))
    assert set(stored) == sent
    assert metrics.store_retrying._value.get() == 0


# -- shared subscription ----------------------------------------------------------------


def test_two_workers_in_one_group_split_the_work(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_database: str, registry_url: str
) -> None:
    store = store_url(influxdb, influx_database)
    first = start_worker(mosquitto, store, registry_url, group="province")
    second = start_worker(mosquitto, store, registry_url, group="province")
    readings = make_readings(GW1_METER, 3_000) + make_readings(GW2_METER, 3_000)
    try:
        with (
            TestGateway(mosquitto.host, mosquitto.port, "gw1") as gw1,
            TestGateway(mosquitto.host, mosquitto.port, "gw2") as gw2,
        ):
            for envelope in batches(readings, 30):
                (gw1 if envelope[0].gateway_id == "gw1" else gw2).send(envelope)
            gw1.drain(DRAIN_TIMEOUT_SECONDS, resend_after=DRAIN_TIMEOUT_SECONDS * 2)
            gw2.drain(DRAIN_TIMEOUT_SECONDS, resend_after=DRAIN_TIMEOUT_SECONDS * 2)
    finally:
        first.close()
        second.close()
    received = [w.metrics.messages_received._value.get() for w in (first, second)]
    assert all(count > 0 for count in received), f"one worker got nothing: {received}"
    assert sum(received) == len(batches(readings, 30)), "a message went to both workers"
    stored = influx_ids(influxdb, influx_database)
    assert len(stored) == len(set(stored)) == len(readings)
    assert set(stored) == {reading.id for reading in readings}


# -- S8: ownership ----------------------------------------------------------------------


def glucose(binding: Binding, seq: int, *, patient_id: str | None = None, **kw: Any) -> Reading:
    now = datetime.now(UTC)
    return new_reading(
        values=GlucoseValues(glucose=6.1),
        source_unit=Unit.MMOL_PER_L,
        measured_at=kw.get("measured_at", now - timedelta(minutes=5)),
        received_at=now,
        device_id=binding.device_id,
        patient_id=patient_id or binding.patient_id,
        gateway_id=kw.get("gateway_id", binding.gateway_id),
        seq=seq,
    )


def test_readings_a_gateway_does_not_own_are_security_events(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_database: str,
    registry_url: str,
    worker: IngestWorker,
) -> None:
    good = glucose(GW1_METER, 1)
    foreign_device = glucose(GW2_METER, 2, gateway_id="gw1")
    wrong_patient = glucose(GW1_METER, 3, patient_id="patient-b")
    unknown_device = glucose(Binding("gw1", "Evil-Meter-666", "patient-a"), 4)
    before_pairing = glucose(GW1_METER, 5, measured_at=datetime(2020, 1, 1, tzinfo=UTC))
    spoofed = glucose(GW2_METER, 6)  # names gw2 in the payload, sent on gw1's topic
    refused = {
        foreign_device.id: "device_not_paired_to_gateway",
        wrong_patient.id: "wrong_patient",
        unknown_device.id: "unknown_device",
        before_pairing.id: "not_paired_at_measured_at",
        spoofed.id: "gateway_mismatch",
    }
    with (
        Subscriber(mosquitto.host, mosquitto.port, ALL_ACCEPTED_FILTER) as accepted,
        TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway,
    ):
        gateway.send([good, foreign_device, wrong_patient, unknown_device, before_pairing])
        gateway.send([spoofed], gateway_id="gw2")
        gateway.wait_for_acks([good.id, *refused])
        wait_until(lambda: bool(accepted.messages), 10, "accepted/ to carry the good reading")
        time.sleep(0.5)  # anything wrongly republished would have arrived by now

    assert influx_ids(influxdb, influx_database) == [good.id]
    republished = [r.id for m in accepted.messages for r in decode_envelope(m.payload).readings]
    assert republished == [good.id]
    entries = {entry.reading_id: entry for entry in quarantine_entries(registry_url)}
    assert {key: entry.detail for key, entry in entries.items()} == refused
    assert all(entry.reason == "ownership" and entry.security_event for entry in entries.values())
    assert entries[wrong_patient.id].gateway_id == "gw1"
    notices = [notice for ack in gateway.acks for notice in ack.quarantined]
    assert {notice.id for notice in notices} == set(refused)
    assert {notice.reason for notice in notices} == {"ownership"}
    engine = create_engine_for(registry_url)
    try:
        events = QuarantineStore(engine).recent_security_events(limit=100)
    finally:
        engine.dispose()
    assert {(event.reading_id, event.reason) for event in events} == set(refused.items())
    by_reading = {event.reading_id: event for event in events}
    assert by_reading[wrong_patient.id].claimed_patient_id == "patient-b"
    assert by_reading[foreign_device.id].device_id == GW2_METER.device_id
    security = worker.metrics.security_events
    assert security.labels(reason="wrong_patient")._value.get() == 1
    assert security.labels(reason="gateway_mismatch")._value.get() == 1


# -- malformed payloads -----------------------------------------------------------------


@dataclass(frozen=True)
class Malformed:
    """One kind of bad input and what the quarantine must say about it."""

    name: str
    build: Callable[[Reading], bytes]
    """From a good reading: the payload to send (reading-level cases keep the good one)."""
    reason: str
    detail: str
    """A fragment the quarantine entry's detail must contain."""


def _envelope(*items: dict[str, Any] | Reading, **overrides: Any) -> bytes:
    readings = [reading_to_builtins(i) if isinstance(i, Reading) else i for i in items]
    body = {
        "v": 1,
        "gateway_id": "gw1",
        "sent_at": "2026-11-23T08:00:00.000Z",
        "readings": readings,
    }
    body.update(overrides)
    return msgspec.json.encode(body)


def _with_bad(good: Reading, mutate: Callable[[dict[str, Any]], None]) -> bytes:
    bad = reading_to_builtins(good)
    bad["seq"] = (good.seq or 0) + 1_000
    bad["id"] = "00000000-0000-5000-8000-000000000000"
    mutate(bad)
    return _envelope(good, bad)


def _set(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.update(changes)


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.pop(name)


def _implausible(good: Reading, values: Any, unit: Unit, **kw: Any) -> bytes:
    now = datetime.now(UTC)
    bad = new_reading(
        values=values,
        source_unit=unit,
        measured_at=kw.get("measured_at", now - timedelta(minutes=1)),
        received_at=kw.get("received_at", now),
        device_id=GW1_CUFF.device_id,
        patient_id=GW1_CUFF.patient_id,
        gateway_id="gw1",
        seq=kw.get("seq", 99),
    )
    return encode_envelope("gw1", now, [good, bad])


MALFORMED = [
    # The envelope itself: quarantined whole.
    Malformed("not-json", lambda g: b"\x00\x9fnot json", "envelope", "not valid JSON"),
    Malformed("empty", lambda g: b"", "envelope", "$"),
    Malformed("json-array", lambda g: b"[1, 2]", "envelope", "$"),
    Malformed("version-2", lambda g: _envelope(g, v=2), "envelope", "unsupported payload version"),
    Malformed(
        "version-missing", lambda g: msgspec.json.encode({"gateway_id": "gw1"}), "envelope", "$.v"
    ),
    Malformed("no-readings", lambda g: _envelope(), "envelope", "$.readings"),
    Malformed(
        "readings-not-list", lambda g: _envelope(readings={"a": 1}), "envelope", "$.readings"
    ),
    Malformed(
        "sent-at-naive",
        lambda g: _envelope(g, sent_at="2026-11-23T08:00:00"),
        "envelope",
        "$.sent_at",
    ),
    Malformed(
        "gateway-id-unsafe", lambda g: _envelope(g, gateway_id="gw1/#"), "envelope", "$.gateway_id"
    ),
    Malformed("oversize", lambda g: b" " * (MAX_PAYLOAD_BYTES + 1), "envelope", "limit is"),
    # One reading breaks the contract; the good one beside it is stored.
    Malformed(
        "unknown-kind", lambda g: _with_bad(g, _set(kind="ketone")), "contract", "unknown kind"
    ),
    Malformed("values-missing", lambda g: _with_bad(g, _drop("values")), "contract", ".values"),
    Malformed(
        "glucose-negative",
        lambda g: _with_bad(g, _set(values={"glucose": -3})),
        "contract",
        ".values.glucose",
    ),
    Malformed(
        "glucose-text",
        lambda g: _with_bad(g, _set(values={"glucose": "high"})),
        "contract",
        ".values.glucose",
    ),
    Malformed(
        "unit-of-other-kind",
        lambda g: _with_bad(g, _set(source_unit="mm[Hg]")),
        "contract",
        "source_unit",
    ),
    Malformed("id-not-derived", lambda g: _with_bad(g, lambda item: None), "contract", ".id"),
    Malformed(
        "measured-at-naive",
        lambda g: _with_bad(g, _set(measured_at="2026-01-01T00:00:00")),
        "contract",
        ".measured_at",
    ),
    Malformed("unknown-field", lambda g: _with_bad(g, _set(colour="red")), "contract", "colour"),
    Malformed(
        "patient-id-unsafe",
        lambda g: _with_bad(g, _set(patient_id="p/+")),
        "contract",
        ".patient_id",
    ),
    Malformed(
        "flag-not-snake-case",
        lambda g: _with_bad(g, _set(flags=["Bad Flag"])),
        "contract",
        ".flags",
    ),
    Malformed("seq-negative", lambda g: _with_bad(g, _set(seq=-1)), "contract", ".seq"),
    Malformed(
        "reading-names-other-gateway",
        lambda g: _envelope(g, glucose(Binding("gw9", GW1_METER.device_id, "patient-a"), 77)),
        "contract",
        ".gateway_id",
    ),
    # Contract-valid but impossible (CLINICAL.md S4).
    Malformed(
        "systolic-below-diastolic",
        lambda g: _implausible(g, BloodPressureValues(systolic=70, diastolic=95), Unit.MMHG),
        "plausibility",
        "systolic_not_above_diastolic",
    ),
    Malformed(
        "spo2-above-100",
        lambda g: _implausible(g, Spo2Values(spo2=104), Unit.PERCENT),
        "plausibility",
        "spo2_out_of_range",
    ),
    Malformed(
        "glucose-beyond-meters",
        lambda g: _implausible(g, GlucoseValues(glucose=80.0), Unit.MMOL_PER_L),
        "plausibility",
        "glucose_out_of_meter_range",
    ),
    Malformed(
        "measured-next-year",
        lambda g: _implausible(
            g,
            GlucoseValues(glucose=5.0),
            Unit.MMOL_PER_L,
            measured_at=datetime.now(UTC) + timedelta(days=365),
            received_at=datetime.now(UTC) + timedelta(days=365),
        ),
        "plausibility",
        "measured_in_future",
    ),
]


def test_malformed_payloads_are_quarantined_with_their_reason(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_database: str,
    registry_url: str,
    worker: IngestWorker,
) -> None:
    assert len(MALFORMED) >= 20
    goods = [glucose(GW1_METER, seq) for seq in range(len(MALFORMED))]
    with TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway:
        for case, good in zip(MALFORMED, goods, strict=True):
            gateway.publish_raw(case.build(good))
        wait_until(
            lambda: len(quarantine_entries(registry_url)) >= len(MALFORMED), 20, "quarantine"
        )
        after = glucose(GW1_METER, 10_000)
        gateway.send([after])
        gateway.wait_for_acks([after.id])
    assert worker.failed is None
    entries = quarantine_entries(registry_url)
    assert len(entries) == len(MALFORMED), [entry.detail for entry in entries]
    for case, good in zip(MALFORMED, goods, strict=True):
        matching = [
            entry
            for entry in entries
            if entry.reason == case.reason
            and case.detail in entry.detail
            and (case.reason == "envelope" or good.id not in (entry.reading_id,))
        ]
        assert matching, f"{case.name}: no {case.reason} entry mentioning {case.detail!r}"
    envelope_entries = [entry for entry in entries if entry.reason == "envelope"]
    assert all(entry.reading_id is None for entry in envelope_entries)
    assert b"\x00\x9fnot json" in {entry.raw for entry in envelope_entries}
    reading_level = {case.name for case in MALFORMED if case.reason != "envelope"}
    expected_stored = {
        good.id for case, good in zip(MALFORMED, goods, strict=True) if case.name in reading_level
    } | {after.id}
    assert set(influx_ids(influxdb, influx_database)) == expected_stored
    quarantined = worker.metrics.readings_quarantined
    assert quarantined.labels(reason="envelope")._value.get() == len(envelope_entries)
