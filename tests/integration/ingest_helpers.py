"""Shared pieces of the ingest integration and fault tests.

* :func:`make_registry` — a migrated SQLite registry with gateways, patients and bindings;
* :func:`make_readings` — valid readings of one device;
* :class:`TestGateway` — a paho MQTT 5 publisher that behaves like the gateway's outbox:
  it keeps every batch until ingest acknowledges its ids end to end and re-publishes the
  unacknowledged ones;
* :class:`IngestProcess` — ``python -m vitalgate ingest run`` as a subprocess;
* :func:`influx_ids` — every reading id stored in an InfluxDB database;
* :class:`CountingStore` and :func:`open_counted_worker` — an in-process worker whose
  store counts how often each reading was written;
* :func:`influx_points_requested` — how many points InfluxDB was asked to write.

Why count writes: InfluxDB keeps one point per series and timestamp, so a reading
written twice is stored once, and the stored ids cannot tell "written once" from
"written on every delivery". Exactly-once claims are checked on the write counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.config import IngestSettings
from ingest.stores import open_store
from ingest.stores.base import ReadingStore, WriteResult
from ingest.worker import IngestWorker
from readings.codec import AckMessage, decode_message, encode_envelope
from readings.model import GlucoseValues, Kind, Reading, new_reading
from readings.topics import ack_topic, readings_topic
from readings.units import Unit
from registry.db import check_schema, create_engine_for, session_scope, upgrade
from registry.ownership import OwnershipChecker
from registry.quarantine import QuarantineStore
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.harness.services import InfluxDBServer

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENT_TIMEOUT_SECONDS = 10.0
INGEST_START_TIMEOUT_SECONDS = 30.0
INGEST_STOP_TIMEOUT_SECONDS = 30.0
RESEND_AFTER_SECONDS = 3.0
"""How long the test gateway waits for an end-to-end ack before publishing a batch again
(the real gateway's timeout is longer; a short one keeps the fault tests fast)."""
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Binding:
    """One device bound to a patient through a gateway."""

    gateway_id: str
    device_id: str
    patient_id: str


def make_registry(path: Path, bindings: Iterable[Binding]) -> str:
    """A migrated SQLite registry at ``path`` holding ``bindings`` (bound a day ago, with
    60 days of stored history)."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = create_engine_for(url)
    bound_at = datetime.now(UTC) - timedelta(days=1)
    try:
        with session_scope(engine) as session:
            gateways, patients = GatewayRepository(session), PatientRepository(session)
            seen_gateways: set[str] = set()
            seen_patients: set[str] = set()
            for binding in bindings:
                if binding.gateway_id not in seen_gateways:
                    gateways.add(binding.gateway_id)
                    seen_gateways.add(binding.gateway_id)
                if binding.patient_id not in seen_patients:
                    patients.add(binding.patient_id)
                    seen_patients.add(binding.patient_id)
                # The test meters' memory is their patients' own, back 60 days (the
                # throughput tests send up to 50,000 readings, one a minute, ending now).
                DeviceRepository(session).bind(
                    binding.device_id,
                    binding.gateway_id,
                    binding.patient_id,
                    at=bound_at,
                    history_since=bound_at - timedelta(days=60),
                )
    finally:
        engine.dispose()
    return url


def make_readings(
    binding: Binding, count: int, *, first_seq: int = 0, gateway_id: str | None = None
) -> list[Reading]:
    """``count`` glucose readings of ``binding``'s device, one a minute, ending an hour ago."""
    received_at = datetime.now(UTC).replace(microsecond=0)
    start = received_at - timedelta(hours=1, minutes=count)
    return [
        new_reading(
            values=GlucoseValues(glucose=4.0 + (seq % 60) / 10),
            source_unit=Unit.MMOL_PER_L,
            measured_at=start + timedelta(minutes=index),
            device_time=(start + timedelta(minutes=index)).replace(tzinfo=None),
            received_at=received_at,
            device_id=binding.device_id,
            patient_id=binding.patient_id,
            gateway_id=gateway_id or binding.gateway_id,
            seq=seq,
        )
        for index, seq in enumerate(range(first_seq, first_seq + count))
    ]


def batches(readings: Sequence[Reading], size: int) -> list[list[Reading]]:
    """``readings`` cut into lists of at most ``size``."""
    return [list(readings[start : start + size]) for start in range(0, len(readings), size)]


@dataclass
class _Batch:
    payload: bytes
    ids: frozenset[str]
    sent_at: float = 0.0


@dataclass
class TestGateway:
    """A gateway stand-in: publishes batches on its readings topic, keeps them until acked.

    Args:
        host, port: the broker.
        gateway_id: also the MQTT username when ``password`` is given.
    """

    __test__ = False  # not a test class, despite the name

    host: str
    port: int
    gateway_id: str
    password: str | None = None
    protocol: MQTTProtocolVersion = mqtt.MQTTv5
    acks: list[AckMessage] = field(default_factory=list)
    acked_ids: set[str] = field(default_factory=set)
    published: Counter[str] = field(default_factory=Counter)
    """How often each reading id was published (first sends and re-publishes)."""
    _batches: list[_Batch] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{self.gateway_id}-{uuid.uuid4().hex[:8]}",
            protocol=self.protocol,
        )
        if self.password is not None:
            self.client.username_pw_set(self.gateway_id, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)

    def __enter__(self) -> TestGateway:
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        assert self._subscribed.wait(EVENT_TIMEOUT_SECONDS), "no SUBACK for the ack topic"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(ack_topic(self.gateway_id), qos=1)

    def _on_subscribe(self, client: mqtt.Client, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        ack = decode_message(bytes(message.payload), AckMessage)
        with self._lock:
            self.acks.append(ack)
            self.acked_ids.update(ack.ids)

    def publish_raw(self, payload: bytes, topic: str | None = None) -> None:
        """Publish a payload as is (QoS 1) and wait for the broker's PUBACK."""
        info = self.client.publish(topic or readings_topic(self.gateway_id), payload, qos=1)
        info.wait_for_publish(EVENT_TIMEOUT_SECONDS)

    def send(self, readings: Sequence[Reading], *, gateway_id: str | None = None) -> None:
        """Publish one envelope of ``readings`` and keep it until all its ids are acked."""
        payload = encode_envelope(gateway_id or self.gateway_id, datetime.now(UTC), readings)
        batch = _Batch(payload, frozenset(reading.id for reading in readings))
        with self._lock:
            self._batches.append(batch)
        self._publish(batch)

    def _publish(self, batch: _Batch) -> None:
        batch.sent_at = time.monotonic()
        with self._lock:
            self.published.update(batch.ids)
        self.client.publish(readings_topic(self.gateway_id), batch.payload, qos=1)

    def unacked(self) -> list[_Batch]:
        with self._lock:
            return [batch for batch in self._batches if not batch.ids <= self.acked_ids]

    def drain(self, timeout: float, *, resend_after: float = RESEND_AFTER_SECONDS) -> None:
        """Re-publish unacknowledged batches until every id is acked (the outbox empties)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.unacked()
            if not pending:
                return
            if time.monotonic() > deadline:
                missing = sum(len(batch.ids - self.acked_ids) for batch in pending)
                raise AssertionError(f"{missing} readings still unacknowledged after {timeout} s")
            now = time.monotonic()
            for batch in pending:
                if now - batch.sent_at > resend_after:
                    self._publish(batch)
            time.sleep(POLL_SECONDS * 4)

    def wait_for_acks(self, ids: Iterable[str], timeout: float = EVENT_TIMEOUT_SECONDS) -> None:
        """Wait until every id in ``ids`` was acknowledged end to end."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while not wanted <= self.acked_ids:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(wanted - self.acked_ids)} ids not acked in {timeout} s")
            time.sleep(POLL_SECONDS)


class Subscriber:
    """Collects every message on ``topic_filter`` (QoS 1) for later inspection."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._topic_filter = topic_filter
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda client, *args: client.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self._host, self._port = host, port

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def __enter__(self) -> Subscriber:
        self.client.connect(self._host, self._port)
        self.client.loop_start()
        assert self._subscribed.wait(EVENT_TIMEOUT_SECONDS)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def influx_ids(server: InfluxDBServer, database: str, kinds: Iterable[Kind] = Kind) -> list[str]:
    """Every stored reading id, one entry per InfluxDB point (so duplicates would show)."""
    ids: list[str] = []
    for kind in kinds:
        rows = server.series_values(database, f'SELECT "id" FROM "{kind.value}"')
        ids += [row[1] for row in rows]
    return ids


def influx_points_requested(server: InfluxDBServer) -> int:
    """Points this InfluxDB was asked to write since it started, repeats included
    (``SHOW STATS`` ``write.pointReq``: every point of every write request it received)."""
    result = server.query(None, "SHOW STATS FOR 'write'")["results"][0]
    (series,) = result["series"]
    return int(series["values"][0][series["columns"].index("pointReq")])


class CountingStore:
    """A real reading store that counts, per reading id, the writes it took.

    Only writes the store confirmed count (a write that failed is retried and counted
    when it succeeds), so "written once" means one confirmed write per id.
    """

    def __init__(self, store: ReadingStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.written: Counter[str] = Counter()
        """Confirmed writes per reading id."""

    def write(self, readings: Sequence[Reading]) -> WriteResult:
        result = self._store.write(readings)
        with self._lock:
            self.written.update(result.stored)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def open_counted_worker(settings: IngestSettings) -> tuple[IngestWorker, CountingStore]:
    """What :func:`ingest.worker.open_worker` opens, with the store wrapped to count writes."""
    engine = create_engine_for(settings.registry_url)
    check_schema(engine)
    store = CountingStore(open_store(settings.store_url))
    worker = IngestWorker(
        settings,
        store=store,
        ownership=OwnershipChecker(engine),
        quarantine=QuarantineStore(engine),
        on_close=(store.close, engine.dispose),
    )
    return worker, store


def assert_written_once(store: CountingStore, expected: Iterable[str]) -> None:
    """Every expected id was written exactly once, and nothing else was written."""
    wanted = list(expected)
    assert len(wanted) == len(set(wanted)), "the expected ids are not unique"
    repeats = {reading_id: n for reading_id, n in store.written.items() if n != 1}
    assert not repeats, f"{len(repeats)} readings written more than once"
    assert set(store.written) == set(wanted)


def scrape(url: str) -> dict[str, float]:
    """A Prometheus text endpoint as ``{"name{labels}": value}``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=EVENT_TIMEOUT_SECONDS) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class IngestProcess:
    """``python -m vitalgate ingest run …`` in its own process group."""

    def __init__(self, workdir: Path, args: Sequence[str]) -> None:
        self.workdir = workdir
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.listening: dict[str, Any] = {}
        self.log_path = workdir / "ingest.log"
        self._starts = 0

    def start(self) -> None:
        """Start it and wait for its "listening" line."""
        self._starts += 1
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("VITALGATE_INGEST_")}
        stdout_path = self.workdir / f"ingest-{self._starts}.out"
        with stdout_path.open("wb") as stdout, self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vitalgate", "ingest", "run", *self.args],
                stdout=stdout,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + INGEST_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            text = stdout_path.read_text()
            if text.strip():
                self.listening = json.loads(text.splitlines()[0])
                return
            if self.process.poll() is not None:
                break
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"ingest did not start:\n{self.log_tail()}")

    @property
    def metrics_url(self) -> str:
        return str(self.listening["metrics_url"])

    def kill(self) -> None:
        """SIGKILL: no batch finished, nothing flushed."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(INGEST_STOP_TIMEOUT_SECONDS)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"
