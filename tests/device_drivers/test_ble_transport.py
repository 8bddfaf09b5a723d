"""The BLE transport: retry classification, error translation, the connect deadline.

Connect behaviour runs against a real bumble peripheral on the virtual link, reached
through bleak's public ``BleakClient`` with the bumble backend; only the clock and the
sleep between attempts are injected, so the deadline arithmetic is exact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from bleak import BleakClient
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)

from device_drivers.errors import DeviceNotFound, DeviceTimeout, ProtocolError, TransportError
from device_drivers.gatt import uuids
from device_drivers.profiles import find_profile
from device_drivers.simulators.ble_heart_rate_strap import HeartRateStrapSimulator
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.transports.ble import (
    DEVICE_NOT_FOUND_BACKOFF_SECONDS,
    IN_PROGRESS_BACKOFF_SECONDS,
    OUT_OF_SLOTS_BACKOFF_SECONDS,
    TIMEOUT_BACKOFF_SECONDS,
    TRANSIENT_BACKOFF_SECONDS,
    UNKNOWN_BLEAK_ERROR_BACKOFF_SECONDS,
    BleakTransport,
    CharacteristicNotFound,
    GattError,
    backoff_for,
    translate_error,
)
from tests.fakes import ManualMonotonic

ABSENT_ADDRESS = "C0:00:00:00:FF:FF"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (BleakDeviceNotFoundError("AA:BB", "not found"), DEVICE_NOT_FOUND_BACKOFF_SECONDS),
        (TimeoutError(), TIMEOUT_BACKOFF_SECONDS),
        (BleakError("le-connection-abort-by-local"), TRANSIENT_BACKOFF_SECONDS),
        (BleakError("Software caused connection abort"), TRANSIENT_BACKOFF_SECONDS),
        (BleakError("No backend with an available connection slot"), OUT_OF_SLOTS_BACKOFF_SECONDS),
        (BleakDBusError("org.bluez.Error.InProgress", []), IN_PROGRESS_BACKOFF_SECONDS),
        (
            BleakDBusError("org.freedesktop.DBus.Error.UnknownObject", []),
            DEVICE_NOT_FOUND_BACKOFF_SECONDS,
        ),
        (BleakDBusError("org.bluez.Error.Failed", ["weird"]), UNKNOWN_BLEAK_ERROR_BACKOFF_SECONDS),
        (BleakError("something odd"), UNKNOWN_BLEAK_ERROR_BACKOFF_SECONDS),
        (BleakGATTProtocolError(0x0E), TRANSIENT_BACKOFF_SECONDS),
        (BrokenPipeError(), TRANSIENT_BACKOFF_SECONDS),
        (EOFError(), TRANSIENT_BACKOFF_SECONDS),
        # Permanent: retrying cannot help and would hide the problem from the operator.
        (BleakGATTProtocolError(0x05), None),
        (BleakGATTProtocolError(0x0F), None),
        (
            BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF),
            None,
        ),
        (BleakDBusError("org.bluez.Error.NotReady", []), None),
        (BleakCharacteristicNotFoundError("2a18"), None),
        (FileNotFoundError(2, "No such file or directory"), None),
        (ValueError("a bug, not the radio"), None),
    ],
    ids=repr,
)
def test_backoff_for(exc: BaseException, expected: float | None) -> None:
    assert backoff_for(exc) == expected


@pytest.mark.parametrize(
    ("exc", "error_type", "words"),
    [
        (BleakDeviceNotFoundError("AA:BB"), DeviceNotFound, "not advertising"),
        (TimeoutError(), DeviceTimeout, "no answer in time"),
        (BleakGATTProtocolError(0x05), GattError, "pairing"),
        (BleakGATTProtocolError(0x80), GattError, "0x80"),
        (
            BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF),
            TransportError,
            "powered_off",
        ),
        (FileNotFoundError(2, "No such file"), TransportError, "Bluetooth is not available"),
        (BleakCharacteristicNotFoundError("2a18"), CharacteristicNotFound, "not the model"),
        (BleakError("No backend with an available connection slot"), TransportError, "slot"),
        (BleakError("le-connection-abort-by-local"), TransportError, "radio link failed"),
    ],
    ids=repr,
)
def test_translate_error_gives_a_typed_error_with_advice(
    exc: BaseException, error_type: type[Exception], words: str
) -> None:
    error = translate_error(exc, address="AA:BB", operation="connect")
    assert type(error) is error_type
    assert "AA:BB: connect" in str(error)
    assert words in str(error)


def test_gatt_error_carries_the_att_code() -> None:
    error = translate_error(
        BleakGATTProtocolError(0x05), address="AA:BB", operation="write", uuid="2A52"
    )
    assert isinstance(error, GattError)
    assert (error.att_error, error.operation, error.uuid) == (0x05, "write", "2A52")
    assert isinstance(error, ProtocolError)


@pytest.fixture
async def link() -> AsyncIterator[BumbleLink]:
    radio = BumbleLink()
    await radio.start()
    yield radio
    await radio.close()


@pytest.fixture
async def strap(link: BumbleLink) -> AsyncIterator[HeartRateStrapSimulator]:
    # bumble's controllers need the running loop, hence an async fixture.
    simulator = HeartRateStrapSimulator(link, find_profile("polar_h10"))
    yield simulator
    await simulator.stop()


ATTEMPT_SECONDS = 0.15


async def test_absent_device_stops_when_the_next_backoff_would_pass_the_deadline(
    link: BumbleLink,
) -> None:
    clock = ManualMonotonic()  # moves only when the transport sleeps between attempts
    transport = BleakTransport(
        ABSENT_ADDRESS,
        backend=link.client_backend,
        attempt_timeout_seconds=ATTEMPT_SECONDS,
        max_attempts=10,
        sleep=clock.sleep,
        monotonic=clock,
    )
    with pytest.raises(DeviceNotFound) as raised:
        await transport.connect(timeout_seconds=5.0)
    # 0 s: attempt, back off 2 s; 2 s: attempt, back off 2 s; 4 s: attempt, 4 + 2 ≥ 5: stop.
    assert transport.connect_attempts == 3
    assert clock.sleeps == [DEVICE_NOT_FOUND_BACKOFF_SECONDS] * 2
    assert isinstance(raised.value.__cause__, BleakDeviceNotFoundError)
    assert not transport.is_connected


async def test_attempts_are_capped_even_with_time_left(link: BumbleLink) -> None:
    clock = ManualMonotonic()  # moves only when the transport sleeps between attempts
    transport = BleakTransport(
        ABSENT_ADDRESS,
        backend=link.client_backend,
        attempt_timeout_seconds=ATTEMPT_SECONDS,
        max_attempts=2,
        sleep=clock.sleep,
        monotonic=clock,
    )
    with pytest.raises(DeviceNotFound):
        await transport.connect(timeout_seconds=3600.0)
    assert transport.connect_attempts == 2


async def test_real_time_deadline_bounds_the_whole_connect(link: BumbleLink) -> None:
    transport = BleakTransport(ABSENT_ADDRESS, backend=link.client_backend)
    started = time.monotonic()
    with pytest.raises(DeviceNotFound):
        await transport.connect(timeout_seconds=0.4)
    assert time.monotonic() - started < 1.0
    assert transport.connect_attempts == 1


async def test_device_that_starts_advertising_late_is_reached_on_a_retry(
    link: BumbleLink, strap: HeartRateStrapSimulator
) -> None:
    clock = ManualMonotonic()  # moves only when the transport sleeps between attempts

    async def sleep_then_power_on(seconds: float) -> None:
        await clock.sleep(seconds)
        await strap.start()

    transport = BleakTransport(
        strap.address,
        backend=link.client_backend,
        attempt_timeout_seconds=ATTEMPT_SECONDS,
        sleep=sleep_then_power_on,
        monotonic=clock,
    )
    await transport.connect(timeout_seconds=30.0)
    assert transport.is_connected
    assert transport.connect_attempts == 2
    assert clock.sleeps == [DEVICE_NOT_FOUND_BACKOFF_SECONDS]
    await transport.disconnect()


async def test_link_drop_is_seen_and_later_operations_fail_clearly(
    link: BumbleLink, strap: HeartRateStrapSimulator
) -> None:
    await strap.start()
    transport = BleakTransport(strap.address, backend=link.client_backend)
    await transport.connect(timeout_seconds=5.0)
    assert transport.has_characteristic(uuids.HEART_RATE_MEASUREMENT)
    assert not transport.has_characteristic(uuids.GLUCOSE_MEASUREMENT)

    await strap.drop_link()
    await transport.wait_disconnected()

    assert not transport.is_connected
    with pytest.raises(TransportError, match="not connected"):
        await transport.read(uuids.MANUFACTURER_NAME_STRING)
    await transport.connect(timeout_seconds=5.0)
    assert await transport.read(uuids.MANUFACTURER_NAME_STRING) == b"Polar"
    await transport.disconnect()
    await transport.disconnect()  # safe when already disconnected


async def test_att_error_from_the_device_becomes_a_gatt_error(
    link: BumbleLink, strap: HeartRateStrapSimulator
) -> None:
    await strap.start()  # Polar's profile: clock not settable, Current Time refuses writes
    transport = BleakTransport(strap.address, backend=link.client_backend)
    await transport.connect(timeout_seconds=5.0)
    with pytest.raises(GattError) as raised:
        await transport.write(uuids.CURRENT_TIME, bytes(10))
    assert raised.value.att_error == 0x03  # Write Not Permitted
    assert raised.value.operation == "write"
    with pytest.raises(CharacteristicNotFound):
        await transport.read(uuids.GLUCOSE_FEATURE)
    await transport.disconnect()


async def test_pairing_before_connecting_gives_an_encrypted_link(
    link: BumbleLink, strap: HeartRateStrapSimulator
) -> None:
    await strap.start()
    transport = BleakTransport(strap.address, backend=link.client_backend, pair=True)
    await transport.connect(timeout_seconds=5.0)
    assert strap.connections[0].is_encrypted
    await transport.disconnect()

    keystore = link.central.device.keystore
    assert keystore is not None

    async def bonded() -> list[str]:
        return [name for name, _keys in await keystore.get_all() if strap.address in name]

    assert await bonded()
    client = BleakClient(strap.address, backend=link.client_backend)
    await client.connect()
    await client.unpair()
    assert await bonded() == []
    assert not client.is_connected
