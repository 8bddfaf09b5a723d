"""A bleak backend on bumble: simulated devices behind bleak's public classes.

bleak picks one backend per OS (BlueZ, CoreBluetooth, WinRT) and lets a caller inject
another with ``backend=``. These two classes implement bleak's backend interfaces
(``BaseBleakClient``, ``BaseBleakScanner``) on a
:class:`~device_drivers.simulators.bumble_link.BumbleCentral`, so
``BleakClient(address, backend=link.client_backend)`` and
``BleakScanner(backend=link.scanner_backend)`` reach the simulators through exactly the
code path the gateway uses for real devices.

bumble's errors are raised as the bleak errors a real backend raises for the same
situation (``BleakDeviceNotFoundError`` for a device that does not advertise,
``BleakGATTProtocolError`` for an ATT error response, ``TimeoutError`` for a GATT timeout),
so the transport's error handling is exercised too.

``tests/device_drivers/test_bleak_conformance.py`` checks that bleak still has the
interfaces these classes implement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Peer
from bumble.gatt_client import AttributeProxy, CharacteristicProxy

from device_drivers.gatt.uuids import normalize_uuid
from device_drivers.simulators.bumble_link import honour_cancellation

if TYPE_CHECKING:
    from device_drivers.simulators.bumble_link import BumbleCentral

logger = logging.getLogger(__name__)

REQUESTED_ATT_MTU: Final = 247
"""What BlueZ and phones ask for: 247 fills one LE data-length-extended packet (251 bytes
less the L2CAP header). Lets a CGM pack several records into one notification."""

_SERVICE_UUID_TYPES: Final = (
    AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


def _uuid_text(uuid: core.UUID) -> str:
    """bleak's form of a UUID: 128-bit, lower case."""
    return normalize_uuid(uuid.to_hex_str("-"))


def _address_text(address: Any) -> str:
    return str(address.to_string(with_type_qualifier=False))


@dataclass(frozen=True, slots=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` of a device found on a bumble link: how to reach it."""

    central: BumbleCentral
    address: str


def _bleak_error(exc: Exception, address: str) -> Exception:
    """The exception a real bleak backend raises where bumble raised ``exc``."""
    match exc:
        case att.ATT_Error():
            return BleakGATTProtocolError(exc.error_code)
        case core.TimeoutError() | TimeoutError():
            return TimeoutError(f"{address}: GATT request timed out")
        case _:
            return BleakError(f"{address}: {type(exc).__name__}: {exc}")


_BUMBLE_ERRORS: Final = (core.BaseBumbleError, TimeoutError)


class BumbleClientBackend(BaseBleakClient):
    """``BaseBleakClient`` on a bumble central. Use ``link.client_backend`` (bound to a link)
    or pass a ``BLEDevice`` found by :class:`BumbleScannerBackend`."""

    central: ClassVar[BumbleCentral | None] = None

    @classmethod
    def bound_to(cls, central: BumbleCentral) -> type[BumbleClientBackend]:
        """This class, connecting through ``central`` when given a plain address."""
        return cast(type[BumbleClientBackend], type(cls.__name__, (cls,), {"central": central}))

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        details = (
            address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        )
        if isinstance(details, BumbleDeviceDetails):
            self._central = details.central
        elif self.central is not None:
            self._central = self.central
        else:
            raise BleakError(
                "BumbleClientBackend needs a BLEDevice from BumbleScannerBackend or a class "
                "bound to a link (BumbleLink.client_backend)"
            )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        """The address: the simulated link has no OS device name."""
        return self.address

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU."""
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU, discover every service, characteristic and descriptor.

        Raises:
            BleakDeviceNotFoundError: the device did not advertise in time.
        """
        try:
            connection = await self._central.connect(self.address, self._timeout)
        except core.TimeoutError as exc:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found"
            ) from exc
        self._closing = False
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            peer = Peer(connection)
            await honour_cancellation(peer.request_mtu(REQUESTED_ATT_MTU))
            if pair:
                await honour_cancellation(connection.pair())
            self.services = await honour_cancellation(self._discover(peer))
            self._peer = peer
        except _BUMBLE_ERRORS as exc:
            await self.disconnect()
            raise _bleak_error(exc, self.address) from exc

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service_proxy in await peer.discover_services():
            service = BleakGATTService(
                service_proxy, service_proxy.handle, _uuid_text(service_proxy.uuid)
            )
            collection.add_service(service)
            for characteristic_proxy in await peer.discover_characteristics(service=service_proxy):
                characteristic = self._characteristic(characteristic_proxy, service)
                collection.add_characteristic(characteristic)
                for descriptor_proxy in await peer.discover_descriptors(characteristic_proxy):
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor_proxy,
                            descriptor_proxy.handle,
                            _uuid_text(descriptor_proxy.type),
                            characteristic,
                        )
                    )
        return collection

    def _characteristic(
        self, proxy: CharacteristicProxy[bytes], service: BleakGATTService
    ) -> BleakGATTCharacteristic:
        properties: list[CharacteristicPropertyName] = [
            name for bit, name in CHARACTERISTIC_PROPERTIES.items() if int(proxy.properties) & bit
        ]
        return BleakGATTCharacteristic(
            proxy,
            proxy.handle,
            _uuid_text(proxy.uuid),
            properties,
            lambda: self.mtu_size - 3,
            service,
        )

    def _on_disconnection(self, _reason: int) -> None:
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        """Disconnect; safe when already disconnected."""
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        disconnected = asyncio.get_running_loop().create_future()
        connection.once(
            Connection.EVENT_DISCONNECTION, lambda _reason: disconnected.set_result(None)
        )
        try:
            await honour_cancellation(connection.disconnect())
            await disconnected
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc
        finally:
            self._connection = None
            self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (LE Secure Connections, Just Works) over the virtual link."""
        connection = self._require_connection()
        try:
            await honour_cancellation(connection.pair())
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc

    async def unpair(self) -> None:
        """Forget the bond and disconnect."""
        keystore = self._central.device.keystore
        if keystore is not None:
            # Bonds are kept under the peer's identity address, with a "/P" when public.
            for name, _keys in await keystore.get_all():
                if name.split("/")[0] == self.address:
                    await keystore.delete(name)
        await self.disconnect()

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"{self.address}: not connected")
        return self._connection

    def _require_peer(self) -> Peer:
        self._require_connection()
        if self._peer is None:
            raise BleakError(f"{self.address}: services not discovered")
        return self._peer

    async def read_gatt_char(
        self,
        characteristic: BleakGATTCharacteristic,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        """Read a characteristic value (always from the device)."""
        return await self._read(characteristic.obj)

    async def read_gatt_descriptor(
        self,
        descriptor: BleakGATTDescriptor,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        """Read a descriptor value."""
        return await self._read(descriptor.obj)

    async def _read(self, proxy: AttributeProxy[bytes]) -> bytearray:
        peer = self._require_peer()
        try:
            return bytearray(await honour_cancellation(peer.read_value(proxy)))
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        """Write a characteristic value, with or without response."""
        await self._write(characteristic.obj, bytes(data), response)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        """Write a descriptor value (with response)."""
        await self._write(descriptor.obj, bytes(data), True)

    async def _write(self, proxy: AttributeProxy[bytes], data: bytes, response: bool) -> None:
        peer = self._require_peer()
        try:
            await honour_cancellation(peer.write_value(proxy, data, with_response=response))
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,
    ) -> None:
        """Write the CCCD (notify preferred over indicate, as bleak's backends do)."""
        peer = self._require_peer()
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        try:
            await honour_cancellation(peer.subscribe(proxy, deliver, prefer_notify=True))
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc
        self._subscribers[characteristic.handle] = deliver

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Clear the CCCD."""
        peer = self._require_peer()
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        try:
            await honour_cancellation(
                peer.unsubscribe(proxy, self._subscribers.pop(characteristic.handle, None))
            )
        except _BUMBLE_ERRORS as exc:
            raise _bleak_error(exc, self.address) from exc


def _advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    data = advertisement.data
    names = data.get_all(AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get_all(
        AdvertisingData.Type.SHORTENED_LOCAL_NAME
    )
    # dict: an advertisement merged with its scan response may list a service twice.
    service_uuids = list(
        dict.fromkeys(
            _uuid_text(uuid)
            for uuid_type in _SERVICE_UUID_TYPES
            for uuids in data.get_all(uuid_type)
            for uuid in uuids
        )
    )
    manufacturer_data = {
        company: bytes(payload)
        for company, payload in data.get_all(AdvertisingData.Type.MANUFACTURER_SPECIFIC_DATA)
    }
    tx_power = (
        advertisement.tx_power
        if advertisement.tx_power != Advertisement.TX_POWER_NOT_AVAILABLE
        else None
    )
    return AdvertisementData(
        local_name=str(names[0]) if names else None,
        manufacturer_data=manufacturer_data,
        service_data={},
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BumbleScannerBackend(BaseBleakScanner):
    """``BaseBleakScanner`` on a bumble central. Use ``link.scanner_backend``."""

    central: ClassVar[BumbleCentral | None] = None

    @classmethod
    def bound_to(cls, central: BumbleCentral) -> type[BumbleScannerBackend]:
        """This class, listening through ``central``."""
        return cast(type[BumbleScannerBackend], type(cls.__name__, (cls,), {"central": central}))

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if self.central is None:
            raise BleakError(
                "BumbleScannerBackend must be bound to a link: use BumbleLink.scanner_backend"
            )
        self._bound_central: BumbleCentral = self.central

    async def start(self) -> None:
        """Start listening; forgets what an earlier scan saw."""
        self.seen_devices = {}
        await self._bound_central.start_scanning(self._on_advertisement)

    async def stop(self) -> None:
        """Stop listening."""
        await self._bound_central.stop_scanning(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = _advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = _address_text(advertisement.address)
        device = self.create_or_update_device(
            address,
            address,
            data.local_name,
            BumbleDeviceDetails(self._bound_central, address),
            data,
        )
        self.call_detection_callbacks(device, data)
