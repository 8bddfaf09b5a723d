"""BLE drivers for the Bluetooth SIG health profiles, and what every BLE driver shares.

:class:`GattDriver` is the lifecycle common to all BLE devices over a
:class:`~device_drivers.base.GattTransport`: connect within the profile's deadline, read
identity from Device Information (manufacturer-model-serial, never the address), read and
set the clock through Current Time, disconnect. Subclasses add record download
(:mod:`device_drivers.ble_glucose`, :mod:`device_drivers.ble_cgm`) or live measurements.

The simple profiles only push measurements, so their drivers are tables here:

=========================  ===============================================  ==============
driver                     device                                           characteristic
=========================  ===============================================  ==============
``ble_blood_pressure``     upper-arm cuff (BLS): final result, indicated    0x2A35
``ble_heart_rate``         chest strap (HRS): every beat window, notified   0x2A37
``ble_weight_scale``       scale (WSS): each weighing, indicated            0x2A9D
``ble_thermometer``        thermometer (HTS): final reading, indicated      0x2A1C
``ble_pulse_oximeter``     oximeter (PLXS): spot check indicated, and       0x2A5E, 0x2A5F
                           continuous values notified about once a second
=========================  ===============================================  ==============

Intermediate values (cuff pressure 0x2A36, intermediate temperature 0x2A1E) are never
readings and are not subscribed. Parsing is :mod:`device_drivers.gatt`'s; these classes only
move bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from device_drivers.base import (
    DeviceInfo,
    FetchResult,
    GattTransport,
    MeasurementCallback,
    RecordCursor,
)
from device_drivers.errors import InvalidFrame, ProtocolError
from device_drivers.gatt import uuids
from device_drivers.gatt.blood_pressure import parse_blood_pressure_measurement
from device_drivers.gatt.datetime_fields import (
    current_time_from_datetime,
    encode_current_time,
    parse_current_time,
)
from device_drivers.gatt.device_information import parse_dis_string, parse_system_id
from device_drivers.gatt.heart_rate import parse_heart_rate_measurement
from device_drivers.gatt.pulse_oximeter import parse_plx_continuous, parse_plx_spot_check
from device_drivers.gatt.thermometer import parse_temperature_measurement
from device_drivers.gatt.weight import parse_weight_measurement
from device_drivers.measurement import Measurement
from device_drivers.profiles import BleTransportSettings, DeviceProfile

logger = logging.getLogger(__name__)

MEASUREMENT_QUEUE_SIZE: Final = 1024
"""Live measurements waiting for the session's callback. An oximeter notifies once a
second; 1024 is a quarter of an hour of backlog, far more than a stalled callback should
ever build, and bounds memory if one never returns."""

_REQUIRED_IDENTITY: Final = (
    ("manufacturer", uuids.MANUFACTURER_NAME_STRING),
    ("model", uuids.MODEL_NUMBER_STRING),
    ("serial", uuids.SERIAL_NUMBER_STRING),
)


class GattDriver:
    """The lifecycle shared by BLE drivers (see the module docstring).

    Args:
        transport: the GATT link (bleak, a simulator behind bleak, a replay).
        profile: the device model: connect deadline, quirks (clock may be set …).
    """

    def __init__(self, transport: GattTransport, *, profile: DeviceProfile) -> None:
        self._transport = transport
        self._profile = profile
        self._enabled: set[str] = set()
        self._live: asyncio.Queue[Measurement] = asyncio.Queue(MEASUREMENT_QUEUE_SIZE)
        self._pump: asyncio.Task[None] | None = None
        self.invalid_notifications = 0
        """Notifications that did not decode (logged and skipped, never fatal)."""

    @property
    def profile(self) -> DeviceProfile:
        """The device model this driver talks to."""
        return self._profile

    async def connect(self) -> None:
        """Connect within the profile's deadline (the transport retries inside it)."""
        self._enabled.clear()
        settings = self._profile.transport
        # The profile schema pairs BLE drivers with BLE transports.
        assert isinstance(settings, BleTransportSettings)
        await self._transport.connect(settings.connect_timeout_seconds)

    async def disconnect(self) -> None:
        """Stop delivering live measurements and close the link."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self._enabled.clear()
        await self._transport.disconnect()

    async def read_device_info(self) -> DeviceInfo:
        """Manufacturer, model and serial from Device Information, plus revisions and System ID.

        Raises:
            ProtocolError: the device lacks manufacturer, model or serial: it cannot be
                told apart from its siblings, so it is refused rather than guessed.
        """
        texts: dict[str, str] = {}
        for name, uuid in _REQUIRED_IDENTITY:
            if not self._transport.has_characteristic(uuid):
                raise ProtocolError(
                    f"device has no {uuids.CHARACTERISTIC_NAMES[uuid]} "
                    f"({uuids.short_form(uuid)}): no stable identity"
                )
            texts[name] = parse_dis_string(await self._transport.read(uuid))
        system_id = (
            parse_system_id(await self._transport.read(uuids.SYSTEM_ID)).eui64
            if self._transport.has_characteristic(uuids.SYSTEM_ID)
            else None
        )
        return DeviceInfo(
            manufacturer=texts["manufacturer"],
            model=texts["model"],
            serial=texts["serial"],
            firmware=await self._optional_string(uuids.FIRMWARE_REVISION_STRING),
            software=await self._optional_string(uuids.SOFTWARE_REVISION_STRING),
            system_id=system_id,
        )

    async def _optional_string(self, uuid: str) -> str | None:
        if not self._transport.has_characteristic(uuid):
            return None
        return parse_dis_string(await self._transport.read(uuid)) or None

    async def read_clock(self) -> datetime | None:
        """The device's Current Time, or ``None`` when it has none (or an unknown date)."""
        if not self._transport.has_characteristic(uuids.CURRENT_TIME):
            return None
        return parse_current_time(await self._transport.read(uuids.CURRENT_TIME)).to_datetime()

    async def set_clock(self, local_time: datetime) -> None:
        """Write Current Time.

        Raises:
            ProtocolError: the profile says this model's clock may not be set, or the
                device has no Current Time characteristic.
        """
        if not self._profile.quirks.clock_settable:
            raise ProtocolError(
                f"{self._profile.source}: quirks.clock_settable is false for "
                f"{self._profile.model}; its clock is only read"
            )
        if not self._transport.has_characteristic(uuids.CURRENT_TIME):
            raise ProtocolError("device has no Current Time characteristic (0x2A2B)")
        value = encode_current_time(current_time_from_datetime(local_time))
        await self._transport.write(uuids.CURRENT_TIME, value)

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        """Devices that only push measurements store nothing to download."""
        return FetchResult(measurements=(), cursor=cursor or RecordCursor())

    async def subscribe(self, callback: MeasurementCallback) -> None:
        """Enable the live characteristics and deliver their measurements to ``callback``.

        Call after every (re)connect: the link forgets notification state.
        """
        self._start_pump(callback)
        await self._enable_live()

    async def _enable_live(self) -> None:
        """Subclasses enable the characteristics that carry live measurements."""

    def _start_pump(self, callback: MeasurementCallback) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()

        async def pump() -> None:
            while True:
                measurement = await self._live.get()
                await callback(measurement)

        self._pump = asyncio.get_running_loop().create_task(pump(), name="live measurements")

    async def _enable(self, uuid: str, handler: Callable[[bytes], None]) -> None:
        """Enable notifications/indications once per connection."""
        if uuid in self._enabled:
            return
        await self._transport.start_notify(uuid, handler)
        self._enabled.add(uuid)

    def _deliver(self, measurement: Measurement) -> None:
        try:
            self._live.put_nowait(measurement)
        except asyncio.QueueFull:
            logger.warning(
                "%s: live measurement queue full, measurement dropped", self._profile.model
            )

    def _received(self, measurement: Measurement) -> None:
        """A measurement arrived from the device."""
        self._deliver(measurement)

    def _decoding(self, parse: Callable[[bytes], Measurement]) -> Callable[[bytes], None]:
        """A notification handler that parses and hands the measurement to
        :meth:`_received`, skipping (and counting) undecodable values."""

        def handle(data: bytes) -> None:
            try:
                measurement = parse(data)
            except InvalidFrame as exc:
                self.invalid_notifications += 1
                logger.warning("%s: undecodable notification skipped: %s", self._profile.model, exc)
                return
            self._received(measurement)

        return handle


@dataclass(frozen=True, slots=True)
class LiveCharacteristic:
    """A characteristic that carries measurements: its UUID and parser."""

    uuid: str
    parse: Callable[[bytes], Measurement]


class LiveMeasurementDriver(GattDriver):
    """A device that pushes measurements on the characteristics in :attr:`LIVE`."""

    LIVE: ClassVar[Sequence[LiveCharacteristic]]

    async def _enable_live(self) -> None:
        present = [item for item in self.LIVE if self._transport.has_characteristic(item.uuid)]
        if not present:
            names = ", ".join(uuids.short_form(item.uuid) for item in self.LIVE)
            raise ProtocolError(f"device exposes none of {names}: not a {self._profile.model}")
        for item in present:
            await self._enable(item.uuid, self._decoding(item.parse))


class BloodPressureDriver(LiveMeasurementDriver):
    """Blood Pressure Service cuff: each finished measurement is indicated on 0x2A35.

    Cuffs such as Omron's indicate their stored, unsent results right after the client
    enables the indication, so those arrive through :meth:`subscribe` as well.
    """

    LIVE = (LiveCharacteristic(uuids.BLOOD_PRESSURE_MEASUREMENT, parse_blood_pressure_measurement),)


class HeartRateDriver(LiveMeasurementDriver):
    """Heart Rate Service strap: heart rate and RR intervals notified on 0x2A37."""

    LIVE = (LiveCharacteristic(uuids.HEART_RATE_MEASUREMENT, parse_heart_rate_measurement),)


class WeightScaleDriver(LiveMeasurementDriver):
    """Weight Scale Service: each weighing indicated on 0x2A9D."""

    LIVE = (LiveCharacteristic(uuids.WEIGHT_MEASUREMENT, parse_weight_measurement),)


class ThermometerDriver(LiveMeasurementDriver):
    """Health Thermometer Service: each final temperature indicated on 0x2A1C."""

    LIVE = (LiveCharacteristic(uuids.TEMPERATURE_MEASUREMENT, parse_temperature_measurement),)


class PulseOximeterDriver(LiveMeasurementDriver):
    """Pulse Oximeter Service: spot checks indicated on 0x2A5E, continuous values on 0x2A5F."""

    LIVE = (
        LiveCharacteristic(uuids.PLX_SPOT_CHECK_MEASUREMENT, parse_plx_spot_check),
        LiveCharacteristic(uuids.PLX_CONTINUOUS_MEASUREMENT, parse_plx_continuous),
    )
