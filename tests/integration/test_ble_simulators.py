"""BLE drivers against the bumble simulators, through bleak's public classes.

Each test runs a real GATT server (bumble) on a virtual link and talks to it with the
gateway's own code: ``BleakTransport`` → ``BleakClient(backend=...)`` → driver. Simulated
time is injected (``ManualClock``), so "three new records later" or "after the memory was
cleared" happen when the test says, not after real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from device_drivers.base import DeviceInfo, Driver, GattTransport, RecordCursor
from device_drivers.ble_cgm import CgmDriver
from device_drivers.ble_generic import BloodPressureDriver, HeartRateDriver, PulseOximeterDriver
from device_drivers.ble_glucose import GlucoseMeterDriver
from device_drivers.errors import DeviceTimeout, ProtocolError, TransportError
from device_drivers.gatt import racp, uuids
from device_drivers.gatt.cgm import parse_cgm_notification
from device_drivers.gatt.racp import Operator
from device_drivers.measurement import Measurement
from device_drivers.profiles import RacpOperator, find_profile, load_profiles
from device_drivers.simulators.ble_blood_pressure_cuff import BloodPressureCuffSimulator
from device_drivers.simulators.ble_cgm import CgmSimulator
from device_drivers.simulators.ble_glucose_meter import GlucoseMeterSimulator
from device_drivers.simulators.ble_heart_rate_strap import HeartRateStrapSimulator
from device_drivers.simulators.ble_home import SimulatedHome
from device_drivers.simulators.ble_peripheral import SimulatedPeripheral
from device_drivers.simulators.ble_pulse_oximeter import SPOT_CHECK_FLAG, PulseOximeterSimulator
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, ValueSeries
from device_drivers.transports.ble import BleakTransport
from readings.model import BloodPressureValues, Kind, Reading, new_reading
from tests.fakes import ManualClock

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 1, 8, 0, 0)
"""Device wall-clock time (naive, as devices keep it) when the simulators start."""
RECEIVED_AT = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
DOWNLOAD_500_MAX_SECONDS = 5.0
"""Measured at about 0.15 s; the bound catches a simulator or driver that turned slow."""


async def eventually(condition: Callable[[], bool], timeout_seconds: float = 3.0) -> None:
    """Wait until ``condition()`` (the simulator polls its scenario every 20 ms)."""
    async with asyncio.timeout(timeout_seconds):
        # Polling: the state belongs to the simulator and the driver, not to an Event here.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def reading_of(measurement: Measurement, info: DeviceInfo) -> Reading:
    """The wire reading a gateway session would make of ``measurement``."""
    assert measurement.values is not None
    measured = measurement.device_time.replace(tzinfo=UTC) if measurement.device_time else None
    return new_reading(
        values=measurement.values,
        source_unit=measurement.source_unit,
        measured_at=measured or RECEIVED_AT,
        received_at=RECEIVED_AT,
        device_id=info.device_id,
        patient_id="patient-1",
        gateway_id="gateway-1",
        device_time=measurement.device_time,
        context=measurement.context,
        flags=measurement.flags,
        seq=measurement.seq,
    )


@pytest.fixture
def clock() -> ManualClock:
    """The local wall clock of the simulated devices; moves only when told."""
    return ManualClock(START)


@pytest.fixture
async def link() -> AsyncIterator[BumbleLink]:
    radio = BumbleLink()
    await radio.start()
    yield radio
    await radio.close()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[SimulatedPeripheral], Any]]:
    """Start simulators for a test and stop them afterwards, whatever happened."""
    running: list[SimulatedPeripheral] = []

    async def start(simulator: SimulatedPeripheral) -> SimulatedPeripheral:
        await simulator.start()
        running.append(simulator)
        return simulator

    yield start
    for simulator in running:
        await simulator.stop()


def glucose_history(count: int) -> ValueSeries:
    """``count`` hourly readings already in the meter, the newest an hour ago."""
    return ValueSeries(
        start_offset_seconds=-count * 3600.0,
        interval_seconds=3600.0,
        count=count,
        values={"glucose": 6.5},
        jitter={"glucose": 2.0},
        context={"meal": "preprandial"},
    )


def at(offset_seconds: float, **values: float) -> ScenarioRecord:
    return ScenarioRecord(at_offset_seconds=offset_seconds, values=values)


async def test_glucose_500_then_3_new_then_full_download_after_memory_clear(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("roche_accu_chek_guide")
    scenario = Scenario(
        series=(glucose_history(500),),
        records=(
            at(60, glucose=7.1),
            at(61, glucose=7.2),
            at(62, glucose=7.3),
            at(200, glucose=5.1),
            at(201, glucose=5.2),
        ),
        clear_memory_at=100.0,
    )
    meter: GlucoseMeterSimulator = await started(
        GlucoseMeterSimulator(link, profile, scenario, now=clock)
    )
    driver = GlucoseMeterDriver(
        BleakTransport(meter.address, backend=link.client_backend), profile=profile
    )
    await driver.connect()
    info = await driver.read_device_info()
    assert info.device_id == "Roche-Accu_Chek_Guide-92310000123"

    began = time.perf_counter()
    first = await driver.fetch_records(None)
    elapsed = time.perf_counter() - began
    assert elapsed < DOWNLOAD_500_MAX_SECONDS, f"500 records took {elapsed:.2f} s"
    assert [m.seq for m in first.measurements] == list(range(1, 501))
    assert not first.full_download
    assert first.cursor.last_seq == 500
    assert all(m.context["meal"] == "preprandial" for m in first.measurements)
    await driver.disconnect()

    clock.advance(63)  # three new measurements
    await driver.connect()
    second = await driver.fetch_records(first.cursor)
    assert [m.seq for m in second.measurements] == [501, 502, 503]
    assert [m.values.as_dict()["glucose"] for m in second.measurements if m.values] == (
        pytest.approx([7.1, 7.2, 7.3])
    )
    assert not second.full_download
    report = meter.racp.requests[-1]
    assert (report.operator, report.operands) == (Operator.GREATER_THAN_OR_EQUAL, (501,))

    again = await driver.fetch_records(None)  # the same records twice give the same ids
    assert {reading_of(m, info).id for m in first.measurements} <= {
        reading_of(m, info).id for m in again.measurements
    }

    clock.advance(202 - 63)  # memory cleared at 100 s, two records since (seq 1 and 2 again)
    third = await driver.fetch_records(second.cursor)
    assert third.full_download
    assert [m.seq for m in third.measurements] == [1, 2]
    assert third.cursor.last_seq == 2
    await driver.disconnect()

    ids = [
        reading_of(m, info).id
        for m in (*first.measurements, *second.measurements, *third.measurements)
    ]
    assert len(ids) == 505
    assert len(set(ids)) == 505, "a record after the memory clear reused an old id"


async def test_meter_refusing_greater_or_equal_gets_all_and_only_new_records_come_back(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("roche_accu_chek_guide")  # promises "greater or equal"
    meter: GlucoseMeterSimulator = await started(
        GlucoseMeterSimulator(
            link,
            profile,
            Scenario(series=(glucose_history(10),)),
            now=clock,
            racp_operators=frozenset({RacpOperator.ALL, RacpOperator.LAST}),
        )
    )
    driver = GlucoseMeterDriver(
        BleakTransport(meter.address, backend=link.client_backend), profile=profile
    )
    await driver.connect()
    result = await driver.fetch_records(RecordCursor(last_seq=7))
    await driver.disconnect()
    assert [m.seq for m in result.measurements] == [8, 9, 10]
    assert result.full_download
    assert [request.operator for request in meter.racp.requests][-1] == Operator.ALL_RECORDS


async def test_download_past_its_deadline_is_aborted_and_reported(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    shipped = find_profile("roche_accu_chek_guide")
    # A meter that will not say how many records come: the download gets a fixed deadline.
    quirks = shipped.quirks.model_copy(update={"racp_reports_count": False})
    profile = shipped.model_copy(update={"quirks": quirks})
    meter: GlucoseMeterSimulator = await started(
        GlucoseMeterSimulator(link, profile, Scenario(series=(glucose_history(500),)), now=clock)
    )
    transport = BleakTransport(meter.address, backend=link.client_backend)
    hasty = GlucoseMeterDriver(
        transport, profile=profile, uncounted_download_seconds=0.01
    )  # 500 records take about 0.15 s
    await hasty.connect()
    with pytest.raises(DeviceTimeout, match="procedure aborted"):
        await hasty.fetch_records(None)
    assert meter.racp.requests[-1].op_code == racp.OpCode.ABORT_OPERATION

    patient = GlucoseMeterDriver(transport, profile=profile)
    result = await patient.fetch_records(None)  # the meter is free again
    await patient.disconnect()
    assert len(result.measurements) == 500


async def test_link_drop_during_download_loses_nothing_after_reconnect(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("roche_accu_chek_guide")
    scenario = Scenario(series=(glucose_history(100),), link_drops=1, link_drop_after_bytes=400)
    meter: GlucoseMeterSimulator = await started(
        GlucoseMeterSimulator(link, profile, scenario, now=clock)
    )
    transport = BleakTransport(meter.address, backend=link.client_backend)
    driver = GlucoseMeterDriver(transport, profile=profile)
    await driver.connect()
    with pytest.raises(TransportError, match="link dropped"):
        await driver.fetch_records(None)
    await transport.wait_disconnected()

    await driver.connect()
    result = await driver.fetch_records(None)
    await driver.disconnect()
    assert [m.seq for m in result.measurements] == list(range(1, 101))


async def test_clock_is_read_with_its_skew_and_set_only_when_the_profile_allows(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    meter_profile = find_profile("roche_accu_chek_guide")
    meter: GlucoseMeterSimulator = await started(
        GlucoseMeterSimulator(link, meter_profile, Scenario(clock_skew_seconds=-90), now=clock)
    )
    meter_driver = GlucoseMeterDriver(
        BleakTransport(meter.address, backend=link.client_backend), profile=meter_profile
    )
    await meter_driver.connect()
    assert await meter_driver.read_clock() == START - timedelta(seconds=90)
    await meter_driver.set_clock(START)
    assert await meter_driver.read_clock() == START
    await meter_driver.disconnect()

    oximeter_profile = find_profile("nonin_3230")
    assert not oximeter_profile.quirks.clock_settable
    oximeter: PulseOximeterSimulator = await started(
        PulseOximeterSimulator(link, oximeter_profile, Scenario(), now=clock)
    )
    oximeter_driver = PulseOximeterDriver(
        BleakTransport(oximeter.address, backend=link.client_backend), profile=oximeter_profile
    )
    await oximeter_driver.connect()
    with pytest.raises(ProtocolError, match="clock_settable is false"):
        await oximeter_driver.set_clock(START)
    await oximeter_driver.disconnect()


async def test_cuff_indication_arrives_as_a_reading(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("omron_hem7361t")
    scenario = Scenario(
        records=(
            ScenarioRecord(
                at_offset_seconds=-3600,
                kind=Kind.BLOOD_PRESSURE,
                values={"systolic": 142, "diastolic": 91, "pulse": 70},
            ),
            ScenarioRecord(
                at_offset_seconds=10,
                kind=Kind.BLOOD_PRESSURE,
                values={"systolic": 128, "diastolic": 82, "pulse": 66},
                flags=frozenset({"irregular_pulse"}),
            ),
        )
    )
    cuff: BloodPressureCuffSimulator = await started(
        BloodPressureCuffSimulator(link, profile, scenario, now=clock)
    )
    driver = BloodPressureDriver(
        BleakTransport(cuff.address, backend=link.client_backend), profile=profile
    )
    received: list[Measurement] = []

    async def collect(measurement: Measurement) -> None:
        received.append(measurement)

    await driver.connect()
    info = await driver.read_device_info()
    await driver.subscribe(collect)
    await eventually(lambda: len(received) == 1)  # the result stored before we came
    clock.advance(11)  # inflate (intermediate pressures), then the result
    await eventually(lambda: len(received) == 2)
    await asyncio.sleep(0.1)
    await driver.disconnect()

    assert len(received) == 2, "intermediate cuff pressures must never become readings"
    reading = reading_of(received[1], info)
    assert reading.kind is Kind.BLOOD_PRESSURE
    assert isinstance(reading.values, BloodPressureValues)
    assert (reading.values.systolic, reading.values.diastolic, reading.values.pulse) == (
        128,
        82,
        66,
    )
    assert reading.device_time == START + timedelta(seconds=10)
    assert "irregular_pulse" in reading.flags
    assert reading.device_id == "Omron-HEM_7361T-20230517001"
    assert not cuff.unsent()


async def test_cgm_packs_several_records_per_notification(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("generic_cgms")
    cgm: CgmSimulator = await started(CgmSimulator(link, profile, cgm_scenario(), now=clock))
    transport = BleakTransport(cgm.address, backend=link.client_backend)
    await transport.connect(5.0)
    notifications: list[bytes] = []
    answers: list[bytes] = []
    await transport.start_notify(uuids.CGM_MEASUREMENT, notifications.append)
    await transport.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT, answers.append)
    await transport.write(uuids.RECORD_ACCESS_CONTROL_POINT, racp.report_all())
    await eventually(lambda: bool(answers))
    await transport.disconnect()

    assert answers == [bytes.fromhex("06 00 01 01")]
    per_notification = [
        len(parse_cgm_notification(value, session_start=None).measurements)
        for value in notifications
    ]
    assert sum(per_notification) == 12
    assert max(per_notification) > 1


def cgm_scenario(**faults: Any) -> Scenario:
    return Scenario(
        series=(
            ValueSeries(
                start_offset_seconds=-12 * 300.0,
                interval_seconds=300.0,
                count=12,
                values={"glucose": 7.0, "trend": 0.0, "quality": 95.0},
                jitter={"glucose": 1.5},
                kind=Kind.CGM_GLUCOSE,
            ),
        ),
        **faults,
    )


async def test_cgm_record_with_a_bad_crc_is_rejected_and_counted(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("generic_cgms")
    cgm: CgmSimulator = await started(
        CgmSimulator(link, profile, cgm_scenario(corrupt_frame_numbers=frozenset({1})), now=clock)
    )
    driver = CgmDriver(BleakTransport(cgm.address, backend=link.client_backend), profile=profile)
    await driver.connect()
    result = await driver.fetch_records(None)
    await driver.disconnect()

    assert cgm.corrupted_notifications == 1
    assert result.crc_failures == 1
    assert driver.crc_failures == 1
    # The damaged copy is dropped; the intact copy that follows brings every record once.
    assert [m.seq for m in result.measurements] == [r.key for r in cgm.stored_records()]
    assert len(result.measurements) == 12
    assert all(
        m.device_time == cgm.session_start + timedelta(minutes=m.seq or 0)
        for m in result.measurements
    )


async def test_live_cgm_notification_with_a_bad_crc_is_counted_and_the_rest_kept(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("generic_cgms")
    live = (
        ScenarioRecord(at_offset_seconds=60, kind=Kind.CGM_GLUCOSE, values={"glucose": 6.0}),
        ScenarioRecord(at_offset_seconds=120, kind=Kind.CGM_GLUCOSE, values={"glucose": 6.4}),
    )
    cgm: CgmSimulator = await started(
        CgmSimulator(
            link, profile, Scenario(records=live, corrupt_frame_numbers=frozenset({2})), now=clock
        )
    )
    driver = CgmDriver(BleakTransport(cgm.address, backend=link.client_backend), profile=profile)
    received: list[Measurement] = []

    async def collect(measurement: Measurement) -> None:
        received.append(measurement)

    await driver.connect()
    await driver.subscribe(collect)
    clock.advance(61)
    await eventually(lambda: len(received) == 1)
    clock.advance(60)
    await eventually(lambda: len(received) == 2)
    await driver.disconnect()
    assert driver.crc_failures == 1
    assert [m.values.as_dict()["glucose"] for m in received if m.values] == pytest.approx(
        [6.0, 6.4], abs=0.05
    )


async def test_oximeter_streams_continuous_values_and_indicates_spot_checks(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("nonin_3230")
    scenario = Scenario(
        records=(
            ScenarioRecord(
                at_offset_seconds=-600,
                kind=Kind.SPO2,
                values={"spo2": 95, "pulse": 71},
                flags=frozenset({SPOT_CHECK_FLAG}),
            ),
        ),
        series=(
            ValueSeries(
                start_offset_seconds=1.0,
                interval_seconds=1.0,
                count=60,
                values={"spo2": 97.0, "pulse": 72.0},
                kind=Kind.SPO2,
                decimals=0,
            ),
        ),
    )
    oximeter: PulseOximeterSimulator = await started(
        PulseOximeterSimulator(link, profile, scenario, now=clock)
    )
    driver = PulseOximeterDriver(
        BleakTransport(oximeter.address, backend=link.client_backend), profile=profile
    )
    received: list[Measurement] = []

    async def collect(measurement: Measurement) -> None:
        received.append(measurement)

    await driver.connect()
    await driver.subscribe(collect)
    await eventually(lambda: len(received) == 1)
    spot_check = received[0]
    assert spot_check.device_time == START - timedelta(seconds=600)
    for sent in range(1, 6):
        clock.advance(1.0)

        def reached(sent: int = sent) -> bool:
            return oximeter.continuous_sent >= sent

        await eventually(reached)
    await eventually(lambda: len(received) == 6)
    await driver.disconnect()
    continuous = received[1:]
    assert all(m.kind is Kind.SPO2 and m.device_time is None for m in continuous)
    assert [m.values.as_dict() for m in continuous if m.values] == [
        {"spo2": 97.0, "pulse": 72.0}
    ] * 5


async def test_after_a_reconnect_notifications_come_only_once_resubscribed(
    link: BumbleLink, clock: ManualClock, started: Callable[..., Any]
) -> None:
    profile = find_profile("polar_h10")
    beats = Scenario(
        series=(
            ValueSeries(
                start_offset_seconds=1.0,
                interval_seconds=1.0,
                count=100,
                values={"heart_rate": 64.0},
                kind=Kind.HEART_RATE,
                decimals=0,
            ),
        )
    )
    strap: HeartRateStrapSimulator = await started(
        HeartRateStrapSimulator(link, profile, beats, now=clock)
    )
    transport = BleakTransport(strap.address, backend=link.client_backend)
    driver = HeartRateDriver(transport, profile=profile)
    received: list[Measurement] = []

    async def collect(measurement: Measurement) -> None:
        received.append(measurement)

    await driver.connect()
    await driver.subscribe(collect)
    clock.advance(2.0)
    await eventually(lambda: len(received) == 2)

    await strap.drop_link()
    await transport.wait_disconnected()
    await driver.connect()
    clock.advance(2.0)
    await asyncio.sleep(0.1)
    assert len(received) == 2, "a new link has no notifications until they are enabled"

    await driver.subscribe(collect)
    clock.advance(2.0)
    await eventually(lambda: len(received) == 4)
    await driver.disconnect()
    assert all(m.values and m.values.as_dict()["heart_rate"] == 64 for m in received)


async def test_scanning_a_simulated_home_finds_each_model_by_its_profile() -> None:
    profiles = load_profiles()
    async with SimulatedHome(profiles) as home:
        heard = await home.scan(0.5)
        for profile_id in home.devices:
            driver = home.driver(profile_id)
            assert isinstance(driver, Driver)
            assert isinstance(home.transport(profile_id), GattTransport)
    ble_profiles = [p for p in profiles if p.is_ble]
    by_address = {advertisement.address: advertisement for advertisement in heard}
    assert len(by_address) == len(ble_profiles)
    for profile in ble_profiles:
        advertisement = by_address[home.devices[profile.profile_id].address]
        matched = [
            p.profile_id
            for p in profiles
            if p.matches_advertisement(advertisement.local_name, advertisement.service_uuids)
        ]
        assert matched == [profile.profile_id]
