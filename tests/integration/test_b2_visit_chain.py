"""Issue 12, done when: a week of high home BP through the real chain opens one visit task.

A simulated upper-arm cuff (bumble, BLE Blood Pressure Service) → the real
:class:`~gateway.runtime.GatewayRuntime` (device session, SQLite outbox, paho publisher) →
real Mosquitto → a real ingest worker (ownership against the registry, SQLite reading
store, ``accepted/``) → the real evaluator service with the lifecycle sink that opens visit
tasks. Every one of them reads the same injected :class:`~tests.fakes.ManualClock` (the
cuff reads it in its patient's zone, as its own wall clock), so the test can bind the cuff,
let a week of readings accumulate in its memory and deliver them "now" — neither late data
(B2's ``late_after`` is 8 days) nor measured before the device's binding.

Everything runs in this one process (the gateway on the test's event loop, ingest and the
evaluator on their own threads): a clock shared by several processes would need each
service's command line to take a clock source, which none has (they read the system time).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from alerts.evaluator import Evaluator, RegistryPatientDirectory
from alerts.pipeline import LifecycleSink
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from alerts.service import EvaluatorService
from device_drivers.profiles import find_profile
from device_drivers.simulators.ble_home import SimulatedHome
from device_drivers.simulators.scenario import Scenario
from gateway.config import GatewaySettings
from gateway.links import BleBackends
from gateway.pairing import PairingStore
from gateway.runtime import GatewayRuntime
from infra.mqtt import ClientSettings, parse_mqtt_url
from ingest.config import load_settings as load_ingest_settings
from ingest.stores import open_store
from ingest.worker import open_worker
from readings.topics import DEFAULT_PARTITIONS
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from registry.visit_alerts import visit_task_hook
from registry.visit_models import VisitStatus, VisitTask
from tests.fakes import ManualClock
from tests.harness.services import MosquittoServer
from tests.integration.chain_helpers import METER_LINK_SECONDS, _end_links_after

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHANGHAI = ZoneInfo("Asia/Shanghai")
PATIENT, GATEWAY = "p-b2", "gw-b2"
CUFF_PROFILE = "omron_hem7361t"
BOUND_AT = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
"""08:00 in Shanghai: the nurse binds the cuff at the patient's home."""
WEEK = timedelta(days=7)
WAIT_SECONDS = 90.0
"""Per step on a loaded 2-core machine: reconnects, 28 indications, ingest, evaluation."""

# ESH home protocol: two readings a minute apart, morning and evening, for seven days.
_TIMES_OF_DAY = (timedelta(hours=1), timedelta(hours=1, minutes=1),
                 timedelta(hours=12), timedelta(hours=12, minutes=1))  # fmt: skip


def high_bp_weeks(weeks: int) -> Scenario:
    """``weeks`` of 152/96 mmHg from the cuff's switch-on (the binding), four a day."""
    records = [
        {
            "at_offset_seconds": (timedelta(days=day) + at).total_seconds(),
            "kind": "blood_pressure",
            "values": {"systolic": 152 + (n % 3), "diastolic": 96, "pulse": 72},
        }
        for day in range(7 * weeks)
        for n, at in enumerate(_TIMES_OF_DAY)
    ]
    return Scenario.from_dict({"records": records})


@dataclass
class Chain:
    clock: ManualClock
    engine: Engine
    store_url: str

    def b2_fired(self) -> list[AlertRow]:
        """B2 alerts that fired (a pending one waits for its confirmation), oldest first."""
        with session_scope(self.engine, write=False) as s:
            return list(
                s.scalars(
                    select(AlertRow)
                    .where(AlertRow.rule_id == "B2", AlertRow.fired_at.is_not(None))
                    .order_by(AlertRow.id)
                )
            )

    def tasks(self) -> list[VisitTask]:
        with session_scope(self.engine, write=False) as s:
            return list(s.scalars(select(VisitTask).order_by(VisitTask.id)))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


@pytest.fixture
async def chain(tmp_path: Path, mosquitto: MosquittoServer) -> AsyncIterator[Chain]:
    clock = ManualClock(BOUND_AT)

    def device_wall_clock() -> datetime:
        return clock().astimezone(SHANGHAI).replace(tzinfo=None)

    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    store_url = f"sqlite:///{tmp_path / 'readings.db'}"
    upgrade(registry_url)
    engine = create_engine_for(registry_url)
    cuff = find_profile(CUFF_PROFILE)
    home = SimulatedHome([cuff], scenarios={cuff.profile_id: high_bp_weeks(2)},
                         now=device_wall_clock)  # fmt: skip
    simulated = home.devices[cuff.profile_id]
    # Switched on at the binding: its memory fills as the shared clock moves on.
    simulated.clock.started_at = device_wall_clock()
    # The binding, at BOUND_AT on the shared clock, in the registry and on the gateway.
    with session_scope(engine) as s:
        GatewayRepository(s, clock=clock).add(GATEWAY)
        PatientRepository(s, clock=clock).add(PATIENT, display_name="王芳")
        DeviceRepository(s, clock=clock).bind(
            simulated.info.device_id, GATEWAY, PATIENT, at=clock(), profile=cuff.profile_id
        )
    settings = GatewaySettings.model_validate(
        {
            "gateway_id": GATEWAY,
            "data_dir": tmp_path / "gateway",
            "demo": True,
            "mqtt": {"url": mosquitto.url, "status_interval_seconds": 1},
            "devices": {"ble_retry_seconds": 0.5},
            "clock": {"time_zone": "Asia/Shanghai"},
        }
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with PairingStore(settings.pairings_path, clock=clock) as pairings:
        pairings.bind(
            simulated.info,
            patient_id=PATIENT,
            profile_id=cuff.profile_id,
            address=simulated.address,
            time_zone="Asia/Shanghai",
        )
    # A week goes by; the cuff is out of range of the gateway (nothing runs yet).
    clock.advance(days=7)
    ingest = open_worker(
        load_ingest_settings(
            mqtt_url=mosquitto.url,
            store_url=store_url,
            registry_url=registry_url,
            client_id="ingest-b2",
            metrics_port=None,
        ),
        clock=clock,
    )
    ingest.start()
    evaluator = Evaluator(
        engine=engine,
        store=open_store(store_url),
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=LifecycleSink(engine, clock=clock, on_fired=visit_task_hook(clock)),
        clock=clock,
        holder="alerts-b2",
        partitions=DEFAULT_PARTITIONS,
        lease_ttl=timedelta(seconds=30),
    )
    service = EvaluatorService(
        evaluator,
        ClientSettings(
            endpoint=parse_mqtt_url(mosquitto.url),
            client_id="alerts-b2",
            persistent_session=True,
            session_expiry_seconds=3600,
            manual_ack=True,
        ),
        tick=timedelta(hours=1),
    )
    service_thread = threading.Thread(target=service.run, daemon=True)
    service_thread.start()
    await home.start()
    radios = asyncio.create_task(_end_links_after(list(home.devices.values()), METER_LINK_SECONDS))
    runtime = GatewayRuntime(
        settings,
        clock=clock,
        ble=BleBackends(client=home.client_backend, scanner=home.scanner_backend),
    )
    gateway = asyncio.create_task(runtime.run())
    try:
        yield Chain(clock, engine, store_url)
    finally:
        runtime.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(gateway, 30)
        radios.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await radios
        await home.stop()
        service.stop()
        service_thread.join(30)
        ingest.close()
        engine.dispose()


async def test_a_week_of_high_home_bp_opens_one_visit_task(chain: Chain) -> None:
    week_end = BOUND_AT + WEEK
    await until(lambda: len(chain.b2_fired()) == 1, "B2 to fire")
    [alert] = chain.b2_fired()
    assert alert.patient_id == PATIENT
    assert not alert.late
    [task] = chain.tasks()
    assert task.reason_key == "rule:B2"
    assert task.alert_id == alert.id
    assert task.status == VisitStatus.REQUESTED.value
    assert task.kind == "home_visit"
    # Within two weeks of the alert, on the shared clock (not this machine's).
    assert task.earliest == week_end
    assert task.latest == week_end + timedelta(days=14)
    # The doctor resolves the alert; the visit stays (the nurse decides).
    with session_scope(chain.engine) as s:
        AlertRepository(s).resolve(alert.id, actor="dr.zhang", note="已电话联系", now=chain.clock())
    # A second week of high BP: B2 fires again, and finds the open task.
    chain.clock.advance(days=7)
    await until(lambda: len(chain.b2_fired()) == 2, "B2 to fire again")
    with session_scope(chain.engine, write=False) as s:
        open_tasks = s.scalar(
            select(func.count()).select_from(VisitTask).where(
                VisitTask.patient_id == PATIENT,
                VisitTask.status.in_(["requested", "scheduled"]),
            )
        )  # fmt: skip
    assert open_tasks == 1
    assert [t.id for t in chain.tasks()] == [task.id]
