"""API benchmark: the dashboard API's read paths against the raw InfluxDB query for the same data.

Run from the repository root::

    python bench/api.py                                # 10,000 patients, 90 days (long: see docs)
    python bench/api.py --patients 1000 --days 14      # a smaller run

Everything runs on this machine, in one run:

* a registry (SQLite file) of ``--patients`` patients; one team of the benchmarked doctor
  holds contracts with ``--list-size`` of them, the others belong to other teams;
* a real InfluxDB 1.x (the test harness's ``InfluxDBServer``, free loopback port, temporary
  directory) holding ``--days`` days of readings: 4 glucose and 2 blood-pressure readings
  a day and 1 weight per patient, and CGM every 5 minutes for ``--cgm-patients`` of them.
  Points are written as line protocol in bulk (the format ``ingest.stores.points`` writes,
  built with string formatting here so generating 19 M points does not dominate);
* the API (``dashboard_api.app.create_app`` on ``InfluxV1Store``) served by uvicorn in a
  **subprocess** on a free port, so the load generator does not share its GIL.

Measured, with ``--clients`` concurrent client threads (keep-alive ``httpx`` clients):

(a) ``GET /api/v1/patients`` as the doctor (``--list-size`` patients with their latest
    reading of each kind), beside the raw InfluxDB query of ``last_readings_of`` for the
    same patients (the very InfluxQL the store sends, posted with ``httpx``);
(b) ``GET /api/v1/patients/{id}/readings`` for each kind over the whole range, 500 points
    (raw when they fit, downsampled windows otherwise), beside the raw InfluxDB queries the
    store sends for it (count, then rows or one aggregate per field);
(c) the live stream's fan-out delay: ``--subscribers`` SSE clients on ``/api/v1/stream``;
    the server process publishes a reading into its ``LiveHub`` (on a line from the bench on
    its stdin) stamped with the time; each subscriber records publish → event received.

p50/p95/p99 in ms for each; printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

DOCTOR: Final = "dr.bench"
PASSWORD: Final = "bench password, not a secret"
TOKEN_SECRET: Final = "b" * 48
GLUCOSE_TIMES_H: Final = (7, 11, 17, 21)
BP_TIMES_H: Final = (8, 20)
WEIGHT_TIME_H: Final = 7
CGM_STEP_MINUTES: Final = 5
LINES_PER_POST: Final = 5_000
"""As the store's request size (``MAX_POINTS_PER_REQUEST``)."""


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in ms of samples in seconds."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return at(0.50), at(0.95), at(0.99)


# -- data ---------------------------------------------------------------------------------


def patient_ids(count: int) -> list[str]:
    return [f"p-{index:06d}" for index in range(count)]


def seed_registry(url: str, ids: Sequence[str], list_size: int, now: datetime) -> str:
    """Patients, teams (the doctor's holds ``list_size`` contracts), the doctor; TOTP secret."""
    import pyotp
    from sqlalchemy import insert

    from dashboard_api.security import hash_password
    from registry.care import AccountRepository, TeamRepository
    from registry.care_models import AccountKind, CareContract, CareTeam, Role, TeamPosition
    from registry.db import create_engine_for, session_scope, upgrade
    from registry.models import Patient

    upgrade(url)
    engine = create_engine_for(url)
    created = now - timedelta(days=400)
    secret = pyotp.random_base32()
    with session_scope(engine) as session:
        session.execute(
            insert(Patient),
            [
                {
                    "id": each,
                    "display_name": None,
                    "time_zone": "Asia/Shanghai",
                    "created_at": created,
                }
                for each in ids
            ],
        )
        teams = TeamRepository(session)
        team_count = -(-len(ids) // list_size)
        for number in range(team_count):
            teams.add(f"team-{number:03d}", name=f"团队{number}", organisation="bench")
        accounts = AccountRepository(session)
        accounts.add(
            DOCTOR, display_name=DOCTOR, kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.set_password_hash(DOCTOR, hash_password(PASSWORD))
        accounts.set_totp_secret(DOCTOR, secret)
        teams.add_member("team-000", DOCTOR, TeamPosition.DOCTOR, since=created)
        team_ids = {code: tid for tid, code in session.query(CareTeam.id, CareTeam.code)}
        session.execute(
            insert(CareContract),
            [
                {
                    "patient_id": each,
                    "team_id": team_ids[f"team-{index // list_size:03d}"],
                    "service_package": "diabetes",
                    "starts_on": created.date(),
                    "ends_on": None,
                    "end_reason": None,
                    "signed_at": created,
                }
                for index, each in enumerate(ids)
            ],
        )
    engine.dispose()
    return secret


def _ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000


def lines_for(patient_index: int, patient_id: str, days: int, end: date, cgm: bool) -> list[str]:
    """One patient's points as line protocol, in the layout of ``ingest.stores.points``."""
    rng = random.Random(patient_index)
    out: list[str] = []
    meter = f"Roche-Accu_Chek_Guide-9{patient_index:08d}"
    cuff = f"Omron-HEM_7600T-2{patient_index:08d}"
    scale = f"Yuwell-YE890-3{patient_index:08d}"
    cgm_device = f"Abbott-Libre3-4{patient_index:08d}"
    gateway = f"gw-{patient_index:06d}"
    seq = 0
    first = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=days)
    for day in range(days):
        midnight = first + timedelta(days=day)
        for hour in GLUCOSE_TIMES_H:
            seq += 1
            out.append(
                f"glucose,patient_id={patient_id},device_id={meter} "
                f"glucose={rng.uniform(4, 12):.1f},"
                f'id="{uuid.uuid4()}",gateway_id="{gateway}",source_unit="mmol/L",seq={seq}i '
                f"{_ns(midnight + timedelta(hours=hour))}"
            )
        for hour in BP_TIMES_H:
            seq += 1
            out.append(
                f"blood_pressure,patient_id={patient_id},device_id={cuff} "
                f"systolic={rng.uniform(110, 160):.0f}.0,diastolic={rng.uniform(65, 100):.0f}.0,"
                f'pulse={rng.uniform(55, 90):.0f}.0,id="{uuid.uuid4()}",gateway_id="{gateway}",'
                f'source_unit="mm[Hg]",seq={seq}i {_ns(midnight + timedelta(hours=hour))}'
            )
        seq += 1
        out.append(
            f"weight,patient_id={patient_id},device_id={scale} weight={rng.uniform(55, 90):.1f},"
            f'id="{uuid.uuid4()}",gateway_id="{gateway}",source_unit="kg",seq={seq}i '
            f"{_ns(midnight + timedelta(hours=WEIGHT_TIME_H))}"
        )
        if cgm:
            base = _ns(midnight)
            step = CGM_STEP_MINUTES * 60 * 1_000_000_000
            for slot in range(24 * 60 // CGM_STEP_MINUTES):
                seq += 1
                out.append(
                    f"cgm_glucose,patient_id={patient_id},device_id={cgm_device} "
                    f'glucose={5 + (slot % 60) / 10:.1f},id="{uuid.uuid4()}",'
                    f'gateway_id="{gateway}",source_unit="mmol/L",seq={seq}i {base + slot * step}'
                )
    return out


def load_influx(
    url: str, database: str, ids: Sequence[str], days: int, end: date, cgm: int
) -> tuple[int, float]:
    """Write every patient's points in bulk (2 connections); (points, seconds)."""
    total = 0
    lock = threading.Lock()
    started = time.perf_counter()
    work = list(enumerate(ids))

    def writer(part: Sequence[tuple[int, str]]) -> None:
        nonlocal total
        buffer: list[str] = []
        with httpx.Client(base_url=url, timeout=120) as client:

            def flush() -> None:
                response = client.post(
                    "/write", params={"db": database, "precision": "ns"}, content="\n".join(buffer)
                )
                response.raise_for_status()
                buffer.clear()

            for index, patient_id in part:
                lines = lines_for(index, patient_id, days, end, cgm=index < cgm)
                with lock:
                    total += len(lines)
                buffer.extend(lines)
                while len(buffer) >= LINES_PER_POST:
                    rest = buffer[LINES_PER_POST:]
                    del buffer[LINES_PER_POST:]
                    flush()
                    buffer.extend(rest)
            if buffer:
                flush()

    threads = [threading.Thread(target=writer, args=(work[n::2],)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total, time.perf_counter() - started


# -- the server subprocess -------------------------------------------------------------


def serve(registry_url: str, influx_url: str, database: str, port: int) -> None:
    """Run the API with uvicorn; each stdin line publishes one reading into the live hub."""
    import asyncio

    import uvicorn

    from dashboard_api.app import create_app
    from dashboard_api.config import ApiSettings
    from dashboard_api.live import LiveHub
    from dashboard_api.sms import FileSmsSender
    from ingest.stores import open_store
    from readings.model import GlucoseValues, new_reading
    from readings.units import Unit
    from registry.db import create_engine_for

    host = influx_url.removeprefix("http://")
    store = open_store(f"influxdb-v1://{host}/{database}")
    engine = create_engine_for(registry_url)
    hub = LiveHub()
    app = create_app(
        ApiSettings(
            token_secret=TOKEN_SECRET, secure_cookies=False, login_attempts_per_minute=10_000
        ),
        registry=engine,
        store=store,
        sms=FileSmsSender(Path(tempfile.gettempdir()) / "bench-sms.jsonl"),
        live=hub,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def publisher(loop: asyncio.AbstractEventLoop) -> None:
        for line in sys.stdin:
            patient_id, value = line.split()
            now = datetime.now(UTC)
            reading = new_reading(
                values=GlucoseValues(glucose=float(value)),
                source_unit=Unit.MMOL_PER_L,
                measured_at=now,
                received_at=now,
                device_id="Roche-Accu_Chek_Guide-900000000",
                patient_id=patient_id,
                gateway_id="gw-bench",
                seq=int(value.replace(".", "")),
            )
            # The hub's queues belong to the server's loop: publish on it.
            loop.call_soon_threadsafe(hub.publish, [reading])

    async def main() -> None:
        threading.Thread(target=publisher, args=(asyncio.get_running_loop(),), daemon=True).start()
        await server.serve()

    asyncio.run(main())


# -- measurements ------------------------------------------------------------------------


def timed_concurrently(
    clients: int, requests: int, call: Callable[[httpx.Client, int], None], base_url: str
) -> list[float]:
    """Latency of ``requests`` calls spread over ``clients`` threads."""
    samples: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            call(client, -1)  # warm the connection
            mine = []
            for index in range(offset, requests, clients):
                started = time.perf_counter()
                call(client, index)
                mine.append(time.perf_counter() - started)
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def fan_out(
    base_url: str,
    token: str,
    subscribers: int,
    events: int,
    server: subprocess.Popen[str],
    patient_id: str,
) -> list[float]:
    """publish → received delays over ``subscribers`` SSE streams, ``events`` readings."""
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(subscribers + 1)
    sent: dict[float, float] = {}

    def subscriber() -> None:
        seen = 0
        with (
            httpx.Client(base_url=base_url, timeout=60) as client,
            client.stream(
                "GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            lines = response.iter_lines()
            for line in lines:
                if line.startswith(": connected"):
                    break
            ready.wait()
            for line in lines:
                if not line.startswith("data:"):
                    continue
                arrived = time.perf_counter()
                glucose = json.loads(line[5:])["values"]["glucose"]
                with lock:
                    delays.append(arrived - sent[glucose])
                seen += 1
                if seen == events:
                    return

    threads = [threading.Thread(target=subscriber) for _ in range(subscribers)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(0.5)
    assert server.stdin is not None
    for number in range(events):
        # The reading's value tells the subscribers which send it was.
        value = round(5 + number / 1000, 3)
        sent[value] = time.perf_counter()
        server.stdin.write(f"{patient_id} {value}\n")
        server.stdin.flush()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=60)
    return delays


def raw_query(client: httpx.Client, database: str, statements: Sequence[str]) -> None:
    response = client.post(
        "/query", data={"db": database, "q": ";".join(statements), "epoch": "ns"}
    )
    response.raise_for_status()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--cgm-patients", type=int, default=500)
    parser.add_argument("--list-size", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument(
        "--serve", nargs=4, metavar=("REGISTRY", "INFLUX", "DB", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        registry_url, influx_url, database, port = args.serve
        serve(registry_url, influx_url, database, int(port))
        return

    import pyotp

    from ingest.stores.influx_v1 import (
        _any_patient,
        _conditions,
        _select,
    )  # the store's own InfluxQL
    from readings.model import Kind
    from tests.harness.ports import free_port
    from tests.harness.services import InfluxDBServer

    cgm_patients = min(args.cgm_patients, args.patients)
    ids = patient_ids(args.patients)
    end_day = datetime.now(UTC).date()  # readings up to today: the store looks back from now
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC)
    start = end - timedelta(days=args.days)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        work = Path(scratch)
        registry_url = f"sqlite:///{work / 'registry.db'}"
        started = time.perf_counter()
        secret = seed_registry(registry_url, ids, args.list_size, datetime.now(UTC))
        seed_seconds = time.perf_counter() - started
        influx = InfluxDBServer(work / "influx")
        influx.start()
        try:
            database = "bench"
            influx.create_database(database)
            points, load_seconds = load_influx(
                influx.url, database, ids, args.days, end_day, cgm_patients
            )
            print(
                f"registry: {args.patients} patients in {seed_seconds:.1f} s; "
                f"InfluxDB: {points:,} points in {load_seconds:.1f} s "
                f"({points / load_seconds:,.0f} points/s)",
                flush=True,
            )
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    registry_url,
                    influx.url,
                    database,
                    str(port),
                ],
                stdin=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
            try:
                base_url = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        httpx.get(f"{base_url}/api/v1/openapi.json", timeout=1)
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                token = httpx.post(
                    f"{base_url}/api/v1/auth/login",
                    json={
                        "username": DOCTOR,
                        "password": PASSWORD,
                        "code": pyotp.TOTP(secret).now(),
                    },
                ).json()["access_token"]
                auth = {"Authorization": f"Bearer {token}"}
                listed = httpx.get(f"{base_url}/api/v1/patients", headers=auth, timeout=60).json()
                assert listed["count"] == args.list_size, listed["count"]
                mine = sorted(p["id"] for p in listed["data"])
                results: list[
                    tuple[str, tuple[float, float, float], tuple[float, float, float] | None]
                ] = []

                # (a) the patient list
                api = timed_concurrently(
                    args.clients,
                    args.requests,
                    lambda c, _: c.get("/api/v1/patients", headers=auth).raise_for_status(),
                    base_url,
                )
                kinds = list(Kind)
                statements = [
                    _select(
                        "*",
                        kind,
                        [_any_patient(mine)],
                        ' GROUP BY "patient_id" ORDER BY time DESC LIMIT 1',
                        retention_policy=None,
                    )
                    for kind in kinds
                ]
                raw = timed_concurrently(
                    args.clients,
                    args.requests,
                    lambda c, _: raw_query(c, database, statements),
                    influx.url,
                )
                results.append(
                    (f"(a) patient list of {args.list_size}", percentiles(api), percentiles(raw))
                )

                # (b) one patient's chart per kind over the whole range (patient 0 has CGM)
                patient = ids[0]
                for kind, fields in (
                    (Kind.GLUCOSE, ("glucose",)),
                    (Kind.CGM_GLUCOSE, ("glucose",)),
                    (Kind.BLOOD_PRESSURE, ("systolic", "diastolic")),
                    (Kind.WEIGHT, ("weight",)),
                ):
                    params = {
                        "kind": kind.value,
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                        "points": 500,
                    }
                    answer = httpx.get(
                        f"{base_url}/api/v1/patients/{patient}/readings",
                        params=params,
                        headers=auth,
                        timeout=60,
                    ).json()
                    window = answer["window_seconds"]
                    conditions = _conditions(patient, start, end)
                    if window is None:
                        raw_statements = [
                            _select('count("id")', kind, conditions, retention_policy=None),
                            _select(
                                "*", kind, conditions, " ORDER BY time ASC", retention_policy=None
                            ),
                        ]
                    else:
                        every = int(window * 1000)
                        raw_statements = [
                            _select('count("id")', kind, conditions, retention_policy=None)
                        ] + [
                            _select(
                                f'mean("{f}"), min("{f}"), max("{f}"), count("{f}")',
                                kind,
                                conditions,
                                f" GROUP BY time({every}ms) fill(none)",
                                retention_policy=None,
                            )
                            for f in fields
                        ]
                    api = timed_concurrently(
                        args.clients,
                        args.requests,
                        lambda c, _, p=params: c.get(
                            f"/api/v1/patients/{patient}/readings", params=p, headers=auth
                        ).raise_for_status(),
                        base_url,
                    )
                    raw = timed_concurrently(
                        args.clients,
                        args.requests,
                        lambda c, _, s=raw_statements: raw_query(c, database, s),
                        influx.url,
                    )
                    shape = "downsampled" if window else "raw"
                    results.append(
                        (
                            f"(b) {args.days}-day {kind.value}: {answer['total']} readings → "
                            f"{len(answer['points'])} points ({shape})",
                            percentiles(api),
                            percentiles(raw),
                        )
                    )

                # (c) live fan-out
                delays = fan_out(base_url, token, args.subscribers, args.events, server, mine[0])
                results.append(
                    (
                        f"(c) live fan-out to {args.subscribers} SSE subscribers "
                        f"({len(delays)} deliveries)",
                        percentiles(delays),
                        None,
                    )
                )
            finally:
                if server.stdin is not None:
                    server.stdin.close()
                server.terminate()
                server.wait(timeout=30)
        finally:
            influx.stop()

    print()
    print(
        f"{args.patients} patients, {args.days} days, {cgm_patients} with CGM, "
        f"{args.clients} clients, "
        f"{args.requests} requests per measurement"
    )
    print()
    print("| measurement | API p50 / p95 / p99 ms | raw InfluxDB p50 / p95 / p99 ms | p95 ratio |")
    print("|---|---:|---:|---:|")
    for name, api_p, raw_p in results:
        raw_text = " / ".join(f"{v:.1f}" for v in raw_p) if raw_p else "–"
        ratio = f"{api_p[1] / raw_p[1]:.1f}×" if raw_p else "–"
        print(f"| {name} | {' / '.join(f'{v:.1f}' for v in api_p)} | {raw_text} | {ratio} |")


if __name__ == "__main__":
    main()
