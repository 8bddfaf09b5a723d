"""What every simulated BLE health device shares: identity, clock, advertising, scenario.

A :class:`SimulatedPeripheral` is a real GATT server on a :class:`BumbleLink`. It exposes
Device Information (manufacturer, model, serial, firmware, System ID) and Current Time
(readable; writable only when the profile says the clock may be set; skewed as the
scenario says), advertises the profile's service under the profile's simulated name, and
watches its :class:`~device_drivers.simulators.scenario.Scenario`: each record the
scenario schedules is "taken" when its time comes, and the subclass decides what the
device does with it (store it, notify it, indicate it).

Scenario conventions for BLE (the scenario model is shared with the serial simulators):

* a "transfer" is one burst of notifications: one RACP report procedure, or what a device
  sends on one connection; ``link_drops``/``link_drop_after_bytes`` cut the first transfers
  by disconnecting from the device side;
* ``corrupt_frame_numbers`` count the notifications of a transfer (1-based); which byte is
  damaged depends on the protocol (the CGM damages the E2E-CRC).
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from device_drivers.base import DeviceInfo
from device_drivers.errors import DriverError
from device_drivers.gatt import uuids
from device_drivers.gatt.datetime_fields import (
    AdjustReason,
    current_time_from_datetime,
    encode_current_time,
    parse_current_time,
)
from device_drivers.gatt.device_information import SystemId, encode_dis_string, encode_system_id
from device_drivers.profiles import DeviceProfile, SimulatorSettings
from device_drivers.simulators.bumble_link import SIMULATED_ADVERTISING_INTERVAL_MS, BumbleLink
from device_drivers.simulators.scenario import (
    DeviceClock,
    Scenario,
    ScenarioRecord,
    local_wall_clock,
)

logger = logging.getLogger(__name__)

SCENARIO_POLL_SECONDS: Final = 0.02
"""How often a simulator looks whether the scenario's next record is due. Short enough
that a test advancing an injected clock sees the device react at once."""

SYSTEM_ID_FILLER: Final = 0xFFFE
"""System ID built from a Bluetooth address puts 0xFFFE between OUI and the rest (DIS)."""

_ADVERTISING_FLAGS: Final = bytes(
    [AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG]
)


class SimulatorError(DriverError):
    """A simulator cannot be built as asked (profile without a simulator section …)."""


class TransferBudget:
    """One transfer's account against the scenario: bytes left before the link drops, and
    the number of the next logical frame (for ``corrupt_frame_numbers``).

    Args:
        limit_bytes: ``None`` for a transfer that completes.
    """

    def __init__(self, limit_bytes: int | None) -> None:
        self._remaining = limit_bytes
        self._frames = 0

    def spend(self, size: int) -> bool:
        """Count ``size`` bytes; ``False`` when the link must drop before they go out."""
        if self._remaining is not None:
            if size > self._remaining:
                return False
            self._remaining -= size
        return True

    def next_frame(self) -> int:
        """The 1-based number of the next frame of this transfer."""
        self._frames += 1
        return self._frames


@dataclass(frozen=True, slots=True)
class NumberedRecord:
    """A record in device memory with the key the device gives it.

    Attributes:
        key: sequence number (glucose meters) or time offset in minutes (CGM).
        record: what the scenario says was measured.
        device_time: the device's clock when it was taken.
    """

    key: int
    record: ScenarioRecord
    device_time: datetime


class SimulatedPeripheral(abc.ABC):
    """Base of the simulated BLE health devices (see the module docstring).

    Args:
        link: the virtual radio the device lives on.
        profile: the model it simulates; its ``simulator`` section names the serial number
            and advertised name.
        scenario: what it measures and how it misbehaves (default: nothing, no faults).
        now: the real local wall-clock time (naive), injected so tests control time.
    """

    simulator_kind: ClassVar[str]
    """The ``simulator.kind`` of the profiles this class serves."""
    advertised_service: ClassVar[str]

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        settings = profile.simulator
        if settings is None or settings.kind != self.simulator_kind:
            raise SimulatorError(
                f"{profile.source}: simulator.kind must be {self.simulator_kind!r} for "
                f"{type(self).__name__} (it is {settings.kind if settings else 'missing'!r})"
            )
        self.profile = profile
        self.settings: SimulatorSettings = settings
        self.scenario = scenario if scenario is not None else Scenario()
        self.clock = DeviceClock(self.scenario, now)
        self.local_name = settings.local_name or profile.model
        self.device = link.new_peripheral(self.local_name)
        self.connections: list[Connection] = []
        self._transfers = 0
        self._watcher: asyncio.Task[None] | None = None
        self._timeline = tuple(
            record for record in self.scenario.timeline() if record.kind in profile.kinds
        )
        self._offsets = [record.at_offset_seconds for record in self._timeline]
        self._cleared_at: float | None = None

    @property
    def address(self) -> str:
        """The device's (static random) Bluetooth address."""
        return str(self.device.random_address.to_string(with_type_qualifier=False))

    @property
    def info(self) -> DeviceInfo:
        """What the device reports in its Device Information Service."""
        return DeviceInfo(
            manufacturer=self.profile.manufacturer,
            model=self.profile.model,
            serial=self.settings.serial,
            firmware=self.settings.firmware,
            system_id=self._system_id().eui64,
        )

    def _system_id(self) -> SystemId:
        address = int(self.address.replace(":", ""), 16)
        return SystemId(
            manufacturer_identifier=SYSTEM_ID_FILLER << 24 | address & 0xFFFFFF,
            organizationally_unique_identifier=address >> 24,
        )

    @abc.abstractmethod
    def profile_services(self) -> Sequence[Service]:
        """The services of the simulated profile (the subclass's GATT database)."""

    @abc.abstractmethod
    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """The scenario says the device measured ``records`` (oldest first) just now."""

    async def start(self) -> None:
        """Build the GATT database, power on, advertise, and start following the scenario."""
        self.device.add_services([self._device_information(), self._current_time()])
        self.device.add_services(list(self.profile_services()))
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        await self._advertise()
        self._watcher = asyncio.create_task(
            self._watch_scenario(), name=f"simulator {self.local_name}"
        )

    async def _advertise(self) -> None:
        service = core.UUID(uuids.short_form(self.advertised_service).removeprefix("0x"))
        advertising = AdvertisingData(
            [
                (AdvertisingData.FLAGS, _ADVERTISING_FLAGS),
                (AdvertisingData.COMPLETE_LOCAL_NAME, self.local_name.encode("utf-8")),
                (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(service)),
            ]
        )
        await self.device.start_advertising(
            advertising_data=bytes(advertising),
            auto_restart=True,
            advertising_interval_min=SIMULATED_ADVERTISING_INTERVAL_MS,
            advertising_interval_max=SIMULATED_ADVERTISING_INTERVAL_MS,
        )

    async def stop(self) -> None:
        """Stop following the scenario and leave the air (connections are dropped)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.drop_link()
        if self.device.is_advertising:
            await self.device.stop_advertising()

    async def drop_link(self) -> None:
        """Disconnect every central, as when the device walks out of range."""
        for connection in list(self.connections):
            with contextlib.suppress(core.BaseBumbleError):
                await connection.disconnect()

    def _on_connection(self, connection: Connection) -> None:
        self.connections.append(connection)

        def forget(_reason: int) -> None:
            if connection in self.connections:
                self.connections.remove(connection)

        connection.on(connection.EVENT_DISCONNECTION, forget)

    async def _watch_scenario(self) -> None:
        checked = self.clock.elapsed_seconds()
        while True:
            await asyncio.sleep(SCENARIO_POLL_SECONDS)
            now = self.clock.elapsed_seconds()
            due = self._timeline[self._taken_count(checked) : self._taken_count(now)]
            checked = now
            if due:
                await self.on_records_taken(due)

    def _taken_count(self, elapsed_seconds: float) -> int:
        """How many timeline records are due ``elapsed_seconds`` after the start."""
        return bisect.bisect_right(self._offsets, elapsed_seconds)

    def taken_records(self) -> list[ScenarioRecord]:
        """Records measured so far and not erased, oldest first (capacity not applied)."""
        elapsed = self.clock.elapsed_seconds()
        cleared = [
            moment
            for moment in (self.scenario.clear_memory_at, self._cleared_at)
            if moment is not None and moment <= elapsed
        ]
        first = self._taken_count(max(cleared)) if cleared else 0
        return list(self._timeline[first : self._taken_count(elapsed)])

    def erase_memory(self) -> None:
        """Forget every record taken until now (a "delete all" from the client)."""
        self._cleared_at = self.clock.elapsed_seconds()

    @property
    def memory_capacity(self) -> int | None:
        """How many records the device keeps (the scenario's, else the profile's)."""
        return self.scenario.memory_capacity or self.profile.quirks.max_stored_records

    def new_transfer(self) -> TransferBudget:
        """Start counting a transfer against the scenario's link drops."""
        self._transfers += 1
        return TransferBudget(self.scenario.drop_after_bytes(self._transfers))

    async def send(
        self,
        connection: Connection,
        characteristic: Characteristic[bytes],
        value: bytes,
        *,
        indicate: bool = False,
        budget: TransferBudget | None = None,
    ) -> bool:
        """Notify or indicate ``value`` to one central.

        Returns:
            ``False`` when the value could not go out (the scenario dropped the link, or
            the central left); the caller stops its transfer.
        """
        if budget is not None and not budget.spend(len(value)):
            logger.info("simulated link drop on %s", self.local_name)
            await self.drop_link()
            return False
        if connection not in self.connections:
            return False
        try:
            if indicate:
                await self.device.indicate_subscriber(connection, characteristic, value)
            else:
                await self.device.notify_subscriber(connection, characteristic, value)
        except (core.BaseBumbleError, TimeoutError):
            logger.debug("%s: central left during a transfer", self.local_name)
            return False
        return True

    def is_subscribed(self, connection: Connection, characteristic: Characteristic[bytes]) -> bool:
        """Whether the central enabled notifications or indications of ``characteristic``."""
        cccd = self.device.gatt_server.read_cccd(connection, characteristic)
        return any(cccd)

    def _device_information(self) -> Service:
        info = self.info
        strings = (
            (uuids.MANUFACTURER_NAME_STRING, info.manufacturer),
            (uuids.MODEL_NUMBER_STRING, info.model),
            (uuids.SERIAL_NUMBER_STRING, info.serial),
            (uuids.FIRMWARE_REVISION_STRING, info.firmware or ""),
        )
        characteristics: list[Characteristic[bytes]] = [
            readable(uuid, encode_dis_string(text)) for uuid, text in strings
        ]
        characteristics.append(readable(uuids.SYSTEM_ID, encode_system_id(self._system_id())))
        return Service(bumble_uuid(uuids.DEVICE_INFORMATION_SERVICE), characteristics)

    def _current_time(self) -> Service:
        settable = self.profile.quirks.clock_settable

        def read(_connection: Connection) -> bytes:
            now = self.clock.device_now()
            return encode_current_time(current_time_from_datetime(now, AdjustReason(0)))

        def write(_connection: Connection, value: bytes) -> None:
            if not settable:
                raise att.ATT_Error(
                    att.ErrorCode.WRITE_NOT_PERMITTED, message="clock is not settable"
                )
            moment = parse_current_time(value).to_datetime()
            if moment is None:
                raise att.ATT_Error(att.ErrorCode.VALUE_NOT_ALLOWED, message="unknown date")
            self.clock.set_device_time(moment)

        properties = Characteristic.Properties.READ | Characteristic.Properties.NOTIFY
        permissions = Characteristic.READABLE
        if settable:
            properties |= Characteristic.Properties.WRITE
            permissions |= Characteristic.WRITEABLE
        current_time: Characteristic[bytes] = Characteristic(
            bumble_uuid(uuids.CURRENT_TIME),
            properties,
            permissions,
            CharacteristicValue(read=read, write=write),
        )
        return Service(bumble_uuid(uuids.CURRENT_TIME_SERVICE), [current_time])


def bumble_uuid(uuid: str) -> core.UUID:
    """bumble's UUID for a 128-bit UUID string (16-bit form inside the base range)."""
    return core.UUID(uuids.short_form(uuid).removeprefix("0x"))


def readable(uuid: str, value: bytes) -> Characteristic[bytes]:
    """A read-only characteristic with a fixed value."""
    return Characteristic(
        bumble_uuid(uuid), Characteristic.Properties.READ, Characteristic.READABLE, value
    )


def notifying(uuid: str, *, indicate: bool = False) -> Characteristic[bytes]:
    """A characteristic that only notifies (or indicates) values pushed by the simulator."""
    properties = (
        Characteristic.Properties.INDICATE if indicate else Characteristic.Properties.NOTIFY
    )
    return Characteristic(bumble_uuid(uuid), properties, Characteristic.Permissions(0), b"")
