"""A scripted device for session tests: implements the Driver Protocol from a script.

Each contact is one :class:`Contact` entry: what the device says, or which step fails (an
exception, or a hang that only a deadline ends). Records are kept like a meter's memory:
``fetch_records`` returns those after the cursor (by sequence number when they have one,
by device time otherwise), so a test sees exactly what the session asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from device_drivers.base import DeviceInfo, FetchResult, MeasurementCallback, RecordCursor
from device_drivers.errors import ProtocolError
from device_drivers.measurement import Measurement
from device_drivers.profiles import DeviceProfile
from gateway.session import DeviceLink
from readings.model import GlucoseValues, Kind
from readings.units import Unit

HANG = "hang"
"""Script value: the step never returns (a dead link without a deadline of its own)."""


@dataclass
class Contact:
    """One contact's behaviour; a step set to an exception raises it, to HANG hangs."""

    connect: BaseException | str | None = None
    info: DeviceInfo | None = None
    """Overrides the device's identity for this contact."""
    fetch: BaseException | str | None = None
    live: Sequence[Measurement] = ()
    """Delivered through subscribe; then the link drops (unless ``keep_link``)."""
    keep_link: bool = False
    """The link stays up after the live measurements until :meth:`ScriptedDevice.drop_link`
    (a meter that does not switch its radio off after a sync)."""
    recorded: Sequence[Measurement] = ()
    """Measured while connected: put into the memory after subscribe, never notified (a
    Glucose Profile meter sends a stored result only when asked)."""
    poll: BaseException | str | None = None
    """What every download after the first of this contact does (a poll over a held link);
    an exception also drops the link when ``poll_drops_link``."""
    poll_drops_link: bool = False


@dataclass
class ScriptedDevice:
    """The device: identity, clock, memory, and a script of contacts (last one repeats)."""

    info: DeviceInfo
    clock: datetime | None
    records: list[Measurement] = field(default_factory=list)
    script: list[Contact] = field(default_factory=lambda: [Contact()])
    clock_settable: bool = False
    battery_percent: int | None = None
    """Battery Level, when the device has one."""
    contacts: int = 0
    cursors_seen: list[RecordCursor | None] = field(default_factory=list)
    clock_writes: list[datetime] = field(default_factory=list)
    subscriptions: int = 0
    drivers: list[ScriptedDriver] = field(default_factory=list)
    """Every contact's driver, in order."""
    stores_live: bool = False
    """Live measurements also go into the device's memory (a glucose meter keeps every
    result it measured), so a later download returns them."""
    before_live: Callable[[Measurement], None] | None = None
    """Called before each live measurement is delivered (a test changes the world there)."""

    def link(self, *, live: bool = False) -> DeviceLink:
        """A new link for one contact (what a session's link factory returns)."""
        contact = self.script[min(self.contacts, len(self.script) - 1)]
        self.contacts += 1
        driver = ScriptedDriver(self, contact)
        self.drivers.append(driver)

        async def battery() -> int | None:
            return self.battery_percent

        return DeviceLink(
            driver=driver,
            wait_disconnected=driver.wait_disconnected if live else None,
            battery_percent=battery,
        )

    def drop_link(self) -> None:
        """The current contact's link drops (the meter switched its radio off)."""
        self.drivers[-1].drop()


async def _step(action: BaseException | str | None) -> None:
    if action == HANG:
        await asyncio.Event().wait()
    if isinstance(action, BaseException):
        raise action


class ScriptedDriver:
    """The Driver Protocol over a :class:`ScriptedDevice`."""

    def __init__(self, device: ScriptedDevice, contact: Contact) -> None:
        self._device = device
        self._contact = contact
        self._dropped = asyncio.Event()
        self.disconnected = False
        self.fetches = 0

    async def connect(self) -> None:
        await _step(self._contact.connect)

    async def read_device_info(self) -> DeviceInfo:
        return self._contact.info or self._device.info

    async def read_clock(self) -> datetime | None:
        return self._device.clock

    async def set_clock(self, local_time: datetime) -> None:
        if not self._device.clock_settable:
            raise ProtocolError("clock not settable")
        self._device.clock_writes.append(local_time)
        self._device.clock = local_time

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        self._device.cursors_seen.append(cursor)
        self.fetches += 1
        if self.fetches == 1:
            await _step(self._contact.fetch)
        else:
            if isinstance(self._contact.poll, BaseException) and self._contact.poll_drops_link:
                self.drop()
            await _step(self._contact.poll)
        new = [record for record in self._device.records if _after(record, cursor)]
        if not new:
            return FetchResult(measurements=(), cursor=cursor or RecordCursor())
        last = new[-1]
        return FetchResult(
            measurements=tuple(new),
            cursor=RecordCursor(last_seq=last.seq, last_device_time=last.device_time),
        )

    async def subscribe(self, callback: MeasurementCallback) -> None:
        self._device.subscriptions += 1
        live = list(self._contact.live)

        async def deliver() -> None:
            for measurement in live:
                if self._device.stores_live:
                    self._device.records.append(measurement)
                if self._device.before_live is not None:
                    self._device.before_live(measurement)
                await callback(measurement)
            self._device.records.extend(self._contact.recorded)
            if not self._contact.keep_link:
                self._dropped.set()

        self._task = asyncio.get_running_loop().create_task(deliver())

    def drop(self) -> None:
        """The link drops."""
        self._dropped.set()

    async def wait_disconnected(self) -> None:
        await self._dropped.wait()

    async def disconnect(self) -> None:
        self.disconnected = True


def _after(record: Measurement, cursor: RecordCursor | None) -> bool:
    if cursor is None:
        return True
    if record.seq is not None and cursor.last_seq is not None:
        return record.seq > cursor.last_seq
    if record.device_time is not None and cursor.last_device_time is not None:
        return record.device_time > cursor.last_device_time
    return True


def profile(
    *,
    ble: bool = True,
    clock_settable: bool = False,
    profile_id: str = "test_meter",
    racp: bool = False,
) -> DeviceProfile:
    """A glucose meter profile, BLE or serial; ``racp``: its memory is downloaded by RACP."""
    transport: dict[str, object] = (
        {"kind": "ble", "service_uuids": ["1808"]}
        if ble
        else {
            "kind": "serial",
            "baud": 9600,
            "read_timeout_seconds": 1.0,
            "write_timeout_seconds": 1.0,
        }
    )
    return DeviceProfile.model_validate(
        {
            "profile_id": profile_id,
            "source": f"{profile_id}.toml",
            "manufacturer": "Test",
            "model": "Meter",
            "driver": "ble_glucose" if ble else "onetouch_ultra2",
            "kinds": ["glucose"],
            "transport": transport,
            "quirks": {
                "clock_settable": clock_settable,
                "racp_operators": ["all", "greater_or_equal"] if racp else None,
            },
        }
    )


def records(
    count: int, *, start: datetime, minutes_apart: int = 30, seq: bool = True
) -> list[Measurement]:
    """``count`` glucose records, oldest first."""
    return [
        Measurement(
            kind=Kind.GLUCOSE,
            values=GlucoseValues(glucose=5.0 + index / 10),
            source_unit=Unit.MMOL_PER_L,
            device_time=start + timedelta(minutes=minutes_apart * index),
            seq=index + 1 if seq else None,
        )
        for index in range(count)
    ]


class ImmediateTrigger:
    """A contact at once, then one every ``interval_seconds`` (a ContactTrigger)."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval_seconds = interval_seconds
        self._due = asyncio.Event()
        self._due.set()

    async def wait(self) -> None:
        try:
            async with asyncio.timeout(self._interval_seconds):
                await self._due.wait()
        except TimeoutError:
            pass
        self._due.clear()

    def contacted(self, *, downloaded: bool) -> None:
        pass

    def request(self) -> None:
        self._due.set()
