"""Device sessions: breaker and classification tables, and sessions over scripted devices
into a real SQLite outbox."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from device_drivers.base import DeviceInfo, RecordCursor
from device_drivers.errors import (
    DeviceNotFound,
    DeviceTimeout,
    InvalidFrame,
    ProtocolError,
    TransportError,
)
from device_drivers.measurement import Disposition, Measurement
from device_drivers.profiles import DeviceProfile, find_profile
from gateway.clock import FLAG_CLOCK_CORRECTED, ClockObservation
from gateway.config import BreakerSettings, DeviceSettings
from gateway.errors import IdentityMismatch, OutboxError, OutboxFull
from gateway.outbox import SqliteOutbox
from gateway.pairing import Pairing, PairingStore
from gateway.session import (
    BreakerState,
    CircuitBreaker,
    ContactTrigger,
    DeviceSession,
    FailureKind,
    SerialPortTrigger,
    SessionState,
    classify_failure,
    cursor_after,
    cursor_for_download,
    kept_on_device,
    measurement_to_reading,
    not_stored_reason,
    polls_held_link,
    retry_delay_seconds,
)
from readings.codec import EventMessage, EventType
from readings.model import AnyReading, GlucoseValues, HeartRateValues, Kind, Reading, new_reading
from readings.units import Unit
from tests.fakes import ManualClock, ManualMonotonic
from tests.gateway.full_database import FullDatabase
from tests.gateway.scripted_driver import (
    HANG,
    Contact,
    ImmediateTrigger,
    ScriptedDevice,
    profile,
    records,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
GATEWAY_NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
THREE_HOURS = timedelta(hours=3)
FAST_DEVICES = DeviceSettings(
    connect_timeout_seconds=0.3,
    operation_timeout_seconds=0.3,
    download_timeout_seconds=0.3,
    ble_retry_seconds=0.01,
    absent_retry_seconds=0.01,
    outbox_full_retry_seconds=0.05,
)
FAST_BREAKER = BreakerSettings(
    failure_threshold=3, open_seconds=60.0, backoff_initial_seconds=0.01, backoff_max_seconds=0.02
)


def meter_info(serial: str = "92310000123") -> DeviceInfo:
    return DeviceInfo(manufacturer="Roche", model="Accu-Chek Guide", serial=serial)


# -- pure parts: tables --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "now", "state", "failures"),
    [
        ([], 0.0, BreakerState.CLOSED, 0),
        (["fail", "fail"], 1.0, BreakerState.CLOSED, 2),
        (["fail", "fail", "fail"], 1.0, BreakerState.OPEN, 3),
        (["fail", "fail", "fail"], 10.0, BreakerState.HALF_OPEN, 3),
        (["fail", "fail", "ok"], 1.0, BreakerState.CLOSED, 0),
        (["fail", "fail", "fail", "ok"], 1.0, BreakerState.CLOSED, 0),
    ],
)
def test_breaker_transitions(
    steps: list[str], now: float, state: BreakerState, failures: int
) -> None:
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=10.0)
    for step in steps:
        breaker = breaker.after_failure(0.0) if step == "fail" else breaker.after_success()
    assert breaker.state(now) is state
    assert breaker.consecutive_failures == failures


def test_failed_trial_reopens_for_a_full_cool_down() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_seconds=10.0)
    breaker = breaker.after_failure(0.0).after_failure(0.0)
    assert breaker.seconds_until_trial(4.0) == 6.0
    assert breaker.state(10.0) is BreakerState.HALF_OPEN
    breaker = breaker.after_failure(10.0)
    assert breaker.state(15.0) is BreakerState.OPEN
    assert breaker.seconds_until_trial(15.0) == 5.0


@pytest.mark.parametrize(
    ("exc", "shared_port", "kind"),
    [
        (DeviceNotFound("not advertising"), False, FailureKind.ABSENT),
        (DeviceTimeout("no answer"), False, FailureKind.FAILURE),
        (TransportError("link lost"), False, FailureKind.FAILURE),
        (ProtocolError("RACP refused"), False, FailureKind.FAILURE),
        (InvalidFrame("bad", offset=3, field="checksum"), True, FailureKind.FAILURE),
        (TimeoutError(), False, FailureKind.FAILURE),
        (RuntimeError("a bug"), False, FailureKind.FAILURE),
        (IdentityMismatch("a", address="AA", found_device_id="b"), False, FailureKind.REFUSED),
        (
            IdentityMismatch("a", address="/dev/x", found_device_id="b"),
            True,
            FailureKind.OTHER_DEVICE,
        ),
        (
            OutboxFull(Path("o.db"), used_bytes=2, ceiling_bytes=1, refused=1),
            False,
            FailureKind.OUTBOX_FULL,
        ),
    ],
)
def test_classify_failure(exc: BaseException, shared_port: bool, kind: FailureKind) -> None:
    assert classify_failure(exc, shared_port=shared_port) is kind


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (200, 60.0)]
)
def test_retry_delay_doubles_up_to_the_maximum(failures: int, delay: float) -> None:
    assert retry_delay_seconds(failures, initial=2.0, maximum=60.0) == delay


T0 = datetime(2026, 11, 23, 12, 0)


def _live(seq: int | None, device_time: datetime | None) -> Measurement:
    return Measurement(
        kind=Kind.GLUCOSE,
        values=GlucoseValues(glucose=6.0),
        source_unit=Unit.MMOL_PER_L,
        device_time=device_time,
        seq=seq,
    )


@pytest.mark.parametrize(
    ("cursor", "measurement", "expected"),
    [
        (RecordCursor(last_seq=4), _live(5, T0), RecordCursor(last_seq=5, last_device_time=T0)),
        (RecordCursor(last_seq=4), _live(4, T0), None),
        (None, _live(1, None), RecordCursor(last_seq=1)),
        (
            RecordCursor(last_device_time=T0),
            _live(None, T0 + THREE_HOURS),
            RecordCursor(last_device_time=T0 + THREE_HOURS),
        ),
        (RecordCursor(last_device_time=T0), _live(None, T0), None),
        (RecordCursor(last_seq=4), _live(None, T0), None),
        (None, _live(None, None), None),
    ],
)
def test_cursor_after_live_measurement(
    cursor: RecordCursor | None, measurement: Measurement, expected: RecordCursor | None
) -> None:
    assert cursor_after(cursor, measurement) == expected


@pytest.mark.parametrize(
    ("cursor", "device_now", "expected"),
    [
        (None, T0, None),
        (RecordCursor(last_device_time=T0), T0 + THREE_HOURS, RecordCursor(last_device_time=T0)),
        (
            RecordCursor(last_device_time=T0),
            T0 - timedelta(minutes=1),
            RecordCursor(last_device_time=T0),
        ),
        (RecordCursor(last_device_time=T0), datetime(2000, 1, 1), None),
        (RecordCursor(last_device_time=T0), T0 - THREE_HOURS, None),
        (
            RecordCursor(last_seq=9, last_device_time=T0),
            datetime(2000, 1, 1),
            RecordCursor(last_seq=9, last_device_time=T0),
        ),
    ],
)
def test_time_keyed_cursor_is_dropped_when_the_clock_went_back(
    cursor: RecordCursor | None, device_now: datetime, expected: RecordCursor | None
) -> None:
    observation = ClockObservation(device_now=device_now, gateway_now=GATEWAY_NOW)
    assert cursor_for_download(cursor, observation) == expected


def _pairing(zone: str = "Asia/Shanghai") -> Pairing:
    return Pairing(
        device_id=meter_info().device_id,
        patient_id="p-0001",
        profile_id="test_meter",
        address="AA:BB:CC:DD:EE:FF",
        time_zone=zone,
        paired_at=GATEWAY_NOW,
    )


def test_meter_three_hours_fast_gives_corrected_measured_at_raw_device_time_and_flag() -> None:
    device_time = datetime(2026, 11, 23, 18, 30)  # meter clock; really 15:30 in Shanghai
    measurement = replace(_live(7, device_time), flags=frozenset({"result_high"}))
    observation = ClockObservation(
        device_now=datetime(2026, 11, 23, 19, 0), gateway_now=GATEWAY_NOW
    )
    reading = measurement_to_reading(
        measurement,
        pairing=_pairing(),
        gateway_id="gw-test",
        observation=observation,
        received_at=GATEWAY_NOW,
    )
    assert reading.measured_at == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert reading.device_time == device_time
    assert set(reading.flags) == {FLAG_CLOCK_CORRECTED, "result_high"}
    assert reading.patient_id == "p-0001"
    assert reading.seq == 7


def test_device_time_is_read_in_the_patients_zone_with_dst() -> None:
    # 2026-03-29 03:30 in Berlin is after the spring-forward jump: CEST, UTC+2.
    measurement = _live(1, datetime(2026, 3, 29, 3, 30))
    observation = ClockObservation(
        device_now=datetime(2026, 3, 29, 4, 0), gateway_now=datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    )
    reading = measurement_to_reading(
        measurement,
        pairing=_pairing("Europe/Berlin"),
        gateway_id="gw-test",
        observation=observation,
        received_at=datetime(2026, 3, 29, 2, 0, tzinfo=UTC),
    )
    assert reading.measured_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert FLAG_CLOCK_CORRECTED not in reading.flags


async def _returns_within(trigger: ContactTrigger, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await trigger.wait()
    except TimeoutError:
        return False
    return True


async def test_serial_trigger_downloads_when_the_port_appears_then_on_schedule() -> None:
    present = {"/dev/ttyUSB0": False}
    monotonic = ManualMonotonic()
    trigger = SerialPortTrigger(
        "/dev/ttyUSB0",
        poll_seconds=900.0,
        check_seconds=0.01,
        exists=lambda path: present[path],
        monotonic=monotonic,
    )
    assert not await _returns_within(trigger, 0.05)  # no cable
    present["/dev/ttyUSB0"] = True
    assert await _returns_within(trigger, 0.05)  # the cable appeared
    trigger.contacted(downloaded=True)
    assert not await _returns_within(trigger, 0.05)  # downloaded; the next is scheduled
    monotonic.now = 901.0
    assert await _returns_within(trigger, 0.05)  # the schedule came round
    trigger.contacted(downloaded=False)
    assert await _returns_within(trigger, 0.05)  # a failed contact is due again at once
    trigger.contacted(downloaded=True)
    present["/dev/ttyUSB0"] = False
    assert not await _returns_within(trigger, 0.05)
    present["/dev/ttyUSB0"] = True
    assert await _returns_within(trigger, 0.05)  # unplugged and plugged in again


async def test_serial_trigger_request_and_urls() -> None:
    trigger = SerialPortTrigger("rfc2217://meter-box:4000", poll_seconds=900.0, check_seconds=10.0)
    assert trigger.present()
    assert await _returns_within(trigger, 0.05)
    trigger.contacted(downloaded=True)
    assert not await _returns_within(trigger, 0.05)
    trigger.request()
    assert await _returns_within(trigger, 0.05)


# -- sessions over scripted devices -------------------------------------------------------


class Harness:
    """A real outbox and pairing store, an event list, and sessions over scripted devices."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(GATEWAY_NOW)
        self.outbox = SqliteOutbox(tmp_path / "outbox.db", quota_bytes=10_000_000, clock=self.clock)
        self.pairings = PairingStore(tmp_path / "pairings.db", clock=self.clock)
        self.events: list[EventMessage] = []
        self.tasks: list[asyncio.Task[None]] = []

    def pair(self, device: ScriptedDevice, *, address: str = "AA:BB:CC:DD:EE:01") -> Pairing:
        return self.pairings.bind(
            device.info,
            patient_id="p-0001",
            profile_id="test_meter",
            address=address,
            time_zone="Asia/Shanghai",
        )

    def session(
        self,
        device: ScriptedDevice,
        *,
        device_profile: DeviceProfile | None = None,
        live: bool = False,
        set_clocks: bool = True,
        address: str = "AA:BB:CC:DD:EE:01",
        outbox: SqliteOutbox | None = None,
        breaker: BreakerSettings = FAST_BREAKER,
        devices: DeviceSettings = FAST_DEVICES,
    ) -> DeviceSession:
        pairing = self.pairings.get(device.info.device_id) or self.pair(device, address=address)
        return DeviceSession(
            pairing=pairing,
            profile=device_profile or profile(),
            link_factory=lambda: device.link(live=live),
            trigger=ImmediateTrigger(0.01),
            outbox=outbox or self.outbox,
            pairings=self.pairings,
            gateway_id="gw-test",
            events=self.events.append,
            devices=devices,
            breaker=breaker,
            set_clocks=set_clocks,
            clock=self.clock,
        )

    def start(self, session: DeviceSession) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(session.run())
        self.tasks.append(task)
        return task

    def stored(self) -> list[Reading]:
        batch = self.outbox.begin_batch(1000, 10_000_000)
        if batch is None:
            return []
        self.outbox.requeue(batch)
        return [msgspec.json.decode(encoded, type=AnyReading) for encoded in batch.encoded]

    def event_types(self) -> list[EventType]:
        return [event.event for event in self.events]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.outbox.close()
        self.pairings.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


async def until(condition: Callable[[], bool], timeout_seconds: float = 3.0) -> None:
    async with asyncio.timeout(timeout_seconds):
        while not condition():  # noqa: ASYNC110 - the condition belongs to other tasks' state
            await asyncio.sleep(0.005)


def fast_meter(**kwargs: object) -> ScriptedDevice:
    """A meter 3 h fast holding three records stamped by that clock."""
    return ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 19, 0),
        records=records(3, start=datetime(2026, 11, 23, 17, 0)),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_download_corrects_a_fast_clock_and_commits_readings_with_the_cursor(
    harness: Harness,
) -> None:
    device = fast_meter()
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 3)
    stored = sorted(harness.stored(), key=lambda r: r.seq or 0)
    assert [r.device_time for r in stored] == [m.device_time for m in device.records]
    assert [r.measured_at for r in stored] == [
        datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 6, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
    ]
    assert all(FLAG_CLOCK_CORRECTED in r.flags for r in stored)
    assert all(r.patient_id == "p-0001" and r.gateway_id == "gw-test" for r in stored)
    assert harness.outbox.cursor(device.info.device_id) == RecordCursor(
        last_seq=3, last_device_time=datetime(2026, 11, 23, 18, 0)
    )
    clock_events = [e for e in harness.events if e.event is EventType.CLOCK_CORRECTED]
    assert clock_events[0].detail == {"offset_seconds": 3 * 3600, "count": 3}
    await until(lambda: len(device.cursors_seen) >= 2)
    assert device.cursors_seen[1] == RecordCursor(
        last_seq=3, last_device_time=datetime(2026, 11, 23, 18, 0)
    )
    assert session.counters.readings_stored == 3  # later contacts found nothing new
    status = session.status()
    assert status.device_id == device.info.device_id
    assert status.last_contact == GATEWAY_NOW


async def test_a_crash_before_the_commit_downloads_the_same_records_again(harness: Harness) -> None:
    device = fast_meter(script=[Contact(fetch=TransportError("link lost")), Contact()])
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 3)
    assert device.cursors_seen[:2] == [None, None]


async def test_control_solution_and_failed_measurements_are_events_without_values(
    harness: Harness,
) -> None:
    control, failed, good = records(3, start=datetime(2026, 11, 23, 15, 0))
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        records=[
            replace(control, disposition=Disposition.CONTROL_SOLUTION),
            replace(
                failed,
                values=None,
                disposition=Disposition.DEVICE_ERROR,
                flags=frozenset({"strip_error"}),
            ),
            replace(good, flags=frozenset({"battery_low"})),
        ],
    )
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 1)
    await until(lambda: EventType.BATTERY_LOW in harness.event_types())
    [reading] = harness.stored()
    assert reading.seq == 3
    assert FLAG_CLOCK_CORRECTED not in reading.flags
    by_type = {event.event: event for event in harness.events}
    assert by_type[EventType.CONTROL_SOLUTION_TEST].detail == {
        "kind": "glucose",
        "seq": 1,
        "device_time": "2026-11-23T15:00:00",
    }
    assert by_type[EventType.MEASUREMENT_FAILED].detail["flags"] == "strip_error"
    # Events carry no values: every glucose value here is a float, no detail is.
    for event in harness.events:
        assert not any(isinstance(v, float) for v in event.detail.values())


async def test_a_ble_device_with_another_identity_is_refused(harness: Harness) -> None:
    impostor = meter_info(serial="99999999999")
    device = fast_meter(script=[Contact(info=impostor)])
    session = harness.session(device)
    task = harness.start(session)
    await asyncio.wait_for(task, 2.0)
    assert session.status().state == "identity_mismatch"
    assert harness.stored() == []
    [event] = harness.events
    assert event.event is EventType.DEVICE_ERROR
    assert event.detail["reason"] == "identity_mismatch"
    assert event.detail["found_device_id"] == impostor.device_id
    assert device.cursors_seen == []


async def test_another_meter_on_a_serial_port_is_skipped_not_refused(harness: Harness) -> None:
    device = fast_meter(script=[Contact(info=meter_info(serial="GMF600XXY")), Contact()])
    session = harness.session(device, device_profile=profile(ble=False), address="/dev/ttyUSB0")
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 3)
    assert EventType.DEVICE_ERROR not in harness.event_types()


async def test_a_serial_meter_that_does_not_answer_is_absent_not_failing(harness: Harness) -> None:
    device = fast_meter(script=[Contact(connect=DeviceTimeout("no reply"))])
    session = harness.session(device, device_profile=profile(ble=False), address="/dev/ttyUSB0")
    harness.start(session)
    await until(lambda: device.contacts >= 5)
    assert session.counters.failures == 0
    assert session.breaker.consecutive_failures == 0
    assert harness.events == []


async def test_repeated_failures_open_the_circuit_with_one_event(harness: Harness) -> None:
    device = fast_meter(script=[Contact(connect=TransportError("adapter hiccup"))])
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.state is SessionState.CIRCUIT_OPEN)
    await asyncio.sleep(0.1)
    assert device.contacts == FAST_BREAKER.failure_threshold
    [event] = harness.events
    assert event.event is EventType.DEVICE_ERROR
    assert event.detail == {
        "reason": "TransportError",
        "consecutive_failures": 3,
        "circuit": "open",
    }


async def test_after_the_cool_down_one_trial_contact_closes_the_circuit(
    harness: Harness,
) -> None:
    failing = Contact(connect=TransportError("adapter hiccup"))
    device = fast_meter(script=[failing, failing, failing, Contact()])
    short = BreakerSettings(
        failure_threshold=3,
        open_seconds=0.2,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.01,
    )
    session = harness.session(device, breaker=short)
    harness.start(session)
    await until(lambda: session.state is SessionState.CIRCUIT_OPEN)
    await until(lambda: session.counters.readings_stored == 3)
    assert session.breaker.state(0.0) is BreakerState.CLOSED
    assert device.contacts >= 4


async def test_a_hanging_device_does_not_stall_another(harness: Harness) -> None:
    hanging = ScriptedDevice(
        info=meter_info(serial="11111111111"),
        clock=datetime(2026, 11, 23, 16, 0),
        script=[Contact(connect=HANG)],
    )
    healthy = fast_meter()
    patient = FAST_DEVICES.model_copy(update={"connect_timeout_seconds": 30.0})
    hanging_session = harness.session(hanging, address="AA:BB:CC:DD:EE:02", devices=patient)
    healthy_session = harness.session(healthy, address="AA:BB:CC:DD:EE:03")
    harness.start(hanging_session)
    harness.start(healthy_session)
    await until(lambda: healthy_session.counters.readings_stored == 3)
    await until(lambda: len(healthy.cursors_seen) >= 3)  # and it keeps being served
    assert hanging_session.state is SessionState.CONNECTING
    assert hanging.contacts == 1


async def test_a_hanging_step_ends_at_its_deadline(harness: Harness) -> None:
    device = fast_meter(script=[Contact(fetch=HANG), Contact()])
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 3)
    assert session.counters.failures == 1
    assert device.cursors_seen[:2] == [None, None]


async def test_a_full_outbox_pauses_downloads_and_keeps_records_on_the_device(
    harness: Harness, tmp_path: Path
) -> None:
    full = SqliteOutbox(tmp_path / "full.db", quota_bytes=1, reserve_bytes=0, clock=harness.clock)
    device = fast_meter()
    session = harness.session(device, outbox=full)
    harness.start(session)
    await until(lambda: session.state is SessionState.OUTBOX_FULL)
    assert session.status().state == "outbox_full"
    await until(lambda: len(device.cursors_seen) >= 2)
    assert device.cursors_seen[:2] == [None, None]
    assert full.cursor(device.info.device_id) is None
    assert session.counters.failures == 0
    harness.tasks.pop().cancel()
    full.close()


async def test_readings_of_a_device_unpaired_meanwhile_are_dropped(harness: Harness) -> None:
    device = fast_meter()
    session = harness.session(device)
    harness.pairings.unbind(device.info.device_id)
    harness.start(session)
    await until(lambda: session.counters.dropped_unpaired == 3)
    assert harness.stored() == []
    assert harness.outbox.cursor(device.info.device_id) is None


async def test_a_settable_clock_with_sequence_numbers_is_set(harness: Harness) -> None:
    device = fast_meter(clock_settable=True)
    session = harness.session(device, device_profile=profile(clock_settable=True))
    harness.start(session)
    await until(lambda: EventType.CLOCK_SET in harness.event_types())
    assert device.clock_writes == [datetime(2026, 11, 23, 16, 0)]
    stored = harness.stored()
    assert len(stored) == 3
    assert all(FLAG_CLOCK_CORRECTED in r.flags for r in stored)  # stamped before the set
    [event] = [e for e in harness.events if e.event is EventType.CLOCK_SET]
    assert event.detail == {"offset_seconds": 3 * 3600}


@pytest.mark.parametrize(
    ("settable_profile", "set_clocks", "seq"),
    [(False, True, True), (True, False, True), (True, True, False)],
    ids=["profile_forbids", "gateway_policy_off", "fast_time_keyed_records"],
)
async def test_clock_left_alone(
    harness: Harness, settable_profile: bool, set_clocks: bool, seq: bool
) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 19, 0),
        records=records(2, start=datetime(2026, 11, 23, 17, 0), seq=seq),
        clock_settable=True,
    )
    session = harness.session(
        device, device_profile=profile(clock_settable=settable_profile), set_clocks=set_clocks
    )
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 2)
    await until(lambda: device.contacts >= 2)
    assert device.clock_writes == []
    assert all(FLAG_CLOCK_CORRECTED in r.flags for r in harness.stored())


async def test_a_clock_reset_below_a_time_cursor_downloads_everything_again(
    harness: Harness,
) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2000, 1, 1, 0, 5),
        records=records(2, start=datetime(2026, 11, 23, 12, 0), seq=False),
    )
    harness.outbox.add(
        [],
        cursor=(
            device.info.device_id,
            RecordCursor(last_device_time=datetime(2026, 11, 23, 12, 30)),
        ),
    )
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 2)
    assert device.cursors_seen[0] is None


async def test_live_measurements_are_stored_and_resubscribed_after_reconnect(
    harness: Harness,
) -> None:
    first, second = records(2, start=datetime(2026, 11, 23, 15, 50))
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        script=[Contact(live=[first]), Contact(live=[second]), Contact()],
    )
    session = harness.session(device, live=True)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 2)
    assert device.subscriptions >= 2
    assert {r.seq for r in harness.stored()} == {1, 2}
    assert harness.outbox.cursor(device.info.device_id) == RecordCursor(
        last_seq=2, last_device_time=second.device_time
    )


@pytest.mark.parametrize(
    ("profile_id", "polled"),
    [
        ("roche_accu_chek_guide", True),  # GLS: a stored result comes only when asked
        ("generic_cgms", False),  # CGMS notifies every record as it is made
        ("omron_hem7361t", False),  # indicates its results; no RACP
        ("polar_h10", False),  # a stream, no memory
        ("lifescan_onetouch_ultra2", False),  # serial: closed after each download
    ],
)
def test_which_held_links_are_polled(profile_id: str, polled: bool) -> None:
    assert polls_held_link(find_profile(profile_id)) is polled


POLLING_DEVICES = FAST_DEVICES.model_copy(update={"ble_retry_seconds": 0.02})


async def test_a_meter_that_keeps_the_link_is_polled_for_what_it_measures_meanwhile(
    harness: Harness,
) -> None:
    first, second = records(2, start=datetime(2026, 11, 23, 15, 50))
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        records=[first],
        script=[Contact(keep_link=True, recorded=[second])],
    )
    session = harness.session(
        device, live=True, device_profile=profile(racp=True), devices=POLLING_DEVICES
    )
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 2)
    # Over the same link: no reconnect, no live notification, the memory asked again.
    assert device.contacts == 1
    assert session.state is SessionState.CONNECTED
    assert device.cursors_seen[:2] == [None, RecordCursor(1, first.device_time)]
    assert harness.outbox.cursor(device.info.device_id) == RecordCursor(2, second.device_time)
    # Nothing new: polls go on, without a transaction.
    polls = len(device.cursors_seen)
    await until(lambda: len(device.cursors_seen) >= polls + 3)
    assert session.counters.readings_stored == 2
    assert set(device.cursors_seen[2:]) == {RecordCursor(2, second.device_time)}


async def test_a_held_link_without_a_record_memory_is_not_polled(harness: Harness) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        script=[Contact(keep_link=True)],
    )
    session = harness.session(device, live=True, devices=POLLING_DEVICES)
    harness.start(session)
    await until(lambda: session.state is SessionState.CONNECTED)
    await asyncio.sleep(0.2)  # ten poll intervals
    assert len(device.cursors_seen) == 1


async def test_a_link_dropped_during_a_poll_is_no_failure(harness: Harness) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        records=records(1, start=datetime(2026, 11, 23, 15, 50)),
        script=[
            Contact(
                keep_link=True,
                poll=TransportError("link dropped during a RACP procedure"),
                poll_drops_link=True,
            ),
            Contact(keep_link=True),
        ],
    )
    session = harness.session(
        device, live=True, device_profile=profile(racp=True), devices=POLLING_DEVICES
    )
    harness.start(session)
    await until(lambda: device.contacts >= 2 and session.state is SessionState.CONNECTED)
    assert session.counters.failures == 0
    assert session.breaker.consecutive_failures == 0
    assert device.drivers[0].disconnected
    assert session.counters.readings_stored == 1


async def test_a_poll_that_hangs_ends_at_the_download_deadline_as_a_failure(
    harness: Harness,
) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        script=[Contact(keep_link=True, poll=HANG), Contact()],
    )
    session = harness.session(
        device, live=True, device_profile=profile(racp=True), devices=POLLING_DEVICES
    )
    harness.start(session)
    await until(lambda: device.contacts >= 2)
    assert session.counters.failures == 1
    assert device.drivers[0].disconnected


async def test_a_low_battery_is_reported_once_per_contact(harness: Harness) -> None:
    device = fast_meter(battery_percent=15)
    session = harness.session(device)
    harness.start(session)
    await until(lambda: device.contacts >= 3)
    assert session.status().battery_percent == 15
    battery_events = [e for e in harness.events if e.event is EventType.BATTERY_LOW]
    assert battery_events[0].detail == {"battery_percent": 15}
    assert len(battery_events) <= device.contacts


async def test_a_contact_with_nothing_new_writes_nothing(harness: Harness) -> None:
    device = fast_meter()
    session = harness.session(device)
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 3)
    wal = harness.outbox.path.with_name(harness.outbox.path.name + "-wal")
    written = wal.stat().st_mtime_ns, wal.stat().st_size
    await until(lambda: len(device.cursors_seen) >= 4)
    assert (wal.stat().st_mtime_ns, wal.stat().st_size) == written


async def test_a_meter_reset_to_2000_is_caught_and_its_clock_set(harness: Harness) -> None:
    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2000, 1, 1, 0, 30),  # battery changed half an hour ago
        records=records(2, start=datetime(2000, 1, 1, 0, 0), minutes_apart=10),
        clock_settable=True,
    )
    session = harness.session(device, device_profile=profile(clock_settable=True))
    harness.start(session)
    await until(lambda: session.counters.readings_stored == 2)
    stored = sorted(harness.stored(), key=lambda r: r.seq or 0)
    assert [r.measured_at for r in stored] == [
        datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 7, 40, tzinfo=UTC),
    ]
    assert all({"device_clock_reset", FLAG_CLOCK_CORRECTED} <= set(r.flags) for r in stored)
    assert [r.device_time for r in stored] == [m.device_time for m in device.records]
    await until(lambda: device.clock_writes == [datetime(2026, 11, 23, 16, 0)])


# -- live measurements that cannot be stored ---------------------------------------------


def _heart_rate_sample() -> Measurement:
    """A strap's sample: stamped on receipt, no record key, kept nowhere on the device."""
    return Measurement(
        kind=Kind.HEART_RATE, values=HeartRateValues(heart_rate=70.0), source_unit=Unit.PER_MIN
    )


@pytest.mark.parametrize(
    ("racp", "ble", "seq", "device_time", "kept"),
    [
        (True, True, 7, None, True),  # a glucose meter's numbered record
        (True, True, None, T0, True),  # a record keyed by its time
        (False, False, 7, T0, True),  # a serial meter: its memory is downloaded
        (True, True, None, None, False),  # no key: a download cannot find it
        (False, True, 7, T0, False),  # a BLE device without a record memory
    ],
)
def test_kept_on_device(
    racp: bool, ble: bool, seq: int | None, device_time: datetime | None, kept: bool
) -> None:
    assert kept_on_device(profile(racp=racp, ble=ble), _live(seq, device_time)) is kept


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OutboxFull(Path("o.db"), used_bytes=2, ceiling_bytes=1, refused=1), "outbox_full"),
        (OutboxError(Path("o.db"), "write failed: disk I/O error"), "outbox_error"),
        (KeyError("bug"), "unexpected"),
    ],
)
def test_not_stored_reason(exc: BaseException, reason: str) -> None:
    assert not_stored_reason(exc).value == reason


def _other_glucose(index: int) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=6.0),
        source_unit=Unit.MMOL_PER_L,
        measured_at=GATEWAY_NOW - timedelta(minutes=index),
        received_at=GATEWAY_NOW,
        device_id="Roche-Accu_Chek_Guide-92310000999",
        patient_id="p-0002",
        gateway_id="gw-test",
        device_time=datetime(2026, 1, 1) + timedelta(minutes=index),
        seq=index,
    )


def _fill_to_ceiling(box: SqliteOutbox) -> None:
    """Another meter's backlog, up to the hard ceiling: clinical readings are refused."""
    index = 0
    while not box.stats().full:
        box.add([_other_glucose(index + i) for i in range(20)])
        index += 20


def _drain(box: SqliteOutbox) -> None:
    """Ingest acknowledged the whole backlog."""
    while (batch := box.begin_batch(1000, 10_000_000)) is not None:
        box.acknowledge(batch.reading_ids)


async def test_a_live_record_refused_by_a_full_outbox_is_announced_and_downloaded_later(
    harness: Harness, tmp_path: Path
) -> None:
    box = SqliteOutbox(
        tmp_path / "full.db", quota_bytes=64 * 1024, reserve_bytes=0, clock=harness.clock
    )
    _fill_to_ceiling(box)
    first, second = records(2, start=datetime(2026, 11, 23, 15, 50))

    def before_live(measurement: Measurement) -> None:
        if measurement.seq == 2:
            _drain(box)  # the backlog was acknowledged between the two measurements

    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        stores_live=True,
        before_live=before_live,
        script=[Contact(live=[first, second]), Contact()],
    )
    # No poll over the held link: this test is about what the next contact downloads.
    unpolled = FAST_DEVICES.model_copy(update={"ble_retry_seconds": 60.0})
    session = harness.session(
        device, live=True, outbox=box, device_profile=profile(racp=True), devices=unpolled
    )
    harness.start(session)
    try:
        await until(lambda: len(device.cursors_seen) >= 2)

        not_stored = [e for e in harness.events if e.event is EventType.READINGS_NOT_STORED]
        assert [e.detail for e in not_stored] == [
            {
                "reason": "outbox_full",
                "kept_on_device": True,
                "kind": "glucose",
                "seq": 1,
                "device_time": "2026-11-23T15:50:00",
            }
        ]
        assert not_stored[0].device_id == device.info.device_id
        status = session.status()
        assert (status.readings_not_stored, status.readings_lost) == (1, 0)
        assert box.stats().refused_clinical == 1
        # The second measurement was stored, but the cursor stayed before the first:
        # the next contact downloaded from there and brought the refused record in.
        assert device.cursors_seen[1] == RecordCursor()
        await until(lambda: session.counters.readings_stored == 2)
        stored = [msgspec.json.decode(encoded, type=AnyReading) for encoded in _stored_encoded(box)]
        assert sorted(r.seq or 0 for r in stored if r.device_id == device.info.device_id) == [1, 2]
        assert session.counters.duplicates == 1  # the second, downloaded again
    finally:
        harness.tasks.pop().cancel()
        await asyncio.sleep(0)
        box.close()


async def test_a_live_record_refused_on_a_held_link_comes_with_the_next_poll(
    harness: Harness, tmp_path: Path
) -> None:
    box = SqliteOutbox(
        tmp_path / "full.db", quota_bytes=64 * 1024, reserve_bytes=0, clock=harness.clock
    )
    _fill_to_ceiling(box)
    first, second = records(2, start=datetime(2026, 11, 23, 15, 50))

    def before_live(measurement: Measurement) -> None:
        if measurement.seq == 2:
            _drain(box)

    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        stores_live=True,
        before_live=before_live,
        script=[Contact(live=[first, second], keep_link=True)],
    )
    # Long enough for both live records to be delivered before the first poll.
    polling = FAST_DEVICES.model_copy(update={"ble_retry_seconds": 1.0})
    session = harness.session(
        device, live=True, outbox=box, device_profile=profile(racp=True), devices=polling
    )
    harness.start(session)
    try:
        await until(lambda: session.counters.readings_stored == 2)
        assert session.counters.readings_not_stored == 1
        # The poll, over the same link, downloaded from the cursor held before the refused one.
        assert device.contacts == 1
        assert device.cursors_seen == [None, RecordCursor()]
        assert box.cursor(device.info.device_id) == RecordCursor(2, second.device_time)
        assert session.counters.duplicates == 1  # the second, downloaded again
    finally:
        harness.tasks.pop().cancel()
        await asyncio.sleep(0)
        box.close()


def _stored_encoded(box: SqliteOutbox) -> tuple[bytes, ...]:
    batch = box.begin_batch(1000, 10_000_000)
    if batch is None:
        return ()
    box.requeue(batch)
    return batch.encoded


async def test_stream_samples_lost_to_a_failing_outbox_are_counted_and_announced_once(
    harness: Harness,
) -> None:
    samples = [_heart_rate_sample() for _ in range(3)]
    database = FullDatabase(harness.outbox)
    database.set_busy_timeout(20)
    holder = sqlite3.connect(harness.outbox.path, isolation_level=None)
    delivered: list[Measurement] = []

    def before_live(measurement: Measurement) -> None:
        delivered.append(measurement)
        if len(delivered) == 1:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
        if len(delivered) == 3:
            holder.execute("ROLLBACK")

    device = ScriptedDevice(
        info=meter_info(),
        clock=datetime(2026, 11, 23, 16, 0),
        before_live=before_live,
        script=[Contact(live=samples), Contact()],
    )
    session = harness.session(device, live=True)
    harness.start(session)
    try:
        await until(lambda: session.counters.live_measurements == 3 and len(delivered) == 3)
        await until(lambda: session.counters.readings_stored == 1)
    finally:
        holder.close()

    not_stored = [e for e in harness.events if e.event is EventType.READINGS_NOT_STORED]
    assert [e.detail for e in not_stored] == [
        {"reason": "outbox_error", "kept_on_device": False, "kind": "heart_rate"}
    ]
    status = session.status()
    assert (status.readings_not_stored, status.readings_lost) == (2, 2)
