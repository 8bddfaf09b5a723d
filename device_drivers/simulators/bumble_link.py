"""A virtual BLE radio in the gateway's own process, built on bumble.

One :class:`BumbleLink` is one room full of radios: a ``bumble.link.LocalLink`` that
carries link-layer PDUs between virtual controllers, a :class:`BumbleCentral` standing in
for the gateway's Bluetooth adapter, and any number of simulated peripherals (real GATT
servers, :mod:`device_drivers.simulators.ble_peripheral`). The gateway reaches them through
bleak's public classes with the backend classes from
:mod:`device_drivers.simulators.bleak_backend`::

    link = BumbleLink()
    await link.start()
    meter = GlucoseMeterSimulator(link, profile, scenario)
    await meter.start()
    client = BleakClient(meter.address, backend=link.client_backend)

Nothing here touches a real adapter, and no real time passes except the advertising
interval while connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Advertisement, Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

if TYPE_CHECKING:
    from device_drivers.simulators.bleak_backend import (
        BumbleClientBackend,
        BumbleScannerBackend,
    )

logger = logging.getLogger(__name__)

SIMULATED_ADVERTISING_INTERVAL_MS: Final = 100.0
"""Health devices advertise every 100 ms to 1 s while they hold data for the gateway; the
fast end keeps a simulated connect (which waits for the next advertisement) quick."""

CENTRAL_ADDRESS: Final = "D0:00:00:00:00:01"
"""Static random address of the gateway's virtual adapter (two top bits set: static)."""

_PERIPHERAL_ADDRESS_PREFIX: Final = "C0:00:00:00"
_MAX_PERIPHERALS: Final = 0xFFFF

AdvertisementListener = Callable[[Advertisement], None]

T = TypeVar("T")


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


async def honour_cancellation(operation: Awaitable[T]) -> T:
    """Await a bumble operation without losing a cancellation of the calling task.

    bumble waits for every HCI command result and GATT response with
    :func:`asyncio.wait_for`. On Python 3.11, ``wait_for`` drops the caller's cancel when
    the awaited result arrives in the same loop iteration: it returns the result, and the
    cancelled task carries on as if nothing happened (CPython gh-86296; 3.12 rewrote
    ``wait_for``). A gateway stopping its sessions then waits for ever for a task that
    never learns it was cancelled. The task's :meth:`~asyncio.Task.cancelling` count
    still records the request, so a count that grew across a normal return means the
    cancel was swallowed: it is raised here, as a real Bluetooth backend would.

    Raises:
        asyncio.CancelledError: the caller was cancelled while the operation ran.
    """
    requested = _cancel_requests()
    try:
        result = await operation
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if _cancel_requests() > requested:
            raise asyncio.CancelledError from exc
        raise
    if _cancel_requests() > requested:
        raise asyncio.CancelledError
    return result


class _SpecController(Controller):
    """bumble's virtual controller, cancelling a pending connection as the Core spec says.

    bumble's controller acknowledges LE Create Connection Cancel but keeps the connection
    pending, so a connect to a device that never advertises blocks every later connect.
    A real controller (Vol 4, Part E, 7.8.13) drops the pending connection and reports an
    LE Connection Complete event with status Unknown Connection Identifier.
    """

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failure = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete event that the caller sends for this return value.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failure)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


def _new_device(link: LocalLink, name: str, address: str) -> Device:
    controller = _SpecController(name, link=link, public_address=address)
    return Device(
        name=name,
        address=hci.Address(address),
        host=Host(controller, AsyncPipeSink(controller)),
    )


class BumbleCentral:
    """The gateway's virtual Bluetooth adapter: connects and scans on behalf of bleak.

    One bumble device serves every ``BleakClient`` and ``BleakScanner`` bound to it, as
    one adapter serves every connection of a real gateway. Connects are serialised (a
    controller has one pending LE connection at a time) and scanning is shared.
    """

    def __init__(self, device: Device) -> None:
        self.device = device
        self._connect_lock = asyncio.Lock()
        self._scan_users = 0
        self._scan_lock = asyncio.Lock()

    async def connect(self, address: str, timeout_seconds: float) -> Connection:
        """Connect to the peripheral at ``address``.

        Raises:
            bumble.core.TimeoutError: it did not advertise within ``timeout_seconds``.
        """
        async with self._connect_lock:
            requested = _cancel_requests()
            try:
                connection = await self.device.connect(
                    hci.Address(address), timeout=timeout_seconds
                )
            except asyncio.CancelledError:
                # The caller gave up (its own deadline): free the controller for the next.
                await asyncio.shield(self._cancel_pending_connect())
                raise
            if _cancel_requests() > requested:
                # Connected just as the caller was cancelled, and bumble swallowed the
                # cancel (see honour_cancellation): nobody will use this link, drop it.
                with contextlib.suppress(core.BaseBumbleError):
                    await asyncio.shield(connection.disconnect())
                raise asyncio.CancelledError
            return connection

    async def _cancel_pending_connect(self) -> None:
        try:
            await self.device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
        except hci.HCI_Error:
            logger.debug("no pending connection to cancel")

    async def start_scanning(self, listener: AdvertisementListener) -> None:
        """Deliver every advertisement heard to ``listener`` until :meth:`stop_scanning`."""
        async with self._scan_lock:
            self.device.on(Device.EVENT_ADVERTISEMENT, listener)
            self._scan_users += 1
            try:
                if self._scan_users == 1:
                    await honour_cancellation(self.device.start_scanning(filter_duplicates=False))
            except BaseException:
                # Not started for this listener (failed or cancelled): leave no trace of it.
                await self._forget_listener(listener)
                raise

    async def stop_scanning(self, listener: AdvertisementListener) -> None:
        """Stop delivering to ``listener``; the radio stops when no one listens."""
        async with self._scan_lock:
            await self._forget_listener(listener)

    async def _forget_listener(self, listener: AdvertisementListener) -> None:
        self.device.remove_listener(Device.EVENT_ADVERTISEMENT, listener)
        self._scan_users -= 1
        if self._scan_users == 0 and self.device.is_scanning:
            await honour_cancellation(self.device.stop_scanning())


class BumbleLink:
    """A virtual radio link: the gateway's central plus the simulated peripherals on it."""

    def __init__(self) -> None:
        self._link = LocalLink()  # type: ignore[no-untyped-call]  # bumble leaves it unannotated
        self.central = BumbleCentral(_new_device(self._link, "gateway", CENTRAL_ADDRESS))
        self._peripherals: list[Device] = []
        self._started = False

    async def start(self) -> None:
        """Power the central on (idempotent)."""
        if not self._started:
            await self.central.device.power_on()
            self._started = True

    def new_peripheral(self, name: str) -> Device:
        """A new, powered-off bumble device on this link with its own static address."""
        number = len(self._peripherals) + 1
        if number > _MAX_PERIPHERALS:
            raise ValueError(f"a link holds at most {_MAX_PERIPHERALS} peripherals")
        address = f"{_PERIPHERAL_ADDRESS_PREFIX}:{number >> 8:02X}:{number & 0xFF:02X}"
        device = _new_device(self._link, name, address)
        self._peripherals.append(device)
        return device

    @property
    def client_backend(self) -> type[BumbleClientBackend]:
        """The ``backend=`` class for ``BleakClient`` that connects through this link."""
        from device_drivers.simulators.bleak_backend import BumbleClientBackend

        return BumbleClientBackend.bound_to(self.central)

    @property
    def scanner_backend(self) -> type[BumbleScannerBackend]:
        """The ``backend=`` class for ``BleakScanner`` that listens on this link."""
        from device_drivers.simulators.bleak_backend import BumbleScannerBackend

        return BumbleScannerBackend.bound_to(self.central)

    async def close(self) -> None:
        """Drop every connection and power every device off."""
        for device in [*self._peripherals, self.central.device]:
            for connection in list(device.connections.values()):
                with contextlib.suppress(core.BaseBumbleError):
                    await connection.disconnect()
            if device.is_advertising:
                await device.stop_advertising()
            await device.power_off()
        self._started = False
