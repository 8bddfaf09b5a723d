"""Ingest benchmark: VitalGate's ingest against the raw capacity of its broker and its store.

Run from the repository root::

    python bench/bench_ingest.py            # 200,000 readings, 3 repetitions (≈ 5-8 min on 2 cores)
    python bench/bench_ingest.py --quick    # smoke run, well under a minute

Everything runs on this machine, in one run, against real servers started for the run
(the test harness's ``MosquittoServer`` and ``InfluxDBServer``: free loopback ports,
temporary directories, ``max_queued_messages`` raised so nothing is dropped):

(a) **Broker raw capacity.** The very envelopes of (c), one per line, published with
    ``mosquitto_pub -q 1 -l`` and received by ``mosquitto_sub -q 1 -C <count>`` (a
    persistent session created first, so nothing is missed): messages/s from the start of
    the publisher until the subscriber has them all. The set is cycled until at least
    ``--broker-messages`` messages, and every publisher is fed fewer than 65,535 lines
    (``mosquitto_pub -l`` at QoS 1 stops early beyond that: docs/gateway-runtime.md).
(b) **InfluxDB raw write capacity.** The very points of (c), encoded beforehand with
    ``ingest.stores.points.to_line`` (what ingest writes) and posted to ``/write`` in
    batches of the store's request size over one keep-alive connection (the ingest
    worker writes sequentially over one connection too), and over two at once.
(c) **Ingest end to end.** ``python -m vitalgate ingest run`` as one or two subprocesses
    (two = one shared-subscription group) on a fresh broker and a fresh database. A paho
    client publishes the envelopes (QoS 1, several gateways, interleaved) as fast as the
    broker takes them; another waits for the end-to-end acknowledgements on
    ``vitalgate/v1/gw/+/ack``: readings/s from the first publish until every reading is
    acknowledged (= stored in InfluxDB). The count in InfluxDB is checked afterwards.
    Latency: the same at a paced rate (default 1,000 readings/s for 20 s), per envelope
    publish → end-to-end ack, p50/p99, for two envelope shapes.

Each repetition runs (a), (b), (c) one after the other, so every ratio compares figures
measured minutes apart on the same machine; medians and min–max over ``--repeat``
repetitions are printed as a markdown table, with the CPU each process used during (c).
``--profile`` (on by default when ``py-spy`` is installed) samples one more one-worker run
with py-spy and prints where the worker's time goes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import paho.mqtt  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from ingest.stores._influx_write import MAX_POINTS_PER_REQUEST  # noqa: E402
from ingest.stores.points import to_line  # noqa: E402
from readings import (  # noqa: E402
    AckMessage,
    BloodPressureValues,
    BodyTemperatureValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    decode_message,
    encode_reading,
    new_reading,
)
from readings.codec import MAX_READINGS_PER_ENVELOPE, encode_envelope_from_encoded  # noqa: E402
from readings.identity import device_identity  # noqa: E402
from readings.topics import ack_topic, readings_topic  # noqa: E402
from readings.units import Unit  # noqa: E402
from registry.db import create_engine_for, session_scope, upgrade  # noqa: E402
from registry.repositories import (  # noqa: E402
    DeviceRepository,
    GatewayRepository,
    PatientRepository,
)
from tests.harness.services import InfluxDBServer, MosquittoServer  # noqa: E402

# -- sizes -------------------------------------------------------------------------------

DEFAULT_READINGS: Final = 200_000
"""Large enough that worker start-up and the first batch are noise (several seconds of
steady state per run), small enough for 3 repetitions of everything in under 10 minutes."""
DEFAULT_BATCH_READINGS: Final = 200
"""Readings per envelope in the throughput runs: a gateway draining a backlog."""
DEFAULT_GATEWAYS: Final = 50
"""50 gateways × 5 devices: 250 InfluxDB series, the low-cardinality shape of the schema."""
DEFAULT_REPETITIONS: Final = 3
DEFAULT_BROKER_MESSAGES: Final = 5000
"""(a) needs about a second of traffic to be more than start-up noise; 5000 envelopes of
200 readings (≈ 350 MB) take 0.5–1.5 s here."""
DEFAULT_LATENCY_RATE_PER_SECOND: Final = 1000
DEFAULT_LATENCY_SECONDS: Final = 20.0
DEFAULT_LATENCY_BATCHES: Final = (10, 100)
"""Envelope shapes for the latency run: 100 envelopes/s of 10 readings (many small
gateways) and 10 envelopes/s of 100 (few busy ones), both 1,000 readings/s."""
QUICK: Final = {
    "readings": 20_000,
    "repeat": 1,
    "broker_messages": 1000,
    "latency_seconds": 5.0,
}

DEVICES_PER_GATEWAY: Final = 5
MEASUREMENT_INTERVAL_SECONDS: Final = 60
"""Spacing of one device's readings: every reading gets its own measured_at."""
HISTORY_DAYS: Final = 30
"""Readings are measured from 30 days ago on: inside the ownership backfill window (90 days
before the pairing) and never in the future (plausibility refuses that)."""
WARMUP_SEQ_OFFSET: Final = 10_000_000
"""Sequence numbers of the warm-up readings: far above any dataset reading's."""

# -- timing ------------------------------------------------------------------------------

PUBLISH_WINDOW_MESSAGES: Final = 20
"""Envelopes in flight from the bench publisher: paho's default in-flight limit. A larger
window makes paho slower (it rescans its queue per PUBACK, docs/gateway-runtime.md)."""
MOSQUITTO_PUB_MAX_INFLIGHT: Final = 100
"""``mosquitto_pub -M``: fastest of 20/100/1000 for 70 KB envelopes on this machine."""
MOSQUITTO_PUB_MAX_LINES: Final = 60_000
"""Below 65,535: ``mosquitto_pub -l`` at QoS 1 stops early when its message ids wrap."""
WORKER_START_TIMEOUT_SECONDS: Final = 60.0
WORKER_STOP_TIMEOUT_SECONDS: Final = 40.0
"""Above the worker's own 30 s shutdown grace."""
WARMUP_TIMEOUT_SECONDS: Final = 30.0
WARMUP_ROUNDS: Final = 5
MIN_RUN_TIMEOUT_SECONDS: Final = 120.0
MIN_READINGS_PER_SECOND_BEFORE_TIMEOUT: Final = 1000
"""A run is abandoned once it is slower than this: something is broken, not slow."""
SUBSCRIBE_SETTLE_SECONDS: Final = 0.3
"""Lets ``mosquitto_sub`` reconnect before the publisher starts (it has a persistent
session, so a late start loses nothing; it only adds queued delivery to the figure)."""
HTTP_TIMEOUT_SECONDS: Final = 60.0
PROFILE_RATE_HZ: Final = 100

CLOCK_TICKS_PER_SECOND: Final = os.sysconf("SC_CLK_TCK")
MEASUREMENTS: Final = ("glucose", "blood_pressure", "spo2", "weight", "body_temperature")


class BenchError(RuntimeError):
    """A measurement could not be made (a server or worker failed, data went missing)."""


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """One readings message as a gateway publishes it."""

    gateway_id: str
    topic: str
    payload: bytes
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GatewaySetup:
    """A gateway, its patient and its devices, as registered in the registry."""

    gateway_id: str
    patient_id: str
    device_ids: tuple[str, ...]


@dataclass(slots=True)
class Dataset:
    """Readings per gateway (encoded once) and their line protocol."""

    gateways: list[GatewaySetup]
    paired_at: datetime
    encoded: dict[str, list[bytes]]
    ids: dict[str, list[str]]
    lines: list[str]
    warmup: list[Envelope]
    reading_bytes: int

    @property
    def size(self) -> int:
        return len(self.lines)

    def envelopes(self, batch: int, limit: int | None = None) -> list[Envelope]:
        """Envelopes of ``batch`` readings, gateways interleaved, of at most ``limit`` readings."""
        sent_at = datetime.now(UTC)
        per_gateway: list[list[Envelope]] = []
        quota = None if limit is None else math.ceil(limit / len(self.gateways))
        for gateway in self.gateways:
            encoded = self.encoded[gateway.gateway_id][:quota]
            ids = self.ids[gateway.gateway_id][:quota]
            topic = readings_topic(gateway.gateway_id)
            per_gateway.append(
                [
                    Envelope(
                        gateway.gateway_id,
                        topic,
                        encode_envelope_from_encoded(
                            gateway.gateway_id, sent_at, encoded[start : start + batch]
                        ),
                        tuple(ids[start : start + batch]),
                    )
                    for start in range(0, len(encoded), batch)
                ]
            )
        interleaved: list[Envelope] = []
        for round_ in range(max(len(envelopes) for envelopes in per_gateway)):
            interleaved.extend(envs[round_] for envs in per_gateway if round_ < len(envs))
        return interleaved


def _values(kind_index: int, n: int) -> tuple[Values, Unit, dict[str, str] | None]:
    """Plausible values of the device kind ``kind_index`` for its ``n``-th reading."""
    if kind_index == 0:
        meal = "before_meal" if n % 2 else "after_meal"
        return GlucoseValues(glucose=4.0 + (n % 80) / 10), Unit.MMOL_PER_L, {"meal": meal}
    if kind_index == 1:
        systolic = 110.0 + n % 40
        return (
            BloodPressureValues(
                systolic=systolic, diastolic=75.0, mean_arterial=93.0, pulse=60.0 + n % 30
            ),
            Unit.MMHG,
            None,
        )
    if kind_index == 2:
        return Spo2Values(spo2=94.0 + n % 6, pulse=65.0 + n % 20), Unit.PERCENT, None
    if kind_index == 3:
        return WeightValues(weight=60.0 + (n % 200) / 10, bmi=23.4), Unit.KG, None
    return BodyTemperatureValues(temperature=36.2 + (n % 10) / 10), Unit.CELSIUS, None


DEVICE_MODELS: Final = ("Glucose", "BPCuff", "Oximeter", "Scale", "Thermometer")


def _reading(gateway: GatewaySetup, device: int, n: int, seq: int, base: datetime) -> Reading:
    values, unit, context = _values(device, n)
    measured_at = base + timedelta(seconds=MEASUREMENT_INTERVAL_SECONDS * (n + 1))
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=measured_at,
        received_at=base + timedelta(days=HISTORY_DAYS),
        device_id=gateway.device_ids[device],
        patient_id=gateway.patient_id,
        gateway_id=gateway.gateway_id,
        device_time=(measured_at + timedelta(hours=8)).replace(tzinfo=None),
        context=context,
        seq=seq,
    )


def generate_dataset(readings: int, gateways: int) -> Dataset:
    """``readings`` readings spread evenly over ``gateways`` gateways of 5 devices each."""
    now = datetime.now(UTC).replace(microsecond=0)
    base = now - timedelta(days=HISTORY_DAYS)
    setups = [
        GatewaySetup(
            gateway_id=f"bench-gw-{index:03d}",
            patient_id=f"bench-p-{index:03d}",
            device_ids=tuple(
                device_identity("BenchCo", model, f"GW{index:03d}") for model in DEVICE_MODELS
            ),
        )
        for index in range(gateways)
    ]
    encoded: dict[str, list[bytes]] = {setup.gateway_id: [] for setup in setups}
    ids: dict[str, list[str]] = {setup.gateway_id: [] for setup in setups}
    lines: list[str] = []
    total_bytes = 0
    for index in range(readings):
        setup = setups[index % gateways]
        n = index // gateways
        device = n % DEVICES_PER_GATEWAY
        reading = _reading(setup, device, n // DEVICES_PER_GATEWAY, n, base)
        data = encode_reading(reading)
        total_bytes += len(data)
        encoded[setup.gateway_id].append(data)
        ids[setup.gateway_id].append(reading.id)
        lines.append(to_line(reading))
    sent_at = datetime.now(UTC)
    warmup = []
    for setup in setups:
        batch = [
            _reading(setup, device, 0, WARMUP_SEQ_OFFSET + device, base)
            for device in range(DEVICES_PER_GATEWAY)
        ]
        payload = encode_envelope_from_encoded(
            setup.gateway_id, sent_at, [encode_reading(reading) for reading in batch]
        )
        warmup.append(
            Envelope(
                setup.gateway_id,
                readings_topic(setup.gateway_id),
                payload,
                tuple(reading.id for reading in batch),
            )
        )
    return Dataset(
        gateways=setups,
        paired_at=base - timedelta(minutes=1),
        encoded=encoded,
        ids=ids,
        lines=lines,
        warmup=warmup,
        reading_bytes=round(total_bytes / max(readings, 1)),
    )


def register(registry_url: str, dataset: Dataset) -> None:
    """Gateways, patients and device pairings in a fresh registry: what ingest checks."""
    upgrade(registry_url)
    engine = create_engine_for(registry_url)
    try:
        with session_scope(engine) as session:
            gateways = GatewayRepository(session)
            patients = PatientRepository(session)
            devices = DeviceRepository(session)
            for setup in dataset.gateways:
                gateways.add(setup.gateway_id, label="bench")
                patients.add(setup.patient_id)
                for device_id in setup.device_ids:
                    devices.bind(
                        device_id, setup.gateway_id, setup.patient_id, at=dataset.paired_at
                    )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------
# CPU accounting
# ---------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # Fields after the command name start at field 3 (state); utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (for the foreign-load figure)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / CLOCK_TICKS_PER_SECOND


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by named processes between :meth:`start` and :meth:`stop`."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        sample["bench (publisher + ack reader)"] = self_cpu_seconds()
        sample["machine"] = machine_busy_seconds()
        return sample

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> None:
        after = self._sample()
        self.used = {name: after[name] - self.before[name] for name in after}
        ours = sum(value for name, value in self.used.items() if name != "machine")
        self.used["other processes"] = max(self.used.pop("machine") - ours, 0.0)


# ---------------------------------------------------------------------------------------
# (a) broker raw capacity
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerResult:
    messages: int
    seconds: float
    payload_bytes: int
    readings: int
    broker_cpu_seconds: float
    clients_cpu_seconds: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def readings_per_second(self) -> float:
        return self.readings / self.seconds


def measure_broker(
    broker: MosquittoServer, envelopes: Sequence[Envelope], minimum: int, tag: str
) -> BrokerResult:
    """(a): the envelopes through ``mosquitto_pub -l`` → Mosquitto → ``mosquitto_sub``."""
    cycles = max(1, math.ceil(minimum / len(envelopes)))
    stream = [envelope for _ in range(cycles) for envelope in envelopes]
    total = len(stream)
    topic_filter = "vitalgate/v1/gw/+/readings"
    # All lines go to one gateway's topic: mosquitto_pub -l publishes to one topic.
    topic = envelopes[0].topic
    common = ["-h", broker.host, "-p", str(broker.port), "-q", "1"]
    client_id = f"bench-raw-sub-{tag}"
    subscribe = [*common, "-c", "-i", client_id, "-t", topic_filter]
    # Create the persistent session first, so the subscriber misses nothing.
    subprocess.run(["mosquitto_sub", *subscribe, "-E"], check=True, timeout=30)
    children_before = children_cpu_seconds()
    subscriber = subprocess.Popen(
        ["mosquitto_sub", *subscribe, "-C", str(total)], stdout=subprocess.DEVNULL
    )
    time.sleep(SUBSCRIBE_SETTLE_SECONDS)
    broker_before = process_cpu_seconds(_pid(broker))
    started = time.perf_counter()
    for first in range(0, total, MOSQUITTO_PUB_MAX_LINES):
        chunk = stream[first : first + MOSQUITTO_PUB_MAX_LINES]
        publisher = subprocess.Popen(
            [
                "mosquitto_pub",
                *common,
                "-t",
                topic,
                "-l",
                "-M",
                str(MOSQUITTO_PUB_MAX_INFLIGHT),
            ],
            stdin=subprocess.PIPE,
        )
        assert publisher.stdin is not None
        for envelope in chunk:
            publisher.stdin.write(envelope.payload + b"\n")
        publisher.stdin.close()
        if publisher.wait(timeout=600) != 0:
            raise BenchError(f"mosquitto_pub exited with {publisher.returncode}")
    try:
        subscriber.wait(timeout=600)
    except subprocess.TimeoutExpired:
        subscriber.kill()
        raise BenchError("mosquitto_sub did not receive every message") from None
    seconds = time.perf_counter() - started
    broker_cpu = process_cpu_seconds(_pid(broker)) - broker_before
    return BrokerResult(
        messages=total,
        seconds=seconds,
        payload_bytes=sum(len(envelope.payload) for envelope in stream),
        readings=sum(len(envelope.ids) for envelope in stream),
        broker_cpu_seconds=broker_cpu,
        clients_cpu_seconds=children_cpu_seconds() - children_before,
    )


def _pid(service: MosquittoServer | InfluxDBServer) -> int:
    pid = service.pid
    if pid is None:
        raise BenchError(f"{service.describe()} is not running")
    return pid


# ---------------------------------------------------------------------------------------
# (b) InfluxDB raw write capacity
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InfluxResult:
    points: int
    seconds: float
    connections: int
    influxd_cpu_seconds: float

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds


def _post_all(influx: InfluxDBServer, db: str, bodies: Sequence[bytes]) -> None:
    connection = http.client.HTTPConnection(influx.host, influx.port, timeout=HTTP_TIMEOUT_SECONDS)
    path = f"/write?db={db}&precision=ns"
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    try:
        for body in bodies:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 204:
                raise BenchError(f"InfluxDB /write answered {response.status}: {answer[:300]!r}")
    finally:
        connection.close()


def measure_influx(
    influx: InfluxDBServer, lines: Sequence[str], batch: int, connections: int, db: str
) -> InfluxResult:
    """(b): pre-encoded line protocol posted in batches over ``connections`` connections."""
    bodies = ["\n".join(lines[i : i + batch]).encode() for i in range(0, len(lines), batch)]
    influx.create_database(db)
    shares = [bodies[i::connections] for i in range(connections)]
    errors: list[BaseException] = []

    def post(share: Sequence[bytes]) -> None:
        try:
            _post_all(influx, db, share)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(share,)) for share in shares]
    cpu_before = process_cpu_seconds(_pid(influx))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = process_cpu_seconds(_pid(influx)) - cpu_before
    if errors:
        raise BenchError(f"raw write failed: {errors[0]}") from errors[0]
    stored = count_points(influx, db)
    influx.drop_database(db)
    if stored != len(lines):
        raise BenchError(f"raw write: {stored} points stored of {len(lines)}")
    return InfluxResult(len(lines), seconds, connections, cpu)


def count_points(influx: InfluxDBServer, db: str) -> int:
    """Points in ``db`` over the reading measurements."""
    sources = ",".join(f'"{name}"' for name in MEASUREMENTS)
    rows = influx.series_values(db, f'SELECT count("id") FROM {sources}', epoch=None)
    return sum(int(row[1]) for row in rows)


# ---------------------------------------------------------------------------------------
# (c) ingest end to end
# ---------------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → metric name (labels dropped, values summed) → value."""
    totals: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            totals[sample.split("{", 1)[0]] += float(value)
    return dict(totals)


class WorkerProcess:
    """``python -m vitalgate ingest run …`` as a subprocess (the real thing)."""

    def __init__(self, workdir: Path, name: str, args: Sequence[str]) -> None:
        self.name = name
        self.args = list(args)
        self.stdout_path = workdir / f"{name}.out"
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VITALGATE_INGEST_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        with self.stdout_path.open("wb") as stdout, self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vitalgate", "ingest", "run", *self.args],
                stdout=stdout,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )

    def wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text()
            if text.strip():
                self.metrics_url = str(json.loads(text.splitlines()[0])["metrics_url"])
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not start:\n{self.log_tail()}")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return parse_metrics(response.read().decode())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(WORKER_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


class AckTracker:
    """Which envelopes are fully acknowledged end to end, and when."""

    def __init__(self, envelopes: Sequence[Envelope]) -> None:
        self._lock = threading.Lock()
        self._envelope_of = {rid: index for index, env in enumerate(envelopes) for rid in env.ids}
        self._remaining = [len(env.ids) for env in envelopes]
        self.acked_at: list[float | None] = [None] * len(envelopes)
        self.outstanding = len(envelopes)
        self.quarantined = 0
        self.done = threading.Event()
        if not envelopes:
            self.done.set()

    def on_ack(self, ack: AckMessage, at: float) -> None:
        with self._lock:
            self.quarantined += len(ack.quarantined)
            for reading_id in ack.ids:
                index = self._envelope_of.pop(reading_id, None)
                if index is None:
                    continue  # a redelivered duplicate, or a warm-up reading
                self._remaining[index] -= 1
                if self._remaining[index] == 0:
                    self.acked_at[index] = at
                    self.outstanding -= 1
                    if self.outstanding == 0:
                        self.done.set()


class GatewayClients:
    """The bench's side of MQTT: a publisher for all gateways and an ack reader."""

    def __init__(self, broker: MosquittoServer, gateways: Sequence[GatewaySetup], tag: str):
        self._tracker: AckTracker | None = None
        self._window = threading.BoundedSemaphore(PUBLISH_WINDOW_MESSAGES)
        self.acks = self._connect(broker, f"bench-acks-{tag}")
        self.acks.on_message = self._on_ack
        subscribed = threading.Event()
        self.acks.on_subscribe = lambda *_args: subscribed.set()
        self.acks.subscribe([(ack_topic(g.gateway_id), 1) for g in gateways])
        if not subscribed.wait(10):
            raise BenchError("the ack subscription was not confirmed")
        self.publisher = self._connect(broker, f"bench-pub-{tag}")
        self.publisher.on_publish = lambda *_args: self._window.release()

    @staticmethod
    def _connect(broker: MosquittoServer, client_id: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect(broker.host, broker.port, keepalive=60)
        client.loop_start()
        if not connected.wait(10):
            raise BenchError(f"{client_id} could not connect to {broker.describe()}")
        return client

    def _on_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        tracker = self._tracker
        if tracker is not None:
            tracker.on_ack(decode_message(bytes(message.payload), AckMessage), at)

    def track(self, envelopes: Sequence[Envelope]) -> AckTracker:
        self._tracker = AckTracker(envelopes)
        return self._tracker

    def publish(self, envelope: Envelope) -> float:
        """Publish at QoS 1 (waiting for room in the window); return the publish time."""
        self._window.acquire()
        at = time.perf_counter()
        self.publisher.publish(envelope.topic, envelope.payload, qos=1)
        return at

    def drain(self) -> None:
        """Wait until every published envelope has its PUBACK."""
        for _ in range(PUBLISH_WINDOW_MESSAGES):
            self._window.acquire()
        for _ in range(PUBLISH_WINDOW_MESSAGES):
            self._window.release()

    def close(self) -> None:
        for client in (self.publisher, self.acks):
            client.disconnect()
            client.loop_stop()


@dataclass
class IngestRun:
    """One end-to-end run: the figures and where the CPU went."""

    workers: int
    readings: int
    messages: int
    seconds: float
    publish_seconds: float
    cpu_seconds: dict[str, float]
    metrics: list[dict[str, float]]
    latencies_seconds: list[float] = field(default_factory=list)

    @property
    def readings_per_second(self) -> float:
        return self.readings / self.seconds

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds


@dataclass
class Stack:
    """Broker, workers and the bench's clients for one end-to-end run."""

    broker: MosquittoServer
    workers: list[WorkerProcess]
    clients: GatewayClients
    db: str


@dataclass
class Environment:
    """What every run shares: the InfluxDB server, the registry, the data, a temp dir."""

    workdir: Path
    influx: InfluxDBServer
    registry_url: str
    dataset: Dataset
    broker_config: Sequence[str] = ()
    run_counter: int = 0

    def next_tag(self, prefix: str) -> str:
        self.run_counter += 1
        return f"{prefix}{self.run_counter}"

    @contextlib.contextmanager
    def stack(self, workers: int) -> Iterator[Stack]:
        tag = self.next_tag("e2e")
        broker = MosquittoServer(self.workdir / f"mosquitto-{tag}", extra_config=self.broker_config)
        broker.start()
        db = f"bench_{tag}"
        self.influx.create_database(db)
        procs = [
            WorkerProcess(
                self.workdir,
                f"worker-{tag}-{index}",
                [
                    "--mqtt-url",
                    broker.url,
                    "--store",
                    f"influxdb-v1://{self.influx.host}:{self.influx.port}/{db}",
                    "--registry",
                    self.registry_url,
                    "--group",
                    "bench",
                    "--client-id",
                    f"bench-ingest-{tag}-{index}",
                    "--metrics-port",
                    "0",
                ],
            )
            for index in range(workers)
        ]
        clients: GatewayClients | None = None
        try:
            for proc in procs:
                proc.spawn()
            for proc in procs:
                proc.wait_listening()
            clients = GatewayClients(broker, self.dataset.gateways, tag)
            stack = Stack(broker, procs, clients, db)
            warm_up(stack, self.dataset.warmup)
            yield stack
        finally:
            if clients is not None:
                clients.close()
            for proc in procs:
                proc.stop()
            broker.stop()
            dropped = _dropped_warnings(broker)
            if dropped:
                raise BenchError(f"Mosquitto dropped messages: {dropped}")
            self.influx.drop_database(db)


def _dropped_warnings(broker: MosquittoServer) -> list[str]:
    try:
        text = broker.log_path.read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if "dropped" in line.lower()]


def warm_up(stack: Stack, envelopes: Sequence[Envelope]) -> None:
    """Until every worker has handled a message: subscriptions live, ownership cache warm."""
    for _ in range(WARMUP_ROUNDS):
        tracker = stack.clients.track(envelopes)
        for envelope in envelopes:
            stack.clients.publish(envelope)
        if not tracker.done.wait(WARMUP_TIMEOUT_SECONDS):
            tails = "\n".join(w.log_tail() for w in stack.workers)
            raise BenchError(f"warm-up envelopes were not acknowledged:\n{tails}")
        if all(w.metrics().get("vitalgate_ingest_messages_acked_total", 0) for w in stack.workers):
            return
    raise BenchError("a worker of the shared group received no message during warm-up")


def _cpu_meter(env: Environment, stack: Stack) -> CpuMeter:
    pids = {"mosquitto": _pid(stack.broker), "influxd": _pid(env.influx)}
    for index, worker in enumerate(stack.workers):
        pids[f"ingest worker {index + 1}"] = worker.pid
    return CpuMeter(pids)


def _check_stored(env: Environment, stack: Stack, expected: int) -> None:
    stored = count_points(env.influx, stack.db)
    if stored != expected:
        raise BenchError(f"InfluxDB holds {stored} points, {expected} expected")


def _run_timeout(readings: int) -> float:
    return max(MIN_RUN_TIMEOUT_SECONDS, readings / MIN_READINGS_PER_SECOND_BEFORE_TIMEOUT)


def measure_ingest(
    env: Environment,
    envelopes: Sequence[Envelope],
    workers: int,
    on_running: Callable[[Stack], Any] | None = None,
) -> IngestRun:
    """(c) throughput: publish every envelope as fast as the broker takes them."""
    readings = sum(len(e.ids) for e in envelopes)
    with env.stack(workers) as stack:
        tracker = stack.clients.track(envelopes)
        meter = _cpu_meter(env, stack)
        profiler = on_running(stack) if on_running else None
        meter.start()
        started = time.perf_counter()
        for envelope in envelopes:
            stack.clients.publish(envelope)
        stack.clients.drain()
        published = time.perf_counter() - started
        if not tracker.done.wait(_run_timeout(readings)):
            raise BenchError(
                f"{tracker.outstanding} envelopes never acknowledged:\n"
                + "\n".join(w.log_tail() for w in stack.workers)
            )
        last = max(at for at in tracker.acked_at if at is not None)
        meter.stop()
        if profiler is not None:
            profiler()
        metrics = [w.metrics() for w in stack.workers]
        _check_stored(env, stack, readings + len(env.dataset.warmup) * DEVICES_PER_GATEWAY)
        if tracker.quarantined:
            raise BenchError(f"{tracker.quarantined} readings were quarantined")
    return IngestRun(
        workers=workers,
        readings=readings,
        messages=len(envelopes),
        seconds=last - started,
        publish_seconds=published,
        cpu_seconds=meter.used,
        metrics=metrics,
    )


def measure_latency(
    env: Environment, envelopes: Sequence[Envelope], rate_per_second: float
) -> IngestRun:
    """(c) latency: envelopes published at a steady pace; publish → end-to-end ack each."""
    readings = sum(len(e.ids) for e in envelopes)
    interval = len(envelopes[0].ids) / rate_per_second
    with env.stack(1) as stack:
        tracker = stack.clients.track(envelopes)
        meter = _cpu_meter(env, stack)
        published_at: list[float] = []
        meter.start()
        started = time.perf_counter()
        for index, envelope in enumerate(envelopes):
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            published_at.append(stack.clients.publish(envelope))
        publish_seconds = time.perf_counter() - started
        if not tracker.done.wait(_run_timeout(readings)):
            raise BenchError(f"{tracker.outstanding} envelopes never acknowledged")
        meter.stop()
        metrics = [stack.workers[0].metrics()]
        _check_stored(env, stack, readings + len(env.dataset.warmup) * DEVICES_PER_GATEWAY)
        latencies = [
            acked - sent
            for sent, acked in zip(published_at, tracker.acked_at, strict=True)
            if acked is not None
        ]
        last = max(at for at in tracker.acked_at if at is not None)
    return IngestRun(
        workers=1,
        readings=readings,
        messages=len(envelopes),
        seconds=last - started,
        publish_seconds=publish_seconds,
        cpu_seconds=meter.used,
        metrics=metrics,
        latencies_seconds=latencies,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------
# Profile (py-spy)
# ---------------------------------------------------------------------------------------

STAGES: Final = (
    # (label, function name, file fragment): inclusive samples of the processing thread.
    ("decode envelope (msgspec)", "decode_readings_partial", "readings/codec.py"),
    ("… of which: reading ids re-derived (uuid5)", "_uuid5", "readings/identity.py"),
    ("ownership check", "check", "registry/ownership.py"),
    ("plausibility", "check_plausibility", "ingest/validate.py"),
    ("line protocol (to_line)", "to_line", "ingest/stores/points.py"),
    ("HTTP write to InfluxDB", "post", "ingest/stores/influx_v1.py"),
    ("republish on accepted/ (encode + publish)", "_publish_accepted", "ingest/worker.py"),
    ("end-to-end acks (encode + publish)", "_publish_e2e_ack", "ingest/worker.py"),
    ("MQTT acks to the broker", "ack", "paho/mqtt/client.py"),
    ("metrics", "inc", "prometheus_client"),
)
WAIT_FUNCTIONS: Final = ("select", "poll", "_wait_for_tstate_lock", "wait", "acquire")
"""Leaf frames that are blocking waits: py-spy samples them when the thread is runnable at
that instant (waking up or going to sleep), so they are reported apart from real work."""
WAITING: Final = "waiting in select/lock (sampled while runnable, ≈ idle)"
_FRAME: Final = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Profile:
    samples: int
    threads: dict[str, int]
    stages: dict[str, int]
    top_self: list[tuple[str, int]]
    readings: int
    seconds: float


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text)
    if match is None:
        return text, ""
    return match["function"], match["file"]


def _is(function: str, name: str) -> bool:
    """py-spy names methods ``Class.method``."""
    return function == name or function.endswith("." + name)


def _thread_of(frames: Sequence[tuple[str, str]]) -> str:
    for function, path in frames:
        if _is(function, "_run") and path.endswith("ingest/worker.py"):
            return "processing thread"
        if _is(function, "_thread_main") and "paho" in path:
            return "paho network thread"
    if any("wsgiref" in path or "socketserver" in path for _, path in frames):
        return "metrics server"
    return "other (main thread, start-up)"


def analyse_profile(raw_path: Path, readings: int, seconds: float) -> Profile:
    """Aggregate py-spy's collapsed stacks: per thread, per stage, top self time."""
    threads: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame(part) for part in stack.split(";")]
        leaf_function = frames[-1][0]
        waiting = any(_is(leaf_function, name) for name in WAIT_FUNCTIONS)
        thread = WAITING if waiting else _thread_of(frames)
        threads[thread] += count
        total += count
        function, path = frames[-1]
        leaves[f"{function} ({_short(path)})"] += count
        if thread != "processing thread":
            continue
        seen = set()
        for label, name, fragment in STAGES:
            if label in seen:
                continue
            if any(_is(f, name) and fragment in p for f, p in frames):
                stages[label] += count
                seen.add(label)
    return Profile(total, dict(threads), dict(stages), leaves.most_common(15), readings, seconds)


def _short(path: str) -> str:
    for marker in ("site-packages/", str(REPO_ROOT) + "/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profile_worker(env: Environment, envelopes: Sequence[Envelope]) -> Profile | None:
    """One extra one-worker throughput run with py-spy attached to the worker."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("py-spy not installed: no profile (pip install py-spy)", file=sys.stderr)
        return None
    raw_path = env.workdir / "worker-profile.txt"
    recorder: list[subprocess.Popen[bytes]] = []

    def attach(stack: Stack) -> Callable[[], None]:
        process = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(stack.workers[0].pid),
                "--rate",
                str(PROFILE_RATE_HZ),
                "--format",
                "raw",
                "--threads",
                "--full-filenames",
                "-o",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        recorder.append(process)
        time.sleep(1.0)  # py-spy attaches

        def detach() -> None:
            process.send_signal(signal.SIGINT)
            process.wait(60)

        return detach

    run = measure_ingest(env, envelopes, 1, on_running=attach)
    if not raw_path.exists():
        print("py-spy wrote no profile", file=sys.stderr)
        return None
    return analyse_profile(raw_path, run.readings, run.seconds)


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``median (min–max)``."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}–{fmt.format(max(values))})"
    )


def versions() -> dict[str, str]:
    def first_line(command: Sequence[str]) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (result.stdout or result.stderr).strip().splitlines()[0]

    return {
        "mosquitto": first_line(["/usr/sbin/mosquitto", "-h"]),
        "influxd": first_line(["/usr/bin/influxd", "version"]),
        "python": platform.python_version(),
        "paho-mqtt": paho.mqtt.__version__,
    }


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {
        "cores (nproc)": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


@dataclass
class Results:
    broker: list[BrokerResult] = field(default_factory=list)
    influx: dict[int, list[InfluxResult]] = field(default_factory=dict)
    ingest: dict[int, list[IngestRun]] = field(default_factory=dict)
    latency: dict[int, list[IngestRun]] = field(default_factory=dict)
    profile: Profile | None = None


def _cpu_table(runs: Sequence[IngestRun]) -> list[str]:
    names = list(runs[0].cpu_seconds)
    rows = [
        "| process | CPU µs per reading | share of the 2 cores |",
        "|---|---:|---:|",
    ]
    for name in names:
        per_reading = [run.cpu_seconds[name] / run.readings * 1e6 for run in runs]
        share = [run.cpu_seconds[name] / run.seconds / (os.cpu_count() or 1) * 100 for run in runs]
        rows.append(f"| {name} | {spread(per_reading, '{:.1f}')} | {spread(share, '{:.0f}')} % |")
    return rows


def report(args: argparse.Namespace, results: Results, dataset: Dataset) -> str:
    out: list[str] = []
    batch = args.batch
    broker_mps = [r.messages_per_second for r in results.broker]
    influx_one = results.influx[1]
    out += [
        f"readings: {dataset.size:,} per run ({dataset.reading_bytes} bytes of JSON each), "
        f"{len(dataset.gateways)} gateways × {DEVICES_PER_GATEWAY} devices, envelopes of "
        f"{batch} readings; {args.repeat} repetition(s): median (min–max).",
        "",
        "| measurement | readings/s | messages/s | notes |",
        "|---|---:|---:|---|",
        f"| (a) broker raw: `mosquitto_pub -l` → Mosquitto → `mosquitto_sub`, QoS 1 | "
        f"{spread([r.readings_per_second for r in results.broker])} | {spread(broker_mps)} | "
        f"{statistics.median(r.payload_bytes / r.seconds / 1e6 for r in results.broker):,.0f} "
        f"MB/s; broker CPU "
        f"{statistics.median(r.broker_cpu_seconds / r.messages * 1e6 for r in results.broker):.0f}"
        " µs/message |",
    ]
    for connections, raw_runs in sorted(results.influx.items()):
        out.append(
            f"| (b) InfluxDB raw: line protocol, {args.influx_batch:,} points/request, "
            f"{connections} connection{'s' if connections > 1 else ''} | "
            f"{spread([r.points_per_second for r in raw_runs])} | – | influxd CPU "
            f"{statistics.median(r.influxd_cpu_seconds / r.points * 1e6 for r in raw_runs):.1f}"
            " µs/point |"
        )
    for workers, runs in sorted(results.ingest.items()):
        ratio_b = [
            run.readings_per_second / raw.points_per_second
            for run, raw in zip(runs, influx_one, strict=False)
        ]
        ratio_a = [
            run.messages_per_second / raw.messages_per_second
            for run, raw in zip(runs, results.broker, strict=False)
        ]
        out.append(
            f"| (c) VitalGate ingest, {workers} worker{'s' if workers > 1 else ''}: "
            f"published → stored → acked | {spread([r.readings_per_second for r in runs])} | "
            f"{spread([r.messages_per_second for r in runs])} | (c)/(b) = "
            f"{spread(ratio_b, '{:.2f}')}; messages/s vs (a) = {spread(ratio_a, '{:.3f}')} |"
        )
    out += ["", "Latency, publish → end-to-end ack (stored in InfluxDB), one worker:", ""]
    out += [
        "| paced load | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for latency_batch, runs in sorted(results.latency.items()):
        per_second = args.latency_rate / latency_batch
        out.append(
            f"| {args.latency_rate:,} readings/s = {per_second:,.0f} envelopes/s of "
            f"{latency_batch}, {args.latency_seconds:g} s | "
            f"{spread([percentile(r.latencies_seconds, 0.5) * 1e3 for r in runs], '{:.0f}')} | "
            f"{spread([percentile(r.latencies_seconds, 0.99) * 1e3 for r in runs], '{:.0f}')} | "
            f"{spread([max(r.latencies_seconds) * 1e3 for r in runs], '{:.0f}')} |"
        )
    for workers, runs in sorted(results.ingest.items()):
        out += ["", f"CPU during (c) with {workers} worker(s) (wall time of the run):", ""]
        out += _cpu_table(runs)
        writes = [
            (
                sum(m["vitalgate_ingest_store_write_seconds_sum"] for m in r.metrics),
                sum(m["vitalgate_ingest_store_write_seconds_count"] for m in r.metrics),
            )
            for r in runs
        ]
        calls = [count for _, count in writes]
        per_call = [r.readings / count for r, (_, count) in zip(runs, writes, strict=True)]
        busy = [spent / r.seconds * 100 for r, (spent, _) in zip(runs, writes, strict=True)]
        out += [
            "",
            f"Store writes per run: {spread(calls)} calls of {spread(per_call)} readings; "
            "time inside `store.write` (to_line + HTTP, summed over workers): "
            f"{spread(busy, '{:.0f}')} % of the run's wall time.",
        ]
    if results.profile is not None:
        out += ["", *profile_report(results.profile)]
    return "\n".join(out)


def profile_report(profile: Profile) -> list[str]:
    seconds_per_sample = 1 / PROFILE_RATE_HZ
    out = [
        f"py-spy profile of one worker ({profile.samples:,} samples at {PROFILE_RATE_HZ} Hz "
        f"while on CPU, {profile.readings:,} readings in {profile.seconds:.1f} s with py-spy "
        "attached):",
        "",
        "| thread / stage | samples | CPU µs per reading |",
        "|---|---:|---:|",
    ]
    for thread, count in sorted(profile.threads.items(), key=lambda item: -item[1]):
        per = count * seconds_per_sample / profile.readings * 1e6
        out.append(f"| **{thread}** | {count:,} | {per:.1f} |")
        if thread == "processing thread":
            for label, _, _ in STAGES:
                stage = profile.stages.get(label, 0)
                per = stage * seconds_per_sample / profile.readings * 1e6
                out.append(f"| &nbsp;&nbsp;{label} | {stage:,} | {per:.1f} |")
    out += ["", "Top functions by self time (all threads):", ""]
    out += ["| function | samples | share |", "|---|---:|---:|"]
    for name, count in profile.top_self:
        out.append(f"| `{name}` | {count:,} | {count / profile.samples * 100:.1f} % |")
    return out


def results_json(results: Results) -> dict[str, Any]:
    def ingest_dict(run: IngestRun) -> dict[str, Any]:
        data = {
            "workers": run.workers,
            "readings": run.readings,
            "messages": run.messages,
            "seconds": run.seconds,
            "publish_seconds": run.publish_seconds,
            "readings_per_second": run.readings_per_second,
            "cpu_seconds": run.cpu_seconds,
            "metrics": run.metrics,
        }
        if run.latencies_seconds:
            data["p50_ms"] = percentile(run.latencies_seconds, 0.5) * 1e3
            data["p99_ms"] = percentile(run.latencies_seconds, 0.99) * 1e3
            data["max_ms"] = max(run.latencies_seconds) * 1e3
        return data

    return {
        "broker": [
            vars(r) | {"messages_per_second": r.messages_per_second} for r in results.broker
        ],
        "influx": {
            str(k): [vars(r) | {"points_per_second": r.points_per_second} for r in v]
            for k, v in results.influx.items()
        },
        "ingest": {str(k): [ingest_dict(r) for r in v] for k, v in results.ingest.items()},
        "latency": {str(k): [ingest_dict(r) for r in v] for k, v in results.latency.items()},
        "profile": vars(results.profile) if results.profile else None,
    }


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=None, help="readings per throughput run")
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH_READINGS,
        help="readings per envelope in the throughput runs",
    )
    parser.add_argument("--gateways", type=int, default=DEFAULT_GATEWAYS)
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (medians reported)")
    parser.add_argument("--workers", default="1,2", help="worker counts for (c), e.g. 1,2")
    parser.add_argument(
        "--broker-messages",
        type=int,
        default=None,
        help="at least this many messages in (a) (the envelopes cycled)",
    )
    parser.add_argument(
        "--influx-batch",
        type=int,
        default=MAX_POINTS_PER_REQUEST,
        help="points per /write request in (b) (default: the store's)",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=DEFAULT_LATENCY_RATE_PER_SECOND,
        help="readings/s in the latency runs",
    )
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument(
        "--latency-batches",
        default=",".join(map(str, DEFAULT_LATENCY_BATCHES)),
        help="readings per envelope in the latency runs, e.g. 10,100",
    )
    parser.add_argument(
        "--broker-config",
        action="append",
        default=[],
        metavar="LINE",
        help="extra mosquitto.conf line for every broker, e.g. 'set_tcp_nodelay true'",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small, one repetition")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy profile of one worker (default: on unless --quick)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    preset = (
        QUICK
        if args.quick
        else {
            "readings": DEFAULT_READINGS,
            "repeat": DEFAULT_REPETITIONS,
            "broker_messages": DEFAULT_BROKER_MESSAGES,
            "latency_seconds": DEFAULT_LATENCY_SECONDS,
        }
    )
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.profile is None:
        args.profile = not args.quick
    if not 1 <= args.batch <= MAX_READINGS_PER_ENVELOPE:
        parser.error(f"--batch must be 1..{MAX_READINGS_PER_ENVELOPE}")
    args.worker_counts = [int(v) for v in args.workers.split(",") if v]
    args.latency_batch_sizes = [int(v) for v in args.latency_batches.split(",") if v]
    latency_readings = args.latency_rate * args.latency_seconds
    if latency_readings > args.readings:
        parser.error("--latency-rate × --latency-seconds exceeds --readings")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="vitalgate-bench-ingest-"))
    print(f"# ingest bench in {workdir}", file=sys.stderr)
    facts = {**machine(), **versions()}
    results = Results()
    influx = InfluxDBServer(workdir / "influxd")
    raw_broker = MosquittoServer(workdir / "mosquitto-raw", extra_config=args.broker_config)
    try:
        step = time.perf_counter()
        dataset = generate_dataset(args.readings, args.gateways)
        print(
            f"# generated {dataset.size:,} readings in {time.perf_counter() - step:.1f} s",
            file=sys.stderr,
        )
        registry_url = f"sqlite:///{workdir / 'registry.db'}"
        register(registry_url, dataset)
        influx.start()
        raw_broker.start()
        config = raw_broker.config_text()
        if "max_queued_messages 1000000" not in config:
            raise BenchError("the harness broker keeps Mosquitto's dropping queue limit")
        env = Environment(workdir, influx, registry_url, dataset, args.broker_config)
        envelopes = dataset.envelopes(args.batch)
        latency_sets = {
            size: dataset.envelopes(size, int(args.latency_rate * args.latency_seconds))
            for size in args.latency_batch_sizes
        }
        for repetition in range(1, args.repeat + 1):
            note = f"# repetition {repetition}/{args.repeat}"
            result = measure_broker(raw_broker, envelopes, args.broker_messages, str(repetition))
            results.broker.append(result)
            print(f"{note}: (a) {result.messages_per_second:,.0f} msg/s", file=sys.stderr)
            for connections in (1, 2):
                raw = measure_influx(
                    influx, dataset.lines, args.influx_batch, connections, env.next_tag("raw")
                )
                results.influx.setdefault(connections, []).append(raw)
                print(
                    f"{note}: (b) {connections} conn {raw.points_per_second:,.0f} points/s",
                    file=sys.stderr,
                )
            for workers in args.worker_counts:
                run = measure_ingest(env, envelopes, workers)
                results.ingest.setdefault(workers, []).append(run)
                print(
                    f"{note}: (c) {workers} worker(s) {run.readings_per_second:,.0f} readings/s",
                    file=sys.stderr,
                )
            for size, latency_envelopes in latency_sets.items():
                run = measure_latency(env, latency_envelopes, args.latency_rate)
                results.latency.setdefault(size, []).append(run)
                print(
                    f"{note}: latency batch {size}: p50 "
                    f"{percentile(run.latencies_seconds, 0.5) * 1e3:.0f} ms, p99 "
                    f"{percentile(run.latencies_seconds, 0.99) * 1e3:.0f} ms",
                    file=sys.stderr,
                )
        if args.profile:
            results.profile = profile_worker(env, envelopes)
    finally:
        raw_broker.stop()
        influx.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    facts["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    command = " ".join(
        ["python", "bench/bench_ingest.py", *(sys.argv[1:] if argv is None else argv)]
    )
    print(f"Command: `{command}` ({time.perf_counter() - began:.0f} s)\n")
    print("| machine / version | |\n|---|---|")
    for key, value in facts.items():
        print(f"| {key} | {value} |")
    print()
    print(report(args, results, dataset))
    if args.json is not None:
        args.json.write_text(json.dumps(results_json(results), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
