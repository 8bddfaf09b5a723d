"""One fault chain, meter to store: every part real, each killed in turn.

The chain: a BLE glucose meter (bumble, inside the gateway process) and a serial OneTouch
Ultra 2 (a pty in this process) → a real gateway process (``GatewayRuntime``, outbox,
publisher) → a loopback TCP proxy (:mod:`tests.harness.proxy`) → real Mosquitto → two real
``vitalgate ingest run`` workers in one shared-subscription group → real InfluxDB 1.x, with
the care registry on PostgreSQL. One chain serves the whole module; the devices keep
measuring throughout (a reading every few seconds), so every fault hits readings in
flight.

Faults, in order: the gateway SIGKILLed in the middle of a meter download; the broker
SIGKILLed and restarted on its port; an ingest worker SIGKILLed (and restarted, as its
service manager would); InfluxDB SIGSTOPped for 30 s; InfluxDB SIGKILLed and restarted; a
partition between gateway and broker that closes nothing.

After each fault, :meth:`Chain.check` proves, independently of the earlier checks:

* the store holds exactly the readings the devices produced up to a moment after the
  fault — ids computed from the simulators' scenarios with the contract's identity
  function, not from anything that arrived — and nothing else;
* each reading was written once, or each repeat is counted (InfluxDB's own write trace
  records every body it received) and falls inside a fault's window, and collapsed (the
  store holds one point per id);
* the quarantine holds nothing of this gateway (so no duplicates either);
* no reading produced up to that moment is still in the gateway's outbox; the last test,
  after the devices stopped measuring, finds the outbox empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from device_drivers.base import DeviceInfo
from device_drivers.simulators.scenario import Scenario, ValueSeries
from gateway.pairing import PairingStore
from readings.model import Kind
from registry.db import create_engine_for, session_scope, upgrade
from registry.quarantine import QuarantineEntry, QuarantineStore
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.harness.proxy import TcpProxy
from tests.harness.services import InfluxDBServer, MosquittoServer
from tests.integration.chain_helpers import (
    ONETOUCH_MANUFACTURER,
    ONETOUCH_MODEL,
    ONETOUCH_PROFILE,
    BleDevice,
    DevicePlan,
    FaultWindow,
    GatewayProcess,
    PacedOneTouch,
    WriteLog,
    influx_writes,
    outbox_ids,
    unexplained_repeats,
    wall_clock,
)
from tests.integration.ingest_helpers import IngestProcess, influx_ids, scrape

pytestmark = [pytest.mark.integration, pytest.mark.fault]

TIME_ZONE = "Asia/Shanghai"
DATABASE = "vitalgate_chain"
INGEST_GROUP = "chain"
KEEPALIVE_SECONDS = 5
"""The gateway's MQTT keep-alive (the smallest it accepts): the partition test waits for it."""
ACK_TIMEOUT_SECONDS = 15.0
"""The gateway re-publishes a reading not acknowledged end to end within this (doubling);
longer than a healthy round trip, so steady state never re-publishes."""
STORE_TIMEOUT_SECONDS = 2
"""Ingest's HTTP timeout towards InfluxDB: a write into the stopped server fails in 2 s."""
ONETOUCH_BYTES_PER_SECOND = 4000.0
"""The OneTouch's pace: a dump of its ≈ 200 records takes about three seconds, long enough
to kill the gateway in the middle of one."""
CATCH_UP_TIMEOUT_SECONDS = 90.0
"""Bound on the chain catching up after a fault (the backlog of a 30 s InfluxDB stop, the
gateway's re-publish doubling, a worker restart)."""
PRODUCTION_SECONDS = 160
"""The devices measure for this long after they are switched on; the faults fit in it."""
BLE_LIVE_INTERVAL_SECONDS = 2.0
ONETOUCH_LIVE_INTERVAL_SECONDS = 3.0
INFLUX_PAUSE_SECONDS = 30.0
OUTAGE_SECONDS = 5.0
"""How long the broker, or a worker, stays dead before it is restarted."""
PARTITION_DETECTION_LIMIT_SECONDS = 2 * KEEPALIVE_SECONDS + 3
"""paho sends PINGREQ one keep-alive after the last packet it received and gives up one
keep-alive later: a half-open link is noticed within two keep-alives (+3 s for a loaded
machine's scheduling)."""

ACCU_CHEK = BleDevice(
    profile="roche_accu_chek_guide",
    manufacturer="Roche",
    model="Accu-Chek Guide",
    serial="92310000123",
    scenario=Scenario(
        series=(
            # 200 results in memory, one every 4 hours …
            ValueSeries(
                start_offset_seconds=-200 * 4 * 3600.0,
                interval_seconds=4 * 3600.0,
                count=200,
                values={"glucose": 7.0},
                jitter={"glucose": 2.5},
                seed=11,
            ),
            # … then one every 2 s while the suite runs.
            ValueSeries(
                start_offset_seconds=BLE_LIVE_INTERVAL_SECONDS,
                interval_seconds=BLE_LIVE_INTERVAL_SECONDS,
                count=int(PRODUCTION_SECONDS / BLE_LIVE_INTERVAL_SECONDS),
                values={"glucose": 6.0},
                jitter={"glucose": 2.0},
                seed=12,
            ),
        )
    ),
)
ONETOUCH_SCENARIO = Scenario(
    series=(
        ValueSeries(
            start_offset_seconds=-150 * 6 * 3600.0,
            interval_seconds=6 * 3600.0,
            count=150,
            values={"glucose": 7.5},
            jitter={"glucose": 2.5},
            seed=21,
        ),
        ValueSeries(
            start_offset_seconds=ONETOUCH_LIVE_INTERVAL_SECONDS,
            interval_seconds=ONETOUCH_LIVE_INTERVAL_SECONDS,
            count=int(PRODUCTION_SECONDS / ONETOUCH_LIVE_INTERVAL_SECONDS),
            values={"glucose": 6.5},
            jitter={"glucose": 2.0},
            seed=22,
        ),
    )
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]
) -> None:
    """Poll ``condition``; on timeout fail with ``what`` (a callable is asked then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {shown}")
        time.sleep(0.1)


@dataclass
class Chain:
    """The running chain and what the checks need to know about it."""

    plan: DevicePlan
    gateway_id: str
    gateway: GatewayProcess
    gateway_data: Path
    onetouch: PacedOneTouch
    proxy: TcpProxy
    mosquitto: MosquittoServer
    influxdb: InfluxDBServer
    workers: list[IngestProcess]
    registry_url: str
    windows: list[FaultWindow] = field(default_factory=list)

    # -- observation ----------------------------------------------------------------------

    def stored_points(self) -> list[str]:
        """Every reading id in the store, one entry per point (repeats would show)."""
        return influx_ids(self.influxdb, DATABASE, [Kind.GLUCOSE])

    def quarantined(self) -> list[QuarantineEntry]:
        engine = create_engine_for(self.registry_url)
        try:
            entries = QuarantineStore(engine).recent(limit=100_000)
        finally:
            engine.dispose()
        return [entry for entry in entries if entry.gateway_id == self.gateway_id]

    def outbox(self) -> set[str]:
        return outbox_ids(self.gateway_data / "outbox.db")

    def healthy(self) -> None:
        """Bring back anything an earlier, failed test left broken."""
        if self.proxy.partitioned:
            self.proxy.heal()
        if self.influxdb.paused:
            self.influxdb.resume()
        for service in (self.mosquitto, self.influxdb):
            if not service.is_running():
                service.start()
        for worker in self.workers:
            if worker.process is None or worker.process.poll() is not None:
                worker.start()
        if self.gateway.process is None or self.gateway.process.poll() is not None:
            self.gateway.start()
            self.gateway.wait_running()

    # -- the checks -----------------------------------------------------------------------

    def check(self, fault: str | None, started: datetime | None) -> dict[str, int]:
        """Catch up, then prove the chain whole (see the module docstring).

        Args:
            fault: the fault just recovered from (``None``: no fault).
            started: when that fault began.

        Returns:
            numbers for the report: readings expected, repeats seen …
        """
        cut = self.plan.elapsed_seconds()
        by_device = self.plan.produced_ids(cut)
        expected = set().union(*by_device.values())
        # The expected ids are distinct and as many as the records the devices took: the
        # identity function collapses no two records, within a device or across devices.
        assert len(expected) == self.plan.records_taken(cut), {
            device: len(ids) for device, ids in by_device.items()
        }

        def caught_up() -> bool:
            return expected <= set(self.stored_points()) and not expected & self.outbox()

        wait_until(
            caught_up,
            CATCH_UP_TIMEOUT_SECONDS,
            lambda: (
                f"the {len(expected)} readings produced by {cut:.0f} s to be stored and acked "
                f"({len(expected - set(self.stored_points()))} missing from the store, "
                f"{len(expected & self.outbox())} still in the outbox)"
            ),
        )
        if fault is not None and started is not None:
            # A re-publish after the ack timeout may trail the catch-up by that long.
            settled = utc_now() + timedelta(seconds=ACK_TIMEOUT_SECONDS * 2)
            self.windows.append(FaultWindow(fault, started, settled))

        points = self.stored_points()
        stored = set(points)
        doubled = [key for key, count in Counter(points).items() if count > 1]
        assert not doubled, f"{len(doubled)} readings stored as two points (not collapsed)"
        foreign = stored - self.plan.all_produced()
        assert not foreign, f"{len(foreign)} stored readings no device produced"

        writes = influx_writes(self.influxdb.console_log_path)
        unwritten = stored - set(writes.writes)
        assert not unwritten, f"{len(unwritten)} stored readings InfluxDB never traced"
        unexplained = unexplained_repeats(writes, self.windows)
        assert not unexplained, (
            f"{len(unexplained)} readings written again outside every fault window "
            f"(windows {[(w.name, w.started, w.settled) for w in self.windows]}); "
            f"e.g. {next(iter(unexplained.items()))}"
        )

        quarantined = self.quarantined()
        keys = Counter((entry.reading_id, entry.reason) for entry in quarantined)
        assert not [key for key, count in keys.items() if count > 1], "quarantine duplicates"
        assert not quarantined, (
            f"{len(quarantined)} readings of the chain quarantined: "
            f"{sorted(Counter(entry.reason for entry in quarantined).items())}"
        )
        return {
            "expected": len(expected),
            "stored": len(stored),
            "writes": sum(len(moments) for moments in writes.writes.values()),
            "repeated": len(writes.repeated()),
        }


# -- building the chain --------------------------------------------------------------------


def _registry(base_url: str, gateway_id: str, plan: DevicePlan) -> Iterator[str]:
    """A migrated registry in its own schema of the session's PostgreSQL database."""
    schema = f"chain_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(base_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        upgrade(url)
        engine = create_engine_for(url)
        # Bound long before the oldest record in any meter's memory.
        bound_at = datetime.now(UTC) - timedelta(days=400)
        try:
            with session_scope(engine) as session:
                GatewayRepository(session).add(gateway_id, "fault chain")
                PatientRepository(session).add(plan.patient_id, None, TIME_ZONE)
                for device_id in plan.device_ids():
                    DeviceRepository(session).bind(
                        device_id, gateway_id, plan.patient_id, at=bound_at
                    )
        finally:
            engine.dispose()
        yield url
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _gateway_config(path: Path, gateway_id: str, data_dir: Path, proxy: TcpProxy) -> None:
    path.write_text(
        f'gateway_id = "{gateway_id}"\n'
        f'data_dir = "{data_dir}"\n'
        "demo = true\n"
        'log_level = "INFO"\n'
        "[mqtt]\n"
        f'url = "mqtt://{proxy.host}:{proxy.port}"\n'
        f"keepalive_seconds = {KEEPALIVE_SECONDS}\n"
        f"ack_timeout_seconds = {ACK_TIMEOUT_SECONDS}\n"
        "status_interval_seconds = 2.0\n"
        "reconnect_min_seconds = 0.2\n"
        "reconnect_max_seconds = 2.0\n"
        "[clock]\n"
        f'time_zone = "{TIME_ZONE}"\n'
        "[devices]\n"
        "ble_retry_seconds = 1.0\n"
        "ble_scan_window_seconds = 0.5\n"
        "absent_retry_seconds = 1.0\n"
        "serial_poll_seconds = 3.0\n"
        "serial_presence_check_seconds = 0.5\n"
        "[breaker]\n"
        "failure_threshold = 1000\n"
        "backoff_initial_seconds = 0.5\n"
        "backoff_max_seconds = 2.0\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("chain")
    gateway_id = f"gw-chain-{uuid.uuid4().hex[:6]}"
    epoch = wall_clock(TIME_ZONE)().replace(microsecond=0)
    plan = DevicePlan(
        epoch=epoch,
        time_zone=TIME_ZONE,
        patient_id=f"p-chain-{uuid.uuid4().hex[:6]}",
        ble=(ACCU_CHEK,),
        onetouch_serial="GMF600DCY",
        onetouch=ONETOUCH_SCENARIO,
    )
    with contextlib.ExitStack() as stack:
        registry_url = stack.enter_context(
            contextlib.contextmanager(_registry)(postgres_url, gateway_id, plan)
        )
        mosquitto = MosquittoServer(root / "mosquitto")
        mosquitto.start()
        stack.callback(mosquitto.kill)
        influxdb = InfluxDBServer(
            root / "influxdb",
            config_overrides={
                # InfluxDB's own record of every body written: how often each reading was.
                "http": {"write-tracing": True},
                "logging": {"format": "json"},
            },
        )
        influxdb.start()
        stack.callback(influxdb.kill)
        influxdb.create_database(DATABASE)
        proxy = stack.enter_context(TcpProxy(mosquitto.host, mosquitto.port))

        workers = []
        for index in range(2):
            workdir = root / f"ingest-{index}"
            workdir.mkdir()
            worker = IngestProcess(
                workdir,
                [
                    "--mqtt-url",
                    mosquitto.url,
                    "--store",
                    f"influxdb-v1://{influxdb.host}:{influxdb.port}/{DATABASE}"
                    f"?timeout={STORE_TIMEOUT_SECONDS}",
                    "--registry",
                    registry_url,
                    "--group",
                    INGEST_GROUP,
                    "--client-id",
                    f"ingest-chain-{index}",
                    "--metrics-port",
                    "0",
                ],
            )
            worker.start()
            stack.callback(worker.close)
            workers.append(worker)

        onetouch = PacedOneTouch(plan, bytes_per_second=ONETOUCH_BYTES_PER_SECOND)
        onetouch.start()
        stack.callback(onetouch.close)
        gateway_data = root / "gateway-data"
        gateway_data.mkdir()
        with PairingStore(gateway_data / "pairings.db", clock=utc_now) as pairings:
            pairings.bind(
                DeviceInfo(
                    manufacturer=ONETOUCH_MANUFACTURER,
                    model=ONETOUCH_MODEL,
                    serial=plan.onetouch_serial,
                ),
                patient_id=plan.patient_id,
                profile_id=ONETOUCH_PROFILE,
                address=onetouch.port,
                time_zone=TIME_ZONE,
            )
        config = root / "gateway.toml"
        _gateway_config(config, gateway_id, gateway_data, proxy)
        gateway = GatewayProcess(config, plan, root)
        gateway.start()
        stack.callback(gateway.close)
        gateway.wait_running()
        yield Chain(
            plan=plan,
            gateway_id=gateway_id,
            gateway=gateway,
            gateway_data=gateway_data,
            onetouch=onetouch,
            proxy=proxy,
            mosquitto=mosquitto,
            influxdb=influxdb,
            workers=workers,
            registry_url=registry_url,
        )


# -- the delivery count itself ----------------------------------------------------------------

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_repeat_is_explained_only_by_a_fault_between_the_two_writes() -> None:
    log = WriteLog()
    log.writes["once"] = [_at(1)]
    log.writes["around-the-fault"] = [_at(9), _at(25)]
    log.writes["steady-state-twice"] = [_at(1), _at(2)]
    log.writes["long-after"] = [_at(50), _at(60)]
    window = FaultWindow("broker SIGKILL", started=_at(10), settled=_at(30))
    assert set(unexplained_repeats(log, [window])) == {"steady-state-twice", "long-after"}
    assert set(unexplained_repeats(log, [])) == {
        "around-the-fault",
        "steady-state-twice",
        "long-after",
    }


def test_the_write_trace_counts_every_body_influxdb_received(tmp_path: Path) -> None:
    reading = "0b9d7c8e-1f2a-5b3c-8d4e-5f6a7b8c9d0e"
    trace = {
        "lvl": "info",
        "ts": "2026-03-01T08:00:01.5Z",
        "msg": "Write body received by handler",
        "body": f'glucose,device_id=d id="{reading}",glucose=5.5 1\n',
    }
    other = {"lvl": "info", "ts": "2026-03-01T08:00:02Z", "msg": "Listening on HTTP"}
    log = tmp_path / "influxd.log"
    log.write_text("\n".join(json.dumps(line) for line in (trace, other, trace)) + "\n")
    writes = influx_writes(log)
    assert writes.requests == 2
    assert writes.count(reading) == 2
    assert writes.repeated() == {reading: [_at(1.5), _at(1.5)]}


# -- the faults -------------------------------------------------------------------------------


def test_without_faults_every_reading_is_stored_once(chain: Chain) -> None:
    numbers = chain.check(None, None)
    assert numbers["repeated"] == 0
    assert numbers["expected"] > 350  # both meters' memories, and the first live readings


def _report(name: str, numbers: Mapping[str, float]) -> None:
    print(f"chain after {name}: {numbers}")  # shown with -s: the numbers of the report


def _produced_since(chain: Chain, started_elapsed: float) -> int:
    """Readings the devices produced since ``started_elapsed``: the fault hit live data."""
    return len(chain.plan.all_produced() - chain.plan.all_produced(started_elapsed))


def test_gateway_sigkilled_while_downloading_from_a_meter(chain: Chain) -> None:
    chain.healthy()
    meter = chain.onetouch
    dumps_before, _ = meter.dump_in_progress()

    def mid_dump() -> bool:
        started_dumps, completed = meter.dump_in_progress()
        return started_dumps > max(completed, dumps_before) and meter.dump_bytes_sent > 2000

    wait_until(mid_dump, 30, "a OneTouch dump under way")
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    chain.gateway.kill()
    started_dumps, completed = meter.dump_in_progress()
    assert started_dumps > completed, "the dump ended before the kill"
    chain.gateway.start()
    chain.gateway.wait_running()
    numbers = chain.check("gateway SIGKILL", started)
    _report(
        "gateway SIGKILL", {**numbers, "produced_during": _produced_since(chain, elapsed_at_fault)}
    )
    assert _produced_since(chain, elapsed_at_fault) > 0


def test_broker_sigkilled_and_restarted_on_its_port(chain: Chain) -> None:
    chain.healthy()
    port = chain.mosquitto.port
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    chain.mosquitto.kill()
    time.sleep(OUTAGE_SECONDS)
    chain.mosquitto.start()
    assert chain.mosquitto.port == port
    numbers = chain.check("broker SIGKILL", started)
    _report(
        "broker SIGKILL", {**numbers, "produced_during": _produced_since(chain, elapsed_at_fault)}
    )


def test_an_ingest_worker_sigkilled(chain: Chain) -> None:
    chain.healthy()
    victim = chain.workers[0]
    # The group splits the work: the victim has its share when it dies.
    received = scrape(victim.metrics_url).get("vitalgate_ingest_messages_received_total", 0.0)
    assert received > 0, "the worker to be killed had no share of the work"
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    victim.kill()
    time.sleep(OUTAGE_SECONDS)
    victim.start()
    numbers = chain.check("ingest SIGKILL", started)
    _report(
        "ingest SIGKILL", {**numbers, "produced_during": _produced_since(chain, elapsed_at_fault)}
    )


def test_influxdb_stopped_for_30_seconds(chain: Chain) -> None:
    chain.healthy()
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    chain.influxdb.pause()
    time.sleep(INFLUX_PAUSE_SECONDS)
    held = chain.outbox()
    chain.influxdb.resume()
    numbers = chain.check("InfluxDB SIGSTOP", started)
    _report(
        "InfluxDB SIGSTOP",
        {
            **numbers,
            "outbox_at_resume": len(held),
            "produced_during": _produced_since(chain, elapsed_at_fault),
        },
    )
    # Nothing was acknowledged while the store was stopped: the readings of the pause
    # waited in the gateway's outbox.
    assert held, "the outbox was empty at the end of the pause"


def test_influxdb_sigkilled_and_restarted(chain: Chain) -> None:
    chain.healthy()
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    chain.influxdb.kill()
    time.sleep(OUTAGE_SECONDS)
    chain.influxdb.start()
    numbers = chain.check("InfluxDB SIGKILL", started)
    _report(
        "InfluxDB SIGKILL", {**numbers, "produced_during": _produced_since(chain, elapsed_at_fault)}
    )


def test_a_partition_between_gateway_and_broker_is_noticed_within_the_keepalive(
    chain: Chain,
) -> None:
    chain.healthy()
    starts = chain.gateway.starts
    elapsed_at_fault = chain.plan.elapsed_seconds()
    started = utc_now()
    chain.proxy.partition()

    def lost() -> list[datetime]:
        return [
            line.at
            for line in chain.gateway.lines(starts)
            if line.message == "connection to the broker lost" and line.at >= started
        ]

    try:
        wait_until(
            lambda: bool(lost()), 3 * PARTITION_DETECTION_LIMIT_SECONDS, "the gateway to notice"
        )
        noticed_after = (lost()[0] - started).total_seconds()
        time.sleep(2.0)
    finally:
        chain.proxy.heal()
    healed = utc_now()
    wait_until(
        lambda: any(
            line.message == "connected to the broker" and line.at >= healed
            for line in chain.gateway.lines(starts)
        ),
        30,
        "the gateway to reconnect",
    )
    reconnected_after = min(
        (line.at - healed).total_seconds()
        for line in chain.gateway.lines(starts)
        if line.message == "connected to the broker" and line.at >= healed
    )
    numbers = chain.check("partition", started)
    _report(
        "partition",
        {
            **numbers,
            "noticed_after_s": round(noticed_after, 1),
            "reconnected_after_heal_s": round(reconnected_after, 1),
            "produced_during": _produced_since(chain, elapsed_at_fault),
        },
    )
    assert noticed_after <= PARTITION_DETECTION_LIMIT_SECONDS


def test_when_the_devices_stop_measuring_every_outbox_is_empty(chain: Chain) -> None:
    chain.healthy()
    end = chain.plan.production_ends_seconds()
    wait_until(
        lambda: chain.plan.elapsed_seconds() > end + 1, PRODUCTION_SECONDS, "the last record"
    )
    numbers = chain.check(None, None)
    assert set(chain.stored_points()) == chain.plan.all_produced()
    assert chain.outbox() == set()
    for worker in chain.workers:
        assert scrape(worker.metrics_url)["vitalgate_ingest_backlog_messages"] == 0
    _report("the end", numbers)


# -- found while building the chain ----------------------------------------------------------


async def test_a_meter_that_keeps_the_link_is_downloaded_again(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    from device_drivers.profiles import find_profile
    from device_drivers.simulators.ble_home import SimulatedHome
    from gateway.config import DeviceSettings, GatewaySettings, MqttSettings
    from gateway.links import BleBackends
    from gateway.runtime import GatewayRuntime

    meter = find_profile(ACCU_CHEK.profile)
    # One result in memory, one taken 3 s after the meter is switched on.
    scenario = Scenario.from_dict(
        {
            "records": [
                {"at_offset_seconds": -600, "values": {"glucose": 5.6}},
                {"at_offset_seconds": 3, "values": {"glucose": 6.1}},
            ]
        }
    )
    settings = GatewaySettings(
        gateway_id="gw-held-link",
        data_dir=tmp_path / "data",
        demo=True,
        mqtt=MqttSettings(url=mosquitto.url),
        devices=DeviceSettings(ble_retry_seconds=0.5, ble_scan_window_seconds=0.5),
    )
    async with SimulatedHome([meter], scenarios={meter.profile_id: scenario}) as home:
        simulated = home.devices[meter.profile_id]
        with PairingStore(settings.pairings_path, clock=utc_now) as pairings:
            pairings.bind(
                simulated.info,
                patient_id="p-held",
                profile_id=meter.profile_id,
                address=simulated.address,
                time_zone=TIME_ZONE,
            )
        runtime = GatewayRuntime(
            settings, ble=BleBackends(client=home.client_backend, scanner=home.scanner_backend)
        )
        task = asyncio.create_task(runtime.run())
        try:
            async with asyncio.timeout(30):
                await runtime.ready.wait()
            deadline = time.monotonic() + 15
            while len(outbox_ids(settings.outbox_path)) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - the gateway's own progress
                await asyncio.sleep(0.2)
            downloaded = len(outbox_ids(settings.outbox_path))
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 30)
    # No consumer acknowledges, so every downloaded result stays in the outbox. The second
    # was taken 3 s in, while the simulated meter (which never drops its link) was
    # connected: it comes with a poll over that link (every ble_retry_seconds).
    assert downloaded == 2
