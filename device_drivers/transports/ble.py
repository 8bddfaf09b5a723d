"""BLE transport: :class:`~device_drivers.base.GattTransport` over bleak's public classes.

Only ``BleakClient`` and ``BleakScanner`` are used, with an optional ``backend=`` class,
so the same code reaches a real device through the OS Bluetooth stack or a simulated one
through :mod:`device_drivers.simulators.bleak_backend`.

Connecting retries within a total deadline; whether an error is worth another attempt,
and after how long, is decided in one place, :func:`backoff_for`. Every bleak or OS error
leaves this module as a :class:`~device_drivers.errors.DriverError` (``raise ... from``)
whose message tells the operator what to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from device_drivers.base import NotificationCallback
from device_drivers.errors import (
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    ProtocolError,
    TransportError,
)
from device_drivers.gatt.uuids import normalize_uuid
from device_drivers.profiles import BLE_CONNECT_DEADLINE_SECONDS

logger = logging.getLogger(__name__)

CONNECT_DEADLINE_SECONDS: Final = BLE_CONNECT_DEADLINE_SECONDS
"""Total time for all connect attempts (the profiles' default; see its reason there)."""

CONNECT_ATTEMPT_TIMEOUT_SECONDS: Final = 20.0
"""One attempt: LE connection plus service discovery. BlueZ without a GATT cache needs
several seconds to discover a device (bleak raised its own default to 30 s in 2.1.1 for
slow devices); 20 s leaves room for a second attempt inside the deadline."""

CONNECT_GUARD_SECONDS: Final = 1.0
"""bleak backends bound a connect by the ``timeout`` they are given; this margin on top only
stops a backend that hangs past it, without racing the backend's own, better error."""

MAX_CONNECT_ATTEMPTS: Final = 4
"""bleak-retry-connector's default: an adapter that failed four times in a row will not
succeed on the fifth, and each attempt occupies one of its few connection slots."""

ATT_TRANSACTION_TIMEOUT_SECONDS: Final = 30.0
"""The ATT transaction timeout of the Core specification (Vol 3, Part F, 3.3.3): a request
unanswered for 30 s ends the bearer."""

TRANSIENT_BACKOFF_SECONDS: Final = 0.25
"""BlueZ aborts LE connections on radio contention (``le-connection-abort-by-local``);
the next attempt usually succeeds at once (bleak-retry-connector uses the same value)."""

TIMEOUT_BACKOFF_SECONDS: Final = 0.5
"""An attempt that timed out often met a device between advertising bursts."""

DEVICE_NOT_FOUND_BACKOFF_SECONDS: Final = 2.0
"""Meters advertise in bursts every 1–2 s while they hold unsent records; one interval
gives the adapter a chance to see the device again."""

IN_PROGRESS_BACKOFF_SECONDS: Final = 1.0
"""BlueZ refuses a connect while its own previous one is still being torn down."""

OUT_OF_SLOTS_BACKOFF_SECONDS: Final = 4.0
"""The adapter has no free connection slot; one frees when another session disconnects
(bleak-retry-connector's value)."""

UNKNOWN_BLEAK_ERROR_BACKOFF_SECONDS: Final = 0.1
"""Untyped bleak errors are mostly radio hiccups; retry soon, the attempt cap bounds it."""

_TRANSIENT_MESSAGES: Final = (
    "le-connection-abort-by-local",
    "br-connection-canceled",
    "Software caused connection abort",
    "ESP_GATT_CONN_FAIL_ESTABLISH",
)
_OUT_OF_SLOTS_MESSAGES: Final = ("available connection", "connection slot")
_DEVICE_MISSING_DBUS_ERRORS: Final = frozenset({"org.freedesktop.DBus.Error.UnknownObject"})
_IN_PROGRESS_DBUS_ERRORS: Final = frozenset({"org.bluez.Error.InProgress"})
_ADAPTER_DOWN_DBUS_ERRORS: Final = frozenset(
    {"org.bluez.Error.NotReady", "org.freedesktop.DBus.Error.ServiceUnknown"}
)
_SECURITY_ATT_ERRORS: Final = frozenset(
    {
        BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    }
)

NOT_FOUND_ADVICE: Final = (
    "the device is not advertising: take a measurement or press its Bluetooth button, "
    "and keep it within a few metres of the gateway"
)
ADAPTER_ADVICE: Final = (
    "Bluetooth is not available on the gateway: check that the adapter is present and "
    "powered (bluetoothctl power on) and that the gateway may use it"
)
BONDING_ADVICE: Final = (
    "the device requires pairing: open the gateway's pairing window and confirm on the device"
)
OUT_OF_SLOTS_ADVICE: Final = (
    "the adapter has no free connection slot: fewer devices at once, or a second adapter"
)
RETRY_ADVICE: Final = "the radio link failed; try again closer to the gateway"


def backoff_for(exc: BaseException) -> float | None:
    """Seconds to wait before the next connect attempt after ``exc``; ``None`` = give up.

    Permanent failures (no adapter, pairing needed, the device lacks a characteristic,
    or an error that is not about the link at all) return ``None``: retrying cannot help
    and only hides the problem from the operator.
    """
    match exc:
        case BleakBluetoothNotAvailableError() | BleakCharacteristicNotFoundError():
            return None
        case BleakGATTProtocolError() if exc.code in _SECURITY_ATT_ERRORS:
            return None
        case BleakGATTProtocolError():
            return TRANSIENT_BACKOFF_SECONDS
        case BleakDeviceNotFoundError():
            return DEVICE_NOT_FOUND_BACKOFF_SECONDS
        case BleakDBusError() if exc.dbus_error in _ADAPTER_DOWN_DBUS_ERRORS:
            return None
        case BleakDBusError() if exc.dbus_error in _DEVICE_MISSING_DBUS_ERRORS:
            return DEVICE_NOT_FOUND_BACKOFF_SECONDS
        case BleakDBusError() if exc.dbus_error in _IN_PROGRESS_DBUS_ERRORS:
            return IN_PROGRESS_BACKOFF_SECONDS
        case BleakError() if any(text in str(exc) for text in _OUT_OF_SLOTS_MESSAGES):
            return OUT_OF_SLOTS_BACKOFF_SECONDS
        case BleakError() if any(text in str(exc) for text in _TRANSIENT_MESSAGES):
            return TRANSIENT_BACKOFF_SECONDS
        case BleakError():
            return UNKNOWN_BLEAK_ERROR_BACKOFF_SECONDS
        case TimeoutError():
            return TIMEOUT_BACKOFF_SECONDS
        case ConnectionError() | EOFError():
            # The D-Bus socket to BlueZ broke or the link dropped mid-setup.
            return TRANSIENT_BACKOFF_SECONDS
        case _:
            return None


class GattError(ProtocolError):
    """The device answered a GATT request with an ATT error.

    Attributes:
        operation: ``read``, ``write``, ``start_notify``, ``stop_notify`` or ``connect``.
        uuid: the characteristic, when the request named one.
        att_error: the ATT error code (e.g. 0x05 insufficient authentication, 0x80/0xFE
            "procedure already in progress" on a RACP write).
    """

    def __init__(self, message: str, *, operation: str, uuid: str | None, att_error: int) -> None:
        super().__init__(message)
        self.operation = operation
        self.uuid = uuid
        self.att_error = att_error


class CharacteristicNotFound(ProtocolError):
    """The connected device does not expose a characteristic the driver asked for.

    Attributes:
        uuid: the missing characteristic (128-bit form).
    """

    def __init__(self, uuid: str, where: str) -> None:
        super().__init__(
            f"{where}: no characteristic {uuid}: the device is not the model its profile "
            "describes, or the profile names the wrong service"
        )
        self.uuid = uuid


def translate_error(
    exc: BaseException, *, address: str, operation: str, uuid: str | None = None
) -> DriverError:
    """The driver error for a bleak or OS error, with advice for the operator.

    Used with ``raise translate_error(...) from exc`` so the original stays attached.
    """
    where = f"{address}: {operation}" + (f" {uuid}" if uuid else "")
    match exc:
        case DriverError():
            return exc
        case BleakDeviceNotFoundError():
            return DeviceNotFound(f"{where}: device not found: {NOT_FOUND_ADVICE}")
        case BleakDBusError() if exc.dbus_error in _DEVICE_MISSING_DBUS_ERRORS:
            return DeviceNotFound(f"{where}: device not found: {NOT_FOUND_ADVICE}")
        case BleakBluetoothNotAvailableError():
            return TransportError(f"{where}: {exc.reason.name.lower()}: {ADAPTER_ADVICE}")
        case BleakDBusError() if exc.dbus_error in _ADAPTER_DOWN_DBUS_ERRORS:
            return TransportError(f"{where}: {exc.dbus_error}: {ADAPTER_ADVICE}")
        case FileNotFoundError() | PermissionError():
            # BlueZ is reached over the D-Bus system socket: missing or forbidden.
            return TransportError(f"{where}: {exc}: {ADAPTER_ADVICE}")
        case BleakCharacteristicNotFoundError():
            return CharacteristicNotFound(uuid or str(exc.char_specifier), where)
        case BleakGATTProtocolError():
            advice = BONDING_ADVICE if exc.code in _SECURITY_ATT_ERRORS else RETRY_ADVICE
            return GattError(
                f"{where}: ATT error 0x{int(exc.code):02X} ({exc.code.name}): {advice}",
                operation=operation,
                uuid=uuid,
                att_error=int(exc.code),
            )
        case TimeoutError():
            return DeviceTimeout(f"{where}: no answer in time: {NOT_FOUND_ADVICE}")
        case BleakError() if any(text in str(exc) for text in _OUT_OF_SLOTS_MESSAGES):
            return TransportError(f"{where}: {exc}: {OUT_OF_SLOTS_ADVICE}")
        case _:
            return TransportError(f"{where}: {type(exc).__name__}: {exc}: {RETRY_ADVICE}")


_LINK_ERRORS: Final = (BleakError, TimeoutError, OSError, EOFError)


class BleakTransport:
    """A GATT link to one device through ``BleakClient``.

    Args:
        address_or_device: a ``BLEDevice`` from a scan (preferred: connecting by address
            makes bleak scan again) or an address.
        backend: a ``BaseBleakClient`` subclass to use instead of the OS backend (the
            bumble simulator's, for instance).
        pair: pair before connecting (profiles with ``needs_bonding``).
        attempt_timeout_seconds: bound of one connect attempt.
        max_attempts: connect attempts within the deadline.
        sleep: awaited between attempts (injected by tests).
        monotonic: clock for the deadline (injected by tests).
    """

    def __init__(
        self,
        address_or_device: BLEDevice | str,
        *,
        backend: type[BaseBleakClient] | None = None,
        pair: bool = False,
        attempt_timeout_seconds: float = CONNECT_ATTEMPT_TIMEOUT_SECONDS,
        max_attempts: int = MAX_CONNECT_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._target = address_or_device
        self._backend = backend
        self._pair = pair
        self._attempt_timeout_seconds = attempt_timeout_seconds
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._monotonic = monotonic
        self._client: BleakClient | None = None
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self.connect_attempts = 0
        """Attempts made by the last :meth:`connect` (for health reporting and tests)."""

    @property
    def address(self) -> str:
        """The Bluetooth address (a UUID on macOS). Never a device identity: it may be random."""
        target = self._target
        return target.address if isinstance(target, BLEDevice) else target

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._client is not None and self._client.is_connected

    async def connect(self, timeout_seconds: float = CONNECT_DEADLINE_SECONDS) -> None:
        """Connect and discover services, retrying within ``timeout_seconds`` in total.

        Does nothing when already connected.

        Raises:
            DeviceNotFound: the device was not seen.
            DeviceTimeout: no attempt completed in time.
            GattError: the device refused (e.g. pairing required).
            TransportError: the adapter or link failed in another way.
        """
        if self.is_connected:
            return
        deadline = self._monotonic() + timeout_seconds
        self.connect_attempts = 0
        self._client = None
        while True:
            self.connect_attempts += 1
            attempt_seconds = min(self._attempt_timeout_seconds, deadline - self._monotonic())
            client = self._new_client(attempt_seconds)
            try:
                async with asyncio.timeout(attempt_seconds + CONNECT_GUARD_SECONDS):
                    await client.connect()
            except _LINK_ERRORS as exc:
                await self._discard(client)
                delay = backoff_for(exc)
                out_of_time = delay is not None and self._monotonic() + delay >= deadline
                if delay is None or out_of_time or self.connect_attempts >= self._max_attempts:
                    raise translate_error(exc, address=self.address, operation="connect") from exc
                logger.info(
                    "BLE connect to %s failed (%s, attempt %d); retrying in %.2f s",
                    self.address,
                    type(exc).__name__,
                    self.connect_attempts,
                    delay,
                )
                await self._sleep(delay)
            else:
                self._client = client
                self._disconnected.clear()
                return

    def _new_client(self, timeout_seconds: float) -> BleakClient:
        def on_disconnect(disconnected: BleakClient) -> None:
            # A discarded attempt's client may report late; only the live link counts.
            if disconnected is self._client:
                self._disconnected.set()

        return BleakClient(
            self._target,
            on_disconnect,
            timeout=timeout_seconds,
            pair=self._pair,
            backend=self._backend,
        )

    async def _discard(self, client: BleakClient) -> None:
        # A cancelled or failed attempt may leave a half-open link in the OS stack.
        try:
            await client.disconnect()
        except _LINK_ERRORS:
            logger.debug("cleanup after a failed connect to %s failed", self.address)

    async def disconnect(self) -> None:
        """Disconnect; safe when already disconnected."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except _LINK_ERRORS as exc:
                raise translate_error(exc, address=self.address, operation="disconnect") from exc
        self._disconnected.set()

    async def wait_disconnected(self) -> None:
        """Return when the link is down (dropped by the device, or :meth:`disconnect`)."""
        await self._disconnected.wait()

    def _connected_client(self, operation: str, uuid: str | None) -> BleakClient:
        client = self._client
        if client is None or not client.is_connected:
            raise TransportError(f"{self.address}: {operation} {uuid or ''}: not connected")
        return client

    def has_characteristic(self, uuid: str) -> bool:
        """Whether the connected device exposes the characteristic."""
        client = self._connected_client("has_characteristic", uuid)
        return client.services.get_characteristic(normalize_uuid(uuid)) is not None

    async def read(self, uuid: str) -> bytes:
        """Read a characteristic value."""
        client = self._connected_client("read", uuid)
        try:
            async with asyncio.timeout(ATT_TRANSACTION_TIMEOUT_SECONDS):
                return bytes(await client.read_gatt_char(normalize_uuid(uuid)))
        except _LINK_ERRORS as exc:
            raise translate_error(exc, address=self.address, operation="read", uuid=uuid) from exc

    async def write(self, uuid: str, data: bytes, *, with_response: bool = True) -> None:
        """Write a characteristic value."""
        client = self._connected_client("write", uuid)
        try:
            async with asyncio.timeout(ATT_TRANSACTION_TIMEOUT_SECONDS):
                await client.write_gatt_char(normalize_uuid(uuid), data, response=with_response)
        except _LINK_ERRORS as exc:
            raise translate_error(exc, address=self.address, operation="write", uuid=uuid) from exc

    async def start_notify(self, uuid: str, callback: NotificationCallback) -> None:
        """Enable notifications or indications and deliver each value to ``callback``."""
        client = self._connected_client("start_notify", uuid)

        def deliver(_characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            callback(bytes(data))

        try:
            async with asyncio.timeout(ATT_TRANSACTION_TIMEOUT_SECONDS):
                await client.start_notify(normalize_uuid(uuid), deliver)
        except _LINK_ERRORS as exc:
            raise translate_error(
                exc, address=self.address, operation="start_notify", uuid=uuid
            ) from exc

    async def stop_notify(self, uuid: str) -> None:
        """Disable notifications or indications."""
        client = self._connected_client("stop_notify", uuid)
        try:
            async with asyncio.timeout(ATT_TRANSACTION_TIMEOUT_SECONDS):
                await client.stop_notify(normalize_uuid(uuid))
        except _LINK_ERRORS as exc:
            raise translate_error(
                exc, address=self.address, operation="stop_notify", uuid=uuid
            ) from exc


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One device seen by a scan.

    Attributes:
        device: what to hand to :class:`BleakTransport` to connect.
        local_name: the advertised name, if any.
        service_uuids: advertised services (128-bit form).
        rssi: signal strength, dBm.
    """

    device: BLEDevice
    local_name: str | None
    service_uuids: tuple[str, ...]
    rssi: int

    @property
    def address(self) -> str:
        """The Bluetooth address (not an identity: it may be random)."""
        return self.device.address


def _advertisement(device: BLEDevice, data: AdvertisementData) -> Advertisement:
    return Advertisement(
        device=device,
        local_name=data.local_name,
        service_uuids=tuple(normalize_uuid(uuid) for uuid in data.service_uuids),
        rssi=data.rssi,
    )


async def scan(
    timeout_seconds: float,
    *,
    backend: type[BaseBleakScanner] | None = None,
    service_uuids: Sequence[str] | None = None,
) -> list[Advertisement]:
    """Listen for advertisements for ``timeout_seconds``; one entry per device, by address.

    Raises:
        TransportError: the adapter is missing, off, or not ours to use.
    """
    options: BleakScanner.ExtraArgs = {}
    if service_uuids:
        options["service_uuids"] = [normalize_uuid(uuid) for uuid in service_uuids]
    if backend is not None:
        options["backend"] = backend
    try:
        found = await BleakScanner.discover(timeout_seconds, return_adv=True, **options)
    except _LINK_ERRORS as exc:
        raise translate_error(exc, address="(scanner)", operation="scan") from exc
    return sorted(
        (_advertisement(device, data) for device, data in found.values()),
        key=lambda advertisement: advertisement.address,
    )
