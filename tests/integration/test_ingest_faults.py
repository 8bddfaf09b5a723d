"""Fault tests of the ingest worker on real services.

* Ingest SIGKILLed mid-stream and restarted — every reading stored, and written no
  more often than it was delivered.
* InfluxDB SIGSTOPped for 60 s under load — nothing acknowledged meanwhile, nothing
  lost afterwards, every reading written once, the backlog metric rises and falls.
* Two workers in one shared-subscription group split the work, each reading written once.
* Readings a gateway does not own are quarantined as security events, once each
  however often they arrive, and counted once when their batch is retried.
* The store refusing a point: the reading is quarantined and the gateway told so.
* Malformed payloads of many kinds are quarantined with their own reason while the good
  readings of the same batch are stored and the worker keeps running.

Stored ids alone cannot show a reading written twice (InfluxDB overwrites a point with
the same series and timestamp), so write counts are asserted instead (see
:mod:`tests.integration.ingest_helpers`).
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

from ingest.config import IngestSettings, load_settings
from ingest.worker import IngestWorker, open_worker
from readings.codec import (
    MAX_PAYLOAD_BYTES,
    decode_envelope,
    encode_envelope,
    encode_reading,
    reading_to_builtins,
)
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
    CountingStore,
    IngestProcess,
    Subscriber,
    TestGateway,
    assert_written_once,
    batches,
    influx_ids,
    influx_points_requested,
    make_readings,
    make_registry,
    open_counted_worker,
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
KILL_RECEIVE_MAXIMUM = 20
"""Receive maximum of the worker that is SIGKILLed: at most this many messages were
delivered and not acknowledged when it died, which bounds what the broker redelivers."""
KILL_READINGS_PER_ENVELOPE = 100
KILL_RESEND_AFTER_SECONDS = 20.0
"""The test gateway re-publishes only what stays unacknowledged this long; the worker's
persistent session brings the rest, so re-publishes stay few and the write bound tight."""


def store_url(influxdb: InfluxDBServer, database: str, **options: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"influxdb-v1://{influxdb.host}:{influxdb.port}/{database}" + (
        f"?{query}" if query else ""
    )


def worker_settings(
    mosquitto: MosquittoServer, store: str, registry_url: str, **extra: object
) -> IngestSettings:
    return load_settings(
        mqtt_url=mosquitto.url,
        store_url=store,
        registry_url=registry_url,
        client_id=extra.pop("client_id", f"ingest-fault-{uuid.uuid4().hex[:8]}"),
        metrics_port=None,
        **extra,
    )


def start_worker(
    mosquitto: MosquittoServer, store: str, registry_url: str, **extra: object
) -> IngestWorker:
    worker = open_worker(worker_settings(mosquitto, store, registry_url, **extra))
    worker.start()
    return worker


def start_counted_worker(
    mosquitto: MosquittoServer, store: str, registry_url: str, **extra: object
) -> tuple[IngestWorker, CountingStore]:
    worker, counting = open_counted_worker(worker_settings(mosquitto, store, registry_url, **extra))
    worker.start()
    return worker, counting


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


# -- SIGKILL mid-stream -----------------------------------------------------------------


def test_ingest_sigkilled_mid_stream_loses_nothing_and_writes_each_delivery_once(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_database: str,
    registry_url: str,
    tmp_path: Path,
) -> None:
    readings = make_readings(GW1_METER, 20_000)
    expected = {reading.id for reading in readings}
    assert len(expected) == len(readings) == 20_000
    envelopes = batches(readings, KILL_READINGS_PER_ENVELOPE)
    config = tmp_path / "ingest.toml"
    config.write_text(
        f"receive_maximum = {KILL_RECEIVE_MAXIMUM}\nbatch_max_messages = {KILL_RECEIVE_MAXIMUM}\n"
    )
    points_before = influx_points_requested(influxdb)
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
            "--config",
            str(config),
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
            gateway.drain(DRAIN_TIMEOUT_SECONDS, resend_after=KILL_RESEND_AFTER_SECONDS)
            assert not gateway.unacked()
        exit_code = ingest.terminate()
    finally:
        ingest.close()
    assert set(influx_ids(influxdb, influx_database)) == expected
    # Each delivery is written at most once: the deliveries are every publish (first
    # sends and re-publishes) plus the broker's redelivery of what the killed worker
    # held unacknowledged (at most the receive maximum).
    written = influx_points_requested(influxdb) - points_before
    deliveries = sum(gateway.published.values())
    redelivered_at_most = KILL_RECEIVE_MAXIMUM * KILL_READINGS_PER_ENVELOPE
    assert deliveries < 2 * len(readings), "re-published too much for the bound to mean much"
    assert len(readings) <= written <= deliveries + redelivered_at_most, (
        f"{written} points written for {deliveries} readings delivered"
    )
    assert exit_code == 0, ingest.log_tail()


# -- InfluxDB stopped under load --------------------------------------------------------


def test_influxdb_paused_for_a_minute_under_load(
    mosquitto: MosquittoServer, influxdb_fresh: InfluxDBServer, registry_url: str
) -> None:
    influxdb_fresh.create_database("vitalgate")
    worker, counting = start_counted_worker(
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
    assert set(influx_ids(influxdb_fresh, "vitalgate")) == sent
    # Retried batches were written once: only the attempt that succeeded wrote them.
    assert len(sent) == sum(gateway.published.values()), "a batch was re-published"
    assert_written_once(counting, sent)
    assert metrics.store_retrying._value.get() == 0


# -- shared subscription ----------------------------------------------------------------


def test_two_workers_in_one_group_split_the_work(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_database: str, registry_url: str
) -> None:
    store = store_url(influxdb, influx_database)
    first, first_store = start_counted_worker(mosquitto, store, registry_url, group="province")
    second, second_store = start_counted_worker(mosquitto, store, registry_url, group="province")
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
    expected = [reading.id for reading in readings]
    assert len(set(expected)) == 6_000
    assert set(influx_ids(influxdb, influx_database)) == set(expected)
    assert not set(first_store.written) & set(second_store.written), "both wrote one reading"
    both = CountingStore(first_store)
    both.written = first_store.written + second_store.written
    assert_written_once(both, expected)


# -- ownership --------------------------------------------------------------------------


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


def test_readings_a_gateway_does_not_own_are_security_events_once_each(
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
    # Older than the binding's history: held for a person to decide, not a security event.
    before_history = glucose(GW1_METER, 5, measured_at=datetime(2020, 1, 1, tzinfo=UTC))
    spoofed = glucose(GW2_METER, 6)  # names gw2 in the payload, sent on gw1's topic
    refused = {
        foreign_device.id: "device_not_paired_to_gateway",
        wrong_patient.id: "wrong_patient",
        unknown_device.id: "unknown_device",
        spoofed.id: "gateway_mismatch",
    }
    assert len(set(refused.values())) == len(refused) == 4
    with (
        Subscriber(mosquitto.host, mosquitto.port, ALL_ACCEPTED_FILTER) as accepted,
        TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway,
    ):
        gateway.send([good, foreign_device, wrong_patient, unknown_device, before_history])
        gateway.send([spoofed], gateway_id="gw2")
        gateway.wait_for_acks([good.id, before_history.id, *refused])
        # The gateway did not get the acks in time and publishes both batches again.
        acks_before = len(gateway.acks)
        for batch in gateway._batches:
            gateway._publish(batch)
        wait_until(lambda: len(gateway.acks) >= acks_before + 2, 10, "the second acks")
        wait_until(lambda: bool(accepted.messages), 10, "accepted/ to carry the good reading")
        time.sleep(0.5)  # anything wrongly republished would have arrived by now

    assert set(influx_ids(influxdb, influx_database)) == {good.id}
    all_entries = quarantine_entries(registry_url)
    assert len(all_entries) == len(refused) + 1, "a redelivery added quarantine entries"
    (held,) = [entry for entry in all_entries if entry.reading_id == before_history.id]
    assert (held.reason, held.security_event) == ("before_binding", False)
    assert held.detail.startswith("$.readings[4].measured_at: measured before the history")
    entries = [entry for entry in all_entries if entry is not held]
    assert {entry.reading_id: entry.detail for entry in entries} == refused
    assert all(entry.reason == "ownership" and entry.security_event for entry in entries)
    by_id = {entry.reading_id: entry for entry in entries}
    assert by_id[wrong_patient.id].gateway_id == "gw1"
    # Every refusal the gateway gets names the check that failed, on both deliveries.
    notices = [notice for ack in gateway.acks for notice in ack.quarantined]
    assert len(notices) == 2 * (len(refused) + 1)
    assert {(notice.id, notice.reason) for notice in notices} == {
        (reading_id, f"ownership: {check}") for reading_id, check in refused.items()
    } | {(before_history.id, f"before_binding: {held.detail}")}
    engine = create_engine_for(registry_url)
    try:
        events = QuarantineStore(engine).recent_security_events(limit=100)
    finally:
        engine.dispose()
    assert sorted((event.reading_id, event.reason) for event in events) == sorted(
        refused.items()
    ), "a redelivery added security events"
    by_reading = {event.reading_id: event for event in events}
    assert by_reading[wrong_patient.id].claimed_patient_id == "patient-b"
    assert by_reading[foreign_device.id].device_id == GW2_METER.device_id
    security = worker.metrics.security_events
    for check in refused.values():
        assert security.labels(reason=check)._value.get() == 1, check
    republished = [r.id for m in accepted.messages for r in decode_envelope(m.payload).readings]
    assert set(republished) == {good.id}


def test_a_security_event_is_counted_once_when_its_batch_is_retried(
    mosquitto: MosquittoServer, influxdb_fresh: InfluxDBServer, registry_url: str
) -> None:
    """The store fails while a batch holds a refused reading: the batch is retried, the
    refusal is counted once."""
    influxdb_fresh.create_database("vitalgate")
    worker = start_worker(
        mosquitto,
        store_url(influxdb_fresh, "vitalgate", timeout=STORE_TIMEOUT_SECONDS),
        registry_url,
    )
    good = glucose(GW1_METER, 1)
    wrong_patient = glucose(GW1_METER, 2, patient_id="patient-b")
    try:
        with TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway:
            influxdb_fresh.pause()
            try:
                gateway.send([good, wrong_patient])
                wait_until(
                    lambda: worker.metrics.store_retries._value.get() >= 2, 30, "two retries"
                )
            finally:
                influxdb_fresh.resume()
            gateway.wait_for_acks([good.id, wrong_patient.id], timeout=30)
    finally:
        worker.close()
    security = worker.metrics.security_events
    assert security.labels(reason="wrong_patient")._value.get() == 1
    assert worker.metrics.readings_quarantined.labels(reason="ownership")._value.get() == 1
    assert len(quarantine_entries(registry_url)) == 1


# -- the store refuses a point ----------------------------------------------------------


def test_a_reading_the_store_refuses_is_quarantined_and_the_gateway_told(
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_database: str,
    registry_url: str,
    worker: IngestWorker,
) -> None:
    """InfluxDB refuses a point (a field type conflict): the reading must be kept in
    quarantine before the gateway is allowed to delete it, and the gateway told why."""
    good = glucose(GW1_METER, 1)
    conflicting = new_reading(
        values=BloodPressureValues(systolic=128, diastolic=84, mean_arterial=98.7),
        source_unit=Unit.MMHG,
        measured_at=good.measured_at,
        received_at=good.received_at,
        device_id=GW1_CUFF.device_id,
        patient_id=GW1_CUFF.patient_id,
        gateway_id="gw1",
        seq=2,
    )
    # Someone wrote mean_arterial as a string into this shard: the float is refused.
    influxdb.write_lines(
        influx_database,
        f'blood_pressure,patient_id=someone,device_id=a-b-c mean_arterial="n/a" '
        f"{int(good.measured_at.timestamp()) * 10**9}",
    )
    with (
        Subscriber(mosquitto.host, mosquitto.port, ALL_ACCEPTED_FILTER) as accepted,
        TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway,
    ):
        gateway.send([good, conflicting])
        gateway.wait_for_acks([good.id, conflicting.id])
        wait_until(lambda: bool(accepted.messages), 10, "accepted/ to carry the good reading")
        time.sleep(0.5)  # anything wrongly republished would have arrived by now

    assert worker.failed is None
    assert set(influx_ids(influxdb, influx_database)) == {good.id}
    entries = quarantine_entries(registry_url)
    assert [(entry.reason, entry.reading_id) for entry in entries] == [
        ("store_rejected", conflicting.id)
    ]
    (entry,) = entries
    assert entry.detail.startswith("$.readings[1]: refused by the store (HTTP 400): ")
    assert "field type conflict" in entry.detail
    assert not entry.security_event
    wrapped = encode_envelope("gw1", datetime.now(UTC), [good])
    assert decode_envelope(wrapped.replace(encode_reading(good), entry.raw)).readings == [
        conflicting
    ], "the quarantine does not hold the refused reading"
    notices = [notice for ack in gateway.acks for notice in ack.quarantined]
    assert [(notice.id, notice.index) for notice in notices] == [(conflicting.id, 1)]
    assert notices[0].reason == f"store_rejected: {entry.detail}"
    republished = [r.id for m in accepted.messages for r in decode_envelope(m.payload).readings]
    assert republished == [good.id]
    assert worker.metrics.readings_quarantined.labels(reason="store_rejected")._value.get() == 1


# -- malformed payloads -----------------------------------------------------------------


@dataclass(frozen=True)
class Malformed:
    """One kind of bad input and what the quarantine must say about it."""

    name: str
    build: Callable[[Reading], bytes]
    """From a good reading: the payload to send (reading-level cases keep the good one)."""
    reason: str
    detail: str
    """How the quarantine entry's detail must begin: specific to this case alone."""


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
        seq=kw.get("seq", (good.seq or 0) + 500),  # its own record: a distinct id
    )
    return encode_envelope("gw1", now, [good, bad])


MALFORMED = [
    # The envelope itself: quarantined whole.
    Malformed(
        "not-json",
        lambda g: b"\x00\x9fnot json",
        "envelope",
        "$: not valid JSON (invalid character",
    ),
    Malformed("empty", lambda g: b"", "envelope", "$: not valid JSON (Input data was truncated)"),
    Malformed("json-array", lambda g: b"[1, 2]", "envelope", "$: expected object, got array"),
    Malformed(
        "version-2", lambda g: _envelope(g, v=2), "envelope", "$.v: unsupported payload version 2"
    ),
    Malformed(
        "version-missing",
        lambda g: msgspec.json.encode({"gateway_id": "gw1"}),
        "envelope",
        "$.v: required field is missing",
    ),
    Malformed(
        "no-readings",
        lambda g: _envelope(),
        "envelope",
        "$.readings: expected array of length >= 1",
    ),
    Malformed(
        "readings-not-list",
        lambda g: _envelope(readings={"a": 1}),
        "envelope",
        "$.readings: expected array, got object",
    ),
    Malformed(
        "sent-at-naive",
        lambda g: _envelope(g, sent_at="2026-11-23T08:00:00"),
        "envelope",
        "$.sent_at: expected datetime with a timezone component",
    ),
    Malformed(
        "gateway-id-unsafe",
        lambda g: _envelope(g, gateway_id="gw1/#"),
        "envelope",
        "$.gateway_id: expected str matching regex",
    ),
    Malformed(
        "oversize",
        lambda g: b" " * (MAX_PAYLOAD_BYTES + 1),
        "envelope",
        f"$: payload is {MAX_PAYLOAD_BYTES + 1} bytes, the limit is {MAX_PAYLOAD_BYTES}",
    ),
    # One reading breaks the contract; the good one beside it is stored.
    Malformed(
        "unknown-kind",
        lambda g: _with_bad(g, _set(kind="ketone")),
        "contract",
        "$.readings[1].kind: unknown kind 'ketone'",
    ),
    Malformed(
        "values-missing",
        lambda g: _with_bad(g, _drop("values")),
        "contract",
        "$.readings[1].values: required field is missing",
    ),
    Malformed(
        "glucose-negative",
        lambda g: _with_bad(g, _set(values={"glucose": -3})),
        "contract",
        "$.readings[1].values.glucose: expected float > 0.0",
    ),
    Malformed(
        "glucose-text",
        lambda g: _with_bad(g, _set(values={"glucose": "high"})),
        "contract",
        "$.readings[1].values.glucose: expected float, got str",
    ),
    Malformed(
        "unit-of-other-kind",
        lambda g: _with_bad(g, _set(source_unit="mm[Hg]")),
        "contract",
        "$.readings[1].source_unit: 'mm[Hg]' is not a unit of glucose",
    ),
    Malformed(
        "id-not-derived",
        lambda g: _with_bad(g, lambda item: None),
        "contract",
        "$.readings[1].id: 00000000-0000-5000-8000-000000000000 is not the id derived",
    ),
    Malformed(
        "measured-at-naive",
        lambda g: _with_bad(g, _set(measured_at="2026-01-01T00:00:00")),
        "contract",
        "$.readings[1].measured_at: expected datetime with a timezone component",
    ),
    Malformed(
        "unknown-field",
        lambda g: _with_bad(g, _set(colour="red")),
        "contract",
        "$.readings[1].colour: unknown field",
    ),
    Malformed(
        "patient-id-unsafe",
        lambda g: _with_bad(g, _set(patient_id="p/+")),
        "contract",
        "$.readings[1].patient_id: expected str matching regex",
    ),
    Malformed(
        "flag-not-snake-case",
        lambda g: _with_bad(g, _set(flags=["Bad Flag"])),
        "contract",
        "$.readings[1].flags[0]: expected str matching regex",
    ),
    Malformed(
        "seq-negative",
        lambda g: _with_bad(g, _set(seq=-1)),
        "contract",
        "$.readings[1].seq: expected int >= 0",
    ),
    Malformed(
        "reading-names-other-gateway",
        lambda g: _envelope(g, glucose(Binding("gw9", GW1_METER.device_id, "patient-a"), 77)),
        "contract",
        "$.readings[1].gateway_id: 'gw9' differs from the envelope's gateway_id 'gw1'",
    ),
    # Contract-valid but impossible: the plausibility rule, at the field's envelope path.
    Malformed(
        "systolic-below-diastolic",
        lambda g: _implausible(g, BloodPressureValues(systolic=70, diastolic=95), Unit.MMHG),
        "plausibility",
        "$.readings[1].values.systolic: systolic_not_above_diastolic: ",
    ),
    Malformed(
        "spo2-above-100",
        lambda g: _implausible(g, Spo2Values(spo2=104), Unit.PERCENT),
        "plausibility",
        "$.readings[1].values.spo2: spo2_out_of_range: ",
    ),
    Malformed(
        "glucose-beyond-meters",
        lambda g: _implausible(g, GlucoseValues(glucose=80.0), Unit.MMOL_PER_L),
        "plausibility",
        "$.readings[1].values.glucose: glucose_out_of_meter_range: ",
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
        "$.readings[1].measured_at: measured_in_future: ",
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
    # Each expectation must single out its own case: no two of one reason overlap.
    for case in MALFORMED:
        for other in MALFORMED:
            if other is not case and other.reason == case.reason:
                assert not other.detail.startswith(case.detail), (case.name, other.name)
    goods = [glucose(GW1_METER, seq) for seq in range(len(MALFORMED))]
    payloads = [case.build(good) for case, good in zip(MALFORMED, goods, strict=True)]
    assert len(set(payloads)) == len(payloads)
    with TestGateway(mosquitto.host, mosquitto.port, "gw1") as gateway:
        for payload in payloads:
            gateway.publish_raw(payload)
        wait_until(
            lambda: len(quarantine_entries(registry_url)) >= len(MALFORMED), 20, "quarantine"
        )
        after = glucose(GW1_METER, 10_000)
        gateway.send([after])
        gateway.wait_for_acks([after.id])
    assert worker.failed is None
    entries = quarantine_entries(registry_url)
    assert len(entries) == len(MALFORMED), [entry.detail for entry in entries]
    notices = {notice.reason for ack in gateway.acks for notice in ack.quarantined}
    for case, good, payload in zip(MALFORMED, goods, payloads, strict=True):
        matching = [
            entry
            for entry in entries
            if entry.reason == case.reason and entry.detail.startswith(case.detail)
        ]
        assert len(matching) == 1, f"{case.name}: {len(matching)} entries match {case.detail!r}"
        (entry,) = matching
        if case.reason == "envelope":
            assert entry.raw == payload, case.name
            assert entry.reading_id is None, case.name
        else:
            assert entry.reading_id != good.id, case.name
            assert f"{case.reason}: {entry.detail}" in notices, f"{case.name}: gateway not told"
    reading_level = {case.name for case in MALFORMED if case.reason != "envelope"}
    expected_stored = {
        good.id for case, good in zip(MALFORMED, goods, strict=True) if case.name in reading_level
    } | {after.id}
    assert set(influx_ids(influxdb, influx_database)) == expected_stored
    envelope_cases = sum(case.reason == "envelope" for case in MALFORMED)
    quarantined = worker.metrics.readings_quarantined
    assert quarantined.labels(reason="envelope")._value.get() == envelope_cases
