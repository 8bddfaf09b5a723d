"""pyserial adapter: :class:`device_drivers.base.SerialTransport` over ``serial_for_url``.

Any pyserial URL works: a device path (``/dev/ttyUSB0``, a simulator's pseudo-terminal),
``loop://`` for tests, ``rfc2217://host:port`` for a meter behind a network serial server.
pyserial blocks, so every call runs in a worker thread (:func:`asyncio.to_thread`) and the
event loop never waits on the port. pyserial's exceptions become
:class:`~device_drivers.errors.TransportError` (``DeviceNotFound`` when the port does not
exist) with the original chained.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Final

import serial

from device_drivers.errors import DeviceNotFound, DeviceTimeout, TransportError

DEFAULT_BAUDRATE: Final = 9600
"""Both the OneTouch Ultra 2 cable and Contour's serial cable run at 9600 baud."""
WRITE_TIMEOUT_SECONDS: Final = 5.0
"""A write to a USB-serial adapter completes in milliseconds; one that has not after 5 s
is stuck (adapter unplugged mid-write) and must not hold a worker thread forever."""

_MISSING_PORT_ERRNOS: Final = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})

PortFactory = Callable[..., serial.SerialBase]


class SerialPortTransport:
    """A serial port opened with :func:`serial.serial_for_url`.

    Args:
        url: device path or pyserial URL.
        baudrate: line speed.
        bytesize: data bits (5–8).
        parity: ``"N"``, ``"E"``, ``"O"``, ``"M"`` or ``"S"``.
        stopbits: 1, 1.5 or 2.
        open_port: what opens the port; :func:`serial.serial_for_url` unless a test
            injects another factory with the same signature.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        bytesize: int = serial.EIGHTBITS,
        parity: str = serial.PARITY_NONE,
        stopbits: float = serial.STOPBITS_ONE,
        open_port: PortFactory = serial.serial_for_url,
    ) -> None:
        self._url = url
        self._settings = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
        }
        self._open_port = open_port
        self._port: serial.SerialBase | None = None

    @property
    def url(self) -> str:
        """The port this transport opens."""
        return self._url

    @property
    def is_open(self) -> bool:
        """Whether the port is open."""
        return self._port is not None

    async def open(self) -> None:
        """Open the port (a no-op when open).

        Raises:
            DeviceNotFound: the port does not exist (adapter unplugged, wrong path).
            TransportError: it exists but cannot be opened or configured (busy, no
                permission, bad URL or settings).
        """
        if self._port is not None:
            return
        self._port = await asyncio.to_thread(self._open_blocking)

    def _open_blocking(self) -> serial.SerialBase:
        try:
            return self._open_port(
                self._url, timeout=0, write_timeout=WRITE_TIMEOUT_SECONDS, **self._settings
            )
        except serial.SerialException as exc:
            if exc.errno in _MISSING_PORT_ERRNOS:
                raise DeviceNotFound(
                    f"serial port {self._url} does not exist: check the cable and the path"
                ) from exc
            raise TransportError(
                f"cannot open serial port {self._url}: {exc} (is another program using it?)"
            ) from exc
        except (ValueError, OSError) as exc:
            raise TransportError(f"cannot open serial port {self._url}: {exc}") from exc

    async def close(self) -> None:
        """Close the port; safe when closed."""
        port, self._port = self._port, None
        if port is not None:
            await asyncio.to_thread(port.close)

    def _require_port(self) -> serial.SerialBase:
        if self._port is None:
            raise TransportError(f"serial port {self._url} is not open")
        return self._port

    async def write(self, data: bytes) -> None:
        """Write all of ``data``.

        Raises:
            TransportError: the port is closed or the write failed or timed out.
        """
        port = self._require_port()
        try:
            await asyncio.to_thread(port.write, data)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"write to {self._url} failed: {exc}") from exc

    async def read(self, size: int, timeout_seconds: float) -> bytes:
        """Read up to ``size`` bytes: returns as soon as some have arrived, or empty when
        none came within ``timeout_seconds``.

        Raises:
            TransportError: the port is closed or failed (device unplugged).
        """
        port = self._require_port()
        try:
            return await asyncio.to_thread(self._read_blocking, port, size, timeout_seconds)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"read from {self._url} failed: {exc}") from exc

    @staticmethod
    def _read_blocking(port: serial.SerialBase, size: int, timeout_seconds: float) -> bytes:
        port.timeout = timeout_seconds
        first = bytes(port.read(1))
        if not first or size <= 1:
            return first
        port.timeout = 0
        # Every concrete port (serial.Serial, loop://, socket://, ptys) has in_waiting;
        # the SerialBase stubs do not declare it.
        waiting: int = getattr(port, "in_waiting", 0)
        return first + bytes(port.read(min(waiting, size - 1)))

    async def read_until(self, terminator: bytes, timeout_seconds: float) -> bytes:
        """Read through ``terminator`` (included).

        Raises:
            DeviceTimeout: the terminator did not arrive within ``timeout_seconds``.
            TransportError: the port is closed or failed.
        """
        port = self._require_port()
        try:
            data = await asyncio.to_thread(
                self._read_until_blocking, port, terminator, timeout_seconds
            )
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"read from {self._url} failed: {exc}") from exc
        if not data.endswith(terminator):
            raise DeviceTimeout(
                f"{self._url}: no {terminator!r} within {timeout_seconds:g} s "
                f"({len(data)} bytes received)"
            )
        return data

    @staticmethod
    def _read_until_blocking(
        port: serial.SerialBase, terminator: bytes, timeout_seconds: float
    ) -> bytes:
        port.timeout = timeout_seconds
        return bytes(port.read_until(terminator))
