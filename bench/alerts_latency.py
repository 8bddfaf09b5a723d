"""Alerts benchmark, part B: a reading published → its alert recorded and on the inbox stream.

Run from the repository root::

    python bench/alerts_latency.py                    # 1,000 readings/s for 30 s, 1,000 patients
    python bench/alerts_latency.py --seconds 10 --patients 200 --hypos 40   # a quick run

Everything is real and started for the run on free loopback ports: Mosquitto and InfluxDB 1.x
(the test harness's servers), ``python -m vitalgate ingest run`` and ``python -m vitalgate
alerts run`` as subprocesses on one registry (SQLite in the run's folder by default, or
``--registry postgresql://…`` — an empty database). A paced paho publisher plays the
gateways: ``--rate`` readings/s in envelopes of ``--batch`` readings of one patient's meter,
fresh readings (``measured_at`` one second before the publish), 5–9 mmol/L — except one
2.5 mmol/L hypo for each of ``--hypos`` distinct patients at random moments of the run,
which must page G1 at once (one reading < 3.0 mmol/L, CLINICAL table (a)).

Per hypo, from the moment its envelope was handed to paho:

* **stored** — the end-to-end acknowledgement on ``gw/<id>/ack`` (ingest wrote it to
  InfluxDB): the **raw baseline**, the same path without the alert engine;
* **alert recorded** — the G1 row is in the registry (a poller in this process looks every
  ``POLL_SECONDS``, which bounds the error of this figure);
* **on the inbox stream** — an :class:`~dashboard_api.alert_tail.AlertTail` (what every API
  process runs, with its default poll) has handed the alert event to a
  :class:`~dashboard_api.live.LiveHub` subscriber: what an open inbox page receives;

The escalation chain's own steps (SMS, phone) are not timed here: they are claimed by a
worker woken every 15 s (``alerts.scheduler.TICK_SECONDS``), so their delay is that tick by
design, and the bench's patients have no care team to receive them.

Printed: p50/p99/max of each and their ratio to the raw baseline, as a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench_ingest import (  # noqa: E402
    BenchError,
    Envelope,
    GatewayClients,
    GatewaySetup,
    WorkerProcess,
    percentile,
)
from sqlalchemy import select  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from dashboard_api.alert_tail import AlertTail  # noqa: E402
from dashboard_api.live import LiveAlert, LiveHub  # noqa: E402
from readings import GlucoseValues, encode_reading, new_reading  # noqa: E402
from readings.codec import encode_envelope_from_encoded  # noqa: E402
from readings.identity import device_identity  # noqa: E402
from readings.topics import readings_topic  # noqa: E402
from readings.units import Unit  # noqa: E402
from registry.alert_models import AlertRow  # noqa: E402
from registry.care_models import Condition  # noqa: E402
from registry.db import create_engine_for, session_scope, upgrade  # noqa: E402
from registry.evaluation_models import EvaluationLease  # noqa: E402
from registry.patient_care import PatientCareRepository  # noqa: E402
from registry.repositories import (  # noqa: E402
    DeviceRepository,
    GatewayRepository,
    PatientRepository,
)
from tests.harness.services import InfluxDBServer, MosquittoServer  # noqa: E402

HYPO_MMOL_L: Final = 2.5
"""Below G1's 3.0 mmol/L (level-2 hypoglycaemia, ADA/IHSG): one meter reading pages."""
POLL_SECONDS: Final = 0.02
"""How often this process looks for new alert and notification rows."""
ALERTS_START_TIMEOUT_SECONDS: Final = 60.0
SETTLE_TIMEOUT_SECONDS: Final = 120.0
"""After the last publish: every reading stored, every hypo's alert on the stream."""
PARTITIONS: Final = 16


@dataclass(frozen=True, slots=True)
class Plan:
    """What the publisher sends, envelope by envelope, and where the hypos are."""

    gateways: list[GatewaySetup]
    envelopes: list[Envelope]
    hypo_envelope: dict[str, int]
    """Hypo reading id → index of the envelope that carries it."""
    hypo_patient: dict[str, str]


def make_plan(args: argparse.Namespace, started_wall: datetime) -> Plan:
    """Envelopes of ``args.batch`` readings, one patient each, paced at ``args.rate``."""
    rng = random.Random(args.seed)
    gateways = [
        GatewaySetup(
            gateway_id=f"lat-gw-{index:04d}",
            patient_id=f"lat-p-{index:04d}",
            device_ids=(device_identity("BenchCo", "Glucose", f"LAT{index:04d}"),),
        )
        for index in range(args.patients)
    ]
    count = int(args.rate * args.seconds / args.batch)
    interval = args.batch / args.rate
    hypo_patients = rng.sample(range(args.patients), args.hypos)
    # Each hypo patient's hypo goes into one of its envelopes, spread over the run.
    owner_envelopes: dict[int, list[int]] = {}
    for index in range(count):
        owner_envelopes.setdefault(index % args.patients, []).append(index)
    hypo_at = {
        rng.choice(owner_envelopes[p][1:] or owner_envelopes[p]): p
        for p in hypo_patients
        if p in owner_envelopes
    }
    seq = [0] * args.patients
    envelopes: list[Envelope] = []
    hypo_envelope: dict[str, int] = {}
    hypo_patient: dict[str, str] = {}
    for index in range(count):
        patient = index % args.patients
        setup = gateways[patient]
        at = started_wall + timedelta(seconds=index * interval - 1.0)
        encoded, ids = [], []
        for k in range(args.batch):
            seq[patient] += 1
            hypo = index in hypo_at and k == args.batch - 1
            reading = new_reading(
                values=GlucoseValues(glucose=HYPO_MMOL_L if hypo else 5.0 + rng.random() * 4),
                source_unit=Unit.MMOL_PER_L,
                measured_at=at + timedelta(milliseconds=k),
                received_at=at + timedelta(milliseconds=k + 100),
                device_id=setup.device_ids[0],
                patient_id=setup.patient_id,
                gateway_id=setup.gateway_id,
                seq=seq[patient],
            )
            encoded.append(encode_reading(reading))
            ids.append(reading.id)
            if hypo:
                hypo_envelope[reading.id] = index
                hypo_patient[reading.id] = setup.patient_id
        payload = encode_envelope_from_encoded(setup.gateway_id, at, encoded)
        envelopes.append(
            Envelope(setup.gateway_id, readings_topic(setup.gateway_id), payload, tuple(ids))
        )
    return Plan(gateways, envelopes, hypo_envelope, hypo_patient)


def register(registry_url: str, gateways: Sequence[GatewaySetup], paired_at: datetime) -> None:
    """Gateways, patients with type 2 diabetes (G1 applies) and their meters."""
    upgrade(registry_url)
    engine = create_engine_for(registry_url)
    try:
        with session_scope(engine) as session:
            for setup in gateways:
                GatewayRepository(session).add(setup.gateway_id, label="bench")
                PatientRepository(session).add(setup.patient_id)
                PatientCareRepository(session).set_conditions(
                    setup.patient_id, [Condition.DIABETES_TYPE2]
                )
                DeviceRepository(session).bind(
                    setup.device_ids[0], setup.gateway_id, setup.patient_id, at=paired_at
                )
    finally:
        engine.dispose()


class AlertsProcess:
    """``python -m vitalgate alerts run`` as a subprocess."""

    def __init__(self, workdir: Path, args: Sequence[str]) -> None:
        self.stdout_path = workdir / "alerts.out"
        self.log_path = workdir / "alerts.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.stdout_path.open("wb") as out, self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vitalgate", "alerts", "run", *args],
                stdout=out,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )

    def wait_holding(self, registry_url: str) -> None:
        """Until the worker holds every partition's lease."""
        engine = create_engine_for(registry_url)
        deadline = time.monotonic() + ALERTS_START_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with Session(engine) as session:
                    held = len(session.scalars(select(EvaluationLease.partition)).all())
                if held == PARTITIONS:
                    return
                time.sleep(0.2)
        finally:
            engine.dispose()
        raise BenchError(f"the alert worker did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class RegistryWatch:
    """Sees G1 alerts appear in the registry, and when."""

    def __init__(self, registry_url: str) -> None:
        self._engine = create_engine_for(registry_url)
        self.alert_seen: dict[str, float] = {}  # hypo reading id → perf_counter
        self._alert_reading: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last_alert = 0
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                with Session(self._engine) as session:
                    rows = session.execute(
                        select(AlertRow.id, AlertRow.reading_ids)
                        .where(AlertRow.id > last_alert, AlertRow.rule_id == "G1")
                        .order_by(AlertRow.id)
                    ).all()
            except SQLAlchemyError:
                # SQLite busy under the worker's writes: a dead watcher thread would report
                # every later hypo as "raised no G1". Look again on the next poll.
                time.sleep(POLL_SECONDS)
                continue
            for alert_id, reading_ids in rows:
                last_alert = max(last_alert, alert_id)
                ids = json.loads(reading_ids)
                if ids:
                    self._alert_reading[alert_id] = ids[-1]
                    self.alert_seen.setdefault(ids[-1], now)
            time.sleep(POLL_SECONDS)

    def alert_reading(self, alert_id: int) -> str | None:
        return self._alert_reading.get(alert_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._engine.dispose()


class StreamWatch:
    """An AlertTail feeding a LiveHub, and one subscriber: what an open inbox receives."""

    def __init__(self, registry_url: str) -> None:
        self._engine = create_engine_for(registry_url)
        self.hub = LiveHub()
        self.received: dict[int, float] = {}  # alert id → perf_counter of the first event
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tail = AlertTail(self._engine, self.hub)

    def start(self) -> None:
        self._thread.start()
        ready = threading.Event()

        async def consume() -> None:
            subscription = self.hub.subscribe()
            ready.set()
            while True:
                event = await subscription.queue.get()
                if isinstance(event, LiveAlert) and event.rule_id == "G1":
                    self.received.setdefault(event.alert_id, time.perf_counter())

        asyncio.run_coroutine_threadsafe(consume(), self._loop)
        ready.wait(5)
        self._tail.start()

    def stop(self) -> None:
        self._tail.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._engine.dispose()


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[tuple[MosquittoServer, InfluxDBServer]]:
    broker = MosquittoServer(workdir / "mosquitto")
    influx = InfluxDBServer(workdir / "influxdb")
    broker.start()
    influx.start()
    try:
        yield broker, influx
    finally:
        broker.stop()
        influx.stop()


@dataclass
class Result:
    stored: list[float]
    recorded: list[float]
    streamed: list[float]
    hypos: int
    readings: int
    publish_seconds: float


def run(args: argparse.Namespace, workdir: Path) -> Result:
    registry_url = args.registry or f"sqlite:///{workdir / 'registry.db'}"
    with servers(workdir) as (broker, influx):
        db = "bench_alerts"
        influx.create_database(db)
        store = f"influxdb-v1://{influx.host}:{influx.port}/{db}"
        lead_in = 25.0  # seconds for the workers to start before the first planned reading
        started_wall = datetime.now(UTC) + timedelta(seconds=lead_in)
        plan = make_plan(args, started_wall)
        register(registry_url, plan.gateways, started_wall - timedelta(days=1))
        ingest = WorkerProcess(
            workdir,
            "ingest",
            ["--mqtt-url", broker.url, "--store", store, "--registry", registry_url,
             "--client-id", "bench-ingest", "--metrics-port", "0"],
        )  # fmt: skip
        alerts = AlertsProcess(
            workdir,
            ["--registry", registry_url, "--store", store, "--mqtt-url", broker.url,
             "--metrics-port", "0"],
        )  # fmt: skip
        ingest.spawn()
        clients: GatewayClients | None = None
        registry_watch = RegistryWatch(registry_url)
        stream_watch = StreamWatch(registry_url)
        try:
            ingest.wait_listening()
            alerts.wait_holding(registry_url)
            clients = GatewayClients(broker, plan.gateways, "lat")
            tracker = clients.track(plan.envelopes)
            registry_watch.start()
            stream_watch.start()
            wait = (started_wall - datetime.now(UTC)).total_seconds()
            if wait < 0:
                raise BenchError(f"the workers took {lead_in - wait:.0f} s to start (> {lead_in})")
            time.sleep(wait)
            interval = args.batch / args.rate
            begun = time.perf_counter()
            published: list[float] = []
            for index, envelope in enumerate(plan.envelopes):
                delay = begun + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                published.append(clients.publish(envelope))
            publish_seconds = time.perf_counter() - begun
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
            hypos = set(plan.hypo_envelope)
            while time.monotonic() < deadline:
                if (
                    tracker.done.is_set()
                    and hypos <= set(registry_watch.alert_seen)
                    and len(stream_watch.received) >= len(hypos)
                ):
                    break
                time.sleep(0.2)
            if tracker.quarantined:
                raise BenchError(f"{tracker.quarantined} readings were quarantined")
            missing = hypos - set(registry_watch.alert_seen)
            if missing:
                raise BenchError(f"{len(missing)} hypos raised no G1:\n{alerts.log_tail()}")
        finally:
            registry_watch.stop()
            stream_watch.stop()
            if clients is not None:
                clients.close()
            alerts.stop()
            ingest.stop()
    streamed_by_reading = {
        reading: at
        for alert_id, at in stream_watch.received.items()
        if (reading := registry_watch.alert_reading(alert_id)) is not None
    }

    def after_publish(seen: dict[str, float]) -> list[float]:
        return [seen[r] - published[plan.hypo_envelope[r]] for r in plan.hypo_envelope if r in seen]

    stored_at = {
        r: at
        for r in plan.hypo_envelope
        if (at := tracker.acked_at[plan.hypo_envelope[r]]) is not None
    }
    return Result(
        stored=after_publish(stored_at),
        recorded=after_publish(registry_watch.alert_seen),
        streamed=after_publish(streamed_by_reading),
        hypos=len(plan.hypo_envelope),
        readings=sum(len(e.ids) for e in plan.envelopes),
        publish_seconds=publish_seconds,
    )


def report(args: argparse.Namespace, result: Result) -> str:
    base = percentile(result.stored, 0.5) if result.stored else float("nan")
    lines = [
        f"{result.readings:,} readings at {args.rate:,.0f}/s planned "
        f"({result.readings / result.publish_seconds:,.0f}/s achieved) from {args.patients:,} "
        f"patients in envelopes of {args.batch}; {result.hypos} hypos; "
        f"registry {'PostgreSQL' if args.registry else 'SQLite'}; "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the end",
        "",
        "| publish → | hypos seen | p50 | p99 | max | p50 / stored p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in (
        ("stored (end-to-end ack; raw baseline)", result.stored),
        ("G1 alert recorded in the registry", result.recorded),
        ("G1 event on the inbox stream (AlertTail → LiveHub)", result.streamed),
    ):
        if not values:
            lines.append(f"| {name} | 0 | – | – | – | – |")
            continue
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        lines.append(
            f"| {name} | {len(values)} | {p50 * 1000:,.0f} ms | {p99 * 1000:,.0f} ms | "
            f"{max(values) * 1000:,.0f} ms | {p50 / base:.1f}× |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="readings per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the paced run")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--hypos", type=int, default=200, help="distinct patients with a hypo")
    parser.add_argument("--batch", type=int, default=5, help="readings per envelope")
    parser.add_argument("--registry", help="an empty PostgreSQL database URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.hypos > args.patients:
        parser.error("--hypos cannot exceed --patients (one open G1 per patient)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vitalgate-alerts-latency-") as tmp:
        try:
            result = run(args, Path(tmp))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    print(report(args, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
