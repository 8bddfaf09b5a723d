"""Serial drivers against the pty simulators, the pyserial transport, and scenarios."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import serial

from device_drivers.astm_contour import ContourAstmDriver
from device_drivers.base import Driver, RecordCursor, SerialTransport
from device_drivers.errors import (
    ChecksumMismatch,
    DeviceNotFound,
    DeviceTimeout,
    ProtocolError,
    TransportError,
)
from device_drivers.measurement import Disposition, Measurement
from device_drivers.onetouch_ultra2 import OneTouchUltra2Driver
from device_drivers.serial_protocols import astm, decode_transfer
from device_drivers.serial_protocols import onetouch_ultra2 as otu2
from device_drivers.simulators.scenario import (
    DeviceClock,
    Scenario,
    ScenarioError,
    ScenarioRecord,
    ValueSeries,
)
from device_drivers.simulators.serial_meters import start_contour, start_onetouch_ultra2
from device_drivers.transports.serial import SerialPortTransport
from readings.units import Unit, mg_per_dl_to_mmol_per_l, mmol_per_l_to_mg_per_dl
from tests.fakes import ManualClock

integration = pytest.mark.integration
START = datetime(2026, 3, 14, 8, 0, 0)
SHORT_TIMEOUT_SECONDS = 0.3
"""The simulators answer at once; this only bounds the tests that wait for silence."""


def glucose(mg_dl: float) -> dict[str, float]:
    return {"glucose": mg_per_dl_to_mmol_per_l(mg_dl)}


def mg_dl(measurement: Measurement) -> float:
    assert measurement.values is not None
    value = measurement.values.as_dict()["glucose"]
    assert isinstance(value, float)
    return mmol_per_l_to_mg_per_dl(value)


METER_RECORDS = (
    ScenarioRecord(
        at_offset_seconds=-7200,
        values=glucose(110),
        context={"meal": "preprandial", "comment": "stress"},
    ),
    ScenarioRecord(
        at_offset_seconds=-5400, values=glucose(140), flags=frozenset({"control_solution"})
    ),
    ScenarioRecord(at_offset_seconds=-3600, values=glucose(700), flags=frozenset({"result_high"})),
    ScenarioRecord(at_offset_seconds=-1800, values=glucose(15), flags=frozenset({"result_low"})),
    ScenarioRecord(
        at_offset_seconds=-600,
        values=glucose(182),
        flags=frozenset({"communication_error"}),
        context={"meal": "postprandial"},
    ),
)


# --- scenario ---------------------------------------------------------------------------


def test_scenario_from_dict_and_toml(tmp_path: Path) -> None:
    toml = tmp_path / "scenario.toml"
    toml.write_text(
        "clock_skew_seconds = -30.0\nmemory_capacity = 2\ncorrupt_frame_numbers = [3]\n"
        "[[records]]\nat_offset_seconds = -60\nvalues = { glucose = 5.5 }\n"
        'flags = ["result_low"]\ncontext = { meal = "preprandial" }\n'
        "[[series]]\nstart_offset_seconds = 0\ninterval_seconds = 60\ncount = 3\n"
        "values = { glucose = 6.0 }\njitter = { glucose = 0.5 }\nseed = 7\n"
    )
    scenario = Scenario.from_toml(toml)
    assert scenario.clock_skew_seconds == -30.0
    assert scenario.records[0].flags == {"result_low"}
    assert scenario.records[0].context == {"meal": "preprandial"}
    assert scenario.is_corrupted(3, 1)
    assert not scenario.is_corrupted(3, 2)
    timeline = scenario.timeline()
    assert [r.at_offset_seconds for r in timeline] == [-60, 0, 60, 120]
    assert all(5.5 <= r.values["glucose"] <= 6.5 for r in timeline[1:])
    assert Scenario.from_toml(toml).timeline() == timeline  # seeded: reproducible
    assert scenario.stored_at(60) == timeline[1:3]  # the newest two: memory wrapped


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"records": [{"at_offset_seconds": 0, "values": {}, "colour": 1}]}, "$.records[0]"),
        (
            {"records": [{"at_offset_seconds": "soon", "values": {}}]},
            "$.records[0].at_offset_seconds",
        ),
        ({"memory_capacity": 0}, "$"),
        (
            {
                "series": [
                    {"start_offset_seconds": 0, "interval_seconds": 0, "count": 1, "values": {}}
                ]
            },
            "$.series[0]",
        ),
        (
            {"records": [{"at_offset_seconds": 0, "values": {"glucose": float("nan")}}]},
            "$.records[0]",
        ),
        ({"corrupt_frame_numbers": [0]}, "$"),
    ],
)
def test_bad_scenario_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data)
    assert caught.value.field == field


def test_bad_toml_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("records = [")
    with pytest.raises(ScenarioError):
        Scenario.from_toml(path)


def test_memory_clear_and_link_drops() -> None:
    scenario = Scenario(
        records=tuple(
            ScenarioRecord(at_offset_seconds=t, values={"glucose": 5.0}) for t in (-10, 5, 20)
        ),
        clear_memory_at=10,
        link_drops=1,
        link_drop_after_bytes=40,
    )
    assert [r.at_offset_seconds for r in scenario.stored_at(9)] == [-10, 5]
    assert [r.at_offset_seconds for r in scenario.stored_at(30)] == [20]
    assert (scenario.drop_after_bytes(1), scenario.drop_after_bytes(2)) == (40, None)


def test_device_clock_applies_skew_and_clock_setting() -> None:
    clock = ManualClock(START)
    device = DeviceClock(Scenario(clock_skew_seconds=120), clock)
    before = ScenarioRecord(at_offset_seconds=-60, values={})
    assert device.device_now() == START + timedelta(seconds=120)
    assert device.device_time_of(before) == START + timedelta(seconds=60)
    clock.advance(100)
    device.set_device_time(clock.now)  # corrected
    later = ScenarioRecord(at_offset_seconds=200, values={})
    assert device.device_now() == clock.now
    assert device.device_time_of(before) == START + timedelta(seconds=60)
    assert device.device_time_of(later) == START + timedelta(seconds=200)


def test_value_series_is_seeded() -> None:
    series = ValueSeries(
        start_offset_seconds=0, interval_seconds=1, count=4, values={"glucose": 6.0}
    )
    assert [r.values for r in series.records()] == [{"glucose": 6.0}] * 4


# --- transport ----------------------------------------------------------------------------


@integration
async def test_loop_transport_reads_and_writes() -> None:
    transport = SerialPortTransport("loop://")
    assert isinstance(transport, SerialTransport)
    await transport.open()
    await transport.write(b"P 003\r\nrest")
    assert await transport.read_until(b"\n", 1.0) == b"P 003\r\n"
    assert await transport.read(100, 1.0) == b"rest"
    assert await transport.read(100, 0.05) == b""
    with pytest.raises(DeviceTimeout):
        await transport.read_until(b"\n", 0.05)
    await transport.close()
    await transport.close()


@integration
async def test_blocking_reads_leave_the_event_loop_free() -> None:
    transport = SerialPortTransport("loop://")
    await transport.open()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    assert await transport.read(10, 0.3) == b""
    task.cancel()
    await transport.close()
    assert time.monotonic() - started >= 0.25
    assert ticks >= 10


@integration
async def test_missing_port_is_device_not_found() -> None:
    with pytest.raises(DeviceNotFound) as caught:
        await SerialPortTransport("/dev/vitalgate-no-such-port").open()
    assert isinstance(caught.value.__cause__, serial.SerialException)


@integration
async def test_bad_url_and_closed_port_are_transport_errors() -> None:
    with pytest.raises(TransportError):
        await SerialPortTransport("nosuchscheme://x").open()
    with pytest.raises(TransportError):
        await SerialPortTransport("loop://").write(b"x")


@integration
async def test_unplugged_meter_is_a_transport_error() -> None:
    simulator = start_onetouch_ultra2(Scenario())
    transport = SerialPortTransport(simulator.port)
    await transport.open()
    simulator.close()
    with pytest.raises(TransportError):
        await transport.read(10, 1.0)
    await transport.close()


# --- OneTouch Ultra 2 -----------------------------------------------------------------------


def otu2_driver(port: str, **options: object) -> OneTouchUltra2Driver:
    return OneTouchUltra2Driver(
        SerialPortTransport(port),
        reply_timeout_seconds=SHORT_TIMEOUT_SECONDS,
        **options,  # type: ignore[arg-type]
    )


@integration
async def test_onetouch_full_transfer() -> None:
    clock = ManualClock(START)
    scenario = Scenario(records=METER_RECORDS, clock_skew_seconds=90)
    with start_onetouch_ultra2(scenario, clock=clock) as simulator:
        driver = otu2_driver(simulator.port)
        assert isinstance(driver, Driver)
        await driver.connect()
        info = await driver.read_device_info()
        assert info.device_id == "LifeScan-OneTouch_Ultra_2-GMF600DCY"
        assert info.firmware == "P02.00.00 30/08/06"
        assert await driver.read_clock() == START + timedelta(seconds=90)
        result = await driver.fetch_records(None)
        await driver.disconnect()
    newest_first = list(reversed(METER_RECORDS))
    assert [m.device_time for m in result.measurements] == [
        START + timedelta(seconds=r.at_offset_seconds + 90) for r in newest_first
    ]
    assert [round(mg_dl(m)) for m in result.measurements] == [182, 20, 600, 140, 110]
    flags = [m.flags for m in result.measurements]
    assert flags == [
        {"communication_error"},
        {"result_low"},
        {"result_high"},
        {"control_solution"},
        set(),
    ]
    assert [m.disposition for m in result.measurements].count(Disposition.CONTROL_SOLUTION) == 1
    assert result.measurements[0].context == {"meal": "postprandial"}
    assert result.measurements[4].context == {"meal": "preprandial", "comment": "stress"}
    assert result.full_download
    assert result.cursor == RecordCursor(last_device_time=START + timedelta(seconds=-600 + 90))


@integration
async def test_onetouch_incremental_fetch_by_cursor() -> None:
    clock = ManualClock(START)
    later = ScenarioRecord(at_offset_seconds=300, values=glucose(99))
    scenario = Scenario(records=(*METER_RECORDS, later), memory_capacity=4)
    with start_onetouch_ultra2(scenario, clock=clock) as simulator:
        driver = otu2_driver(simulator.port)
        await driver.connect()
        first = await driver.fetch_records(None)
        assert len(first.measurements) == 4  # memory wrapped: the oldest is gone
        assert (await driver.fetch_records(first.cursor)).measurements == []
        clock.advance(301)
        second = await driver.fetch_records(first.cursor)
        unchanged = await driver.fetch_records(second.cursor)
        await driver.disconnect()
    assert [round(mg_dl(m)) for m in second.measurements] == [99]
    assert second.cursor.last_device_time == START + timedelta(seconds=300)
    assert unchanged.measurements == []
    assert unchanged.cursor == second.cursor


@integration
async def test_onetouch_retries_a_corrupted_line() -> None:
    scenario = Scenario(records=METER_RECORDS, corrupt_frame_numbers=frozenset({2}))
    with start_onetouch_ultra2(scenario) as simulator:
        driver = otu2_driver(simulator.port)
        await driver.connect()
        result = await driver.fetch_records(None)
        await driver.disconnect()
        assert simulator.transfers == 2
    assert len(result.measurements) == len(METER_RECORDS)


@integration
async def test_onetouch_gives_up_on_a_line_corrupted_every_time() -> None:
    scenario = Scenario(
        records=METER_RECORDS, corrupt_frame_numbers=frozenset({2}), corruptions_per_frame=3
    )
    with start_onetouch_ultra2(scenario) as simulator:
        driver = otu2_driver(simulator.port)
        await driver.connect()
        with pytest.raises(ChecksumMismatch) as caught:
            await driver.fetch_records(None)
        await driver.disconnect()
    header_line = otu2.encode_line(otu2.encode_dump_header(5, "GMF600DCY", Unit.MG_PER_DL))
    record_payload_length = len('P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00')
    assert caught.value.offset == len(header_line) + record_payload_length + 1


@integration
async def test_onetouch_link_drop_is_retried_then_reported() -> None:
    scenario = Scenario(records=METER_RECORDS, link_drops=1, link_drop_after_bytes=100)
    with start_onetouch_ultra2(scenario) as simulator:
        driver = otu2_driver(simulator.port)
        await driver.connect()
        assert len((await driver.fetch_records(None)).measurements) == len(METER_RECORDS)
        await driver.disconnect()
    scenario = Scenario(records=METER_RECORDS, link_drops=2, link_drop_after_bytes=100)
    with start_onetouch_ultra2(scenario) as simulator:
        driver = otu2_driver(simulator.port, attempts=2)
        await driver.connect()
        with pytest.raises(DeviceTimeout):
            await driver.fetch_records(None)
        await driver.disconnect()


@integration
async def test_onetouch_clock_setting_only_when_allowed() -> None:
    clock = ManualClock(START)
    with start_onetouch_ultra2(Scenario(clock_skew_seconds=-3600), clock=clock) as simulator:
        refused = otu2_driver(simulator.port)
        await refused.connect()
        with pytest.raises(ProtocolError):
            await refused.set_clock(START)
        await refused.disconnect()
        driver = otu2_driver(simulator.port, allow_set_clock=True)
        await driver.connect()
        await driver.set_clock(START)
        assert await driver.read_clock() == START
        await driver.disconnect()


def read_available(link: serial.SerialBase) -> bytes:
    """What has arrived, waiting up to the port timeout for the first byte."""
    first = bytes(link.read(1))
    return first + bytes(link.read(link.in_waiting)) if first else first


def capture_dump(port: str) -> bytes:
    """The meter's raw reply to ``DMP``."""
    received = bytearray()
    with serial.serial_for_url(port, baudrate=9600, timeout=0.2) as link:
        link.write(otu2.build_command("DMP"))
        while chunk := read_available(link):
            received += chunk
    return bytes(received)


@integration
def test_onetouch_simulator_dump_decodes_and_corruption_is_located() -> None:
    with start_onetouch_ultra2(Scenario(records=METER_RECORDS)) as simulator:
        raw = capture_dump(simulator.port)
    assert len(decode_transfer("onetouch-ultra2", raw)) == len(METER_RECORDS)
    scenario = Scenario(records=METER_RECORDS, corrupt_frame_numbers=frozenset({4}))
    with start_onetouch_ultra2(scenario) as simulator:
        raw = capture_dump(simulator.port)
    with pytest.raises(ChecksumMismatch) as caught:
        decode_transfer("onetouch-ultra2", raw)
    fourth_line_end = [m.end() for m in re.finditer(rb"\r\n", raw)][3]
    assert caught.value.offset == fourth_line_end - 6


# --- Contour (ASTM) -------------------------------------------------------------------------------


def contour_driver(port: str, **options: object) -> ContourAstmDriver:
    return ContourAstmDriver(
        SerialPortTransport(port),
        establish_timeout_seconds=SHORT_TIMEOUT_SECONDS,
        frame_timeout_seconds=SHORT_TIMEOUT_SECONDS,
        **options,  # type: ignore[arg-type]
    )


@integration
async def test_contour_full_transfer_serves_info_clock_and_records() -> None:
    clock = ManualClock(START + timedelta(seconds=42))
    scenario = Scenario(records=METER_RECORDS, clock_skew_seconds=-120)
    with start_contour(scenario, clock=clock) as simulator:
        driver = contour_driver(simulator.port)
        assert isinstance(driver, Driver)
        await driver.connect()
        info = await driver.read_device_info()
        assert await driver.read_clock() == datetime(2026, 3, 14, 7, 58)
        result = await driver.fetch_records(None)
        assert simulator.transfers == 1
        await driver.fetch_records(result.cursor)
        assert simulator.transfers == 2
        with pytest.raises(ProtocolError):
            await driver.set_clock(START)
        await driver.disconnect()
    assert info.device_id == "Bayer-Contour_USB-7390_2336773"
    assert info.firmware == "01.24/01.04/09.02.20"
    assert [m.seq for m in result.measurements] == [0, 0, 0, 0, 0]
    assert [round(mg_dl(m)) for m in result.measurements] == [110, 140, 600, 10, 182]
    assert [m.flags for m in result.measurements] == [
        set(),
        {"control_solution"},
        {"result_high"},
        {"result_low"},
        set(),
    ]
    assert result.measurements[0].context["meal"] == "preprandial"
    first_time = START + timedelta(seconds=42 - 7200 - 120)
    assert result.measurements[0].device_time == first_time.replace(second=0)
    assert result.cursor == RecordCursor(last_seq=0, last_device_time=datetime(2026, 3, 14, 7, 48))


@integration
async def test_contour_in_mmol_per_l() -> None:
    record = ScenarioRecord(at_offset_seconds=-60, values={"glucose": 6.7})
    with start_contour(Scenario(records=(record,)), unit=Unit.MMOL_PER_L) as simulator:
        driver = contour_driver(simulator.port)
        await driver.connect()
        (measurement,) = (await driver.fetch_records(None)).measurements
        await driver.disconnect()
    assert measurement.source_unit is Unit.MMOL_PER_L
    assert measurement.values is not None
    assert measurement.values.as_dict() == {"glucose": 6.7}


@integration
async def test_contour_naked_frame_is_sent_again() -> None:
    scenario = Scenario(
        records=METER_RECORDS, corrupt_frame_numbers=frozenset({1, 4}), corruptions_per_frame=2
    )
    with start_contour(scenario) as simulator:
        driver = contour_driver(simulator.port)
        await driver.connect()
        result = await driver.fetch_records(None)
        await driver.disconnect()
        assert simulator.frames_resent == 4
    assert len(result.measurements) == len(METER_RECORDS)


@integration
async def test_contour_frame_refused_too_often_raises_with_offset() -> None:
    scenario = Scenario(
        records=METER_RECORDS, corrupt_frame_numbers=frozenset({3}), corruptions_per_frame=6
    )
    with start_contour(scenario, clock=ManualClock(START)) as simulator:
        frames = astm.frames_for_records(simulator.transfer_records())
        driver = contour_driver(simulator.port, max_frame_attempts=3)
        await driver.connect()
        with pytest.raises(ChecksumMismatch) as caught:
            await driver.fetch_records(None)
        await driver.disconnect()
    assert caught.value.field == "checksum"
    third_copy_end = len(astm.ENQ) + len(frames[0]) + len(frames[1]) + 3 * len(frames[2])
    assert caught.value.offset == third_copy_end - 4


@integration
async def test_contour_meter_giving_up_a_frame_is_reported() -> None:
    scenario = Scenario(
        records=METER_RECORDS, corrupt_frame_numbers=frozenset({2}), corruptions_per_frame=6
    )
    with start_contour(scenario) as simulator:
        driver = contour_driver(simulator.port, max_frame_attempts=10)
        await driver.connect()
        with pytest.raises(ChecksumMismatch):
            await driver.fetch_records(None)
        await driver.disconnect()


@integration
async def test_contour_link_drop_then_recovery() -> None:
    scenario = Scenario(records=METER_RECORDS, link_drops=1, link_drop_after_bytes=300)
    with start_contour(scenario) as simulator:
        driver = contour_driver(simulator.port)
        await driver.connect()
        with pytest.raises(DeviceTimeout):
            await driver.fetch_records(None)
        result = await driver.fetch_records(None)
        await driver.disconnect()
    assert len(result.measurements) == len(METER_RECORDS)


@integration
async def test_contour_silent_meter_times_out() -> None:
    with start_contour(Scenario(link_drops=5, link_drop_after_bytes=0)) as simulator:
        driver = contour_driver(simulator.port)
        await driver.connect()
        with pytest.raises(DeviceTimeout):
            await driver.read_device_info()
        await driver.disconnect()


@integration
async def test_contour_incremental_fetch_by_cursor() -> None:
    clock = ManualClock(START)
    later = ScenarioRecord(at_offset_seconds=600, values=glucose(123))
    with start_contour(Scenario(records=(*METER_RECORDS, later)), clock=clock) as simulator:
        driver = contour_driver(simulator.port)
        await driver.connect()
        first = await driver.fetch_records(None)
        clock.advance(601)
        second = await driver.fetch_records(first.cursor)
        await driver.disconnect()
    assert len(first.measurements) == len(METER_RECORDS)
    assert [(m.seq, round(mg_dl(m))) for m in second.measurements] == [(0, 123)]


def capture_contour(port: str) -> bytes:
    """The meter → host bytes of one transfer, ACKing every frame whatever it holds."""
    received = bytearray()
    with serial.serial_for_url(port, baudrate=9600, timeout=0.2) as link:
        link.write(astm.EOT)
        while chunk := read_available(link):
            received += chunk
            if chunk.endswith((astm.ENQ, b"\r\n")):
                link.write(astm.ACK)
    return bytes(received)


@integration
def test_contour_simulator_transfer_decodes_and_corruption_is_located() -> None:
    with start_contour(Scenario(records=METER_RECORDS)) as simulator:
        raw = capture_contour(simulator.port)
    assert raw.startswith(astm.ENQ)
    assert raw.endswith(astm.EOT)
    assert len(decode_transfer("astm", raw)) == 5
    scenario = Scenario(records=METER_RECORDS, corrupt_frame_numbers=frozenset({4}))
    with start_contour(scenario) as simulator:
        raw = capture_contour(simulator.port)
    with pytest.raises(ChecksumMismatch) as caught:
        decode_transfer("astm", raw)
    fourth_frame_end = [m.end() for m in re.finditer(rb"[\x03\x17]", raw)][3]
    assert caught.value.offset == fourth_frame_end
