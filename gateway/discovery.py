"""Finding devices to pair and reading who they are: one path for the runtime and the CLI.

Both the running gateway (its pairing window, ``cmd/pair``) and ``vitalgate gateway
pair`` find candidates the same way — BLE advertisements matched to the known device
models, plus serial ports whose USB adapter is a known meter cable — and pair one the
same way: connect, read the identity the device reports, disconnect, then bind that
identity in the :class:`~gateway.pairing.PairingStore`. Only where the advertisements
come from differs (the runtime's shared scanner, or a scan of the CLI's own), so that is
passed in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from device_drivers.base import DeviceInfo
from device_drivers.profiles import DeviceProfile
from gateway.errors import PairingError
from gateway.links import BleBackends, open_link, serial_candidates
from gateway.pairing import PAIRING_DEADLINE_SECONDS, Candidate, match_advertisements, read_identity

if TYPE_CHECKING:
    from device_drivers.transports.ble import Advertisement

Listen = Callable[[], Awaitable[Sequence["Advertisement"]]]
"""What the radio hears during one scan."""


async def find_candidates(
    profiles: Sequence[DeviceProfile], listen: Listen, *, serial: bool = True
) -> list[Candidate]:
    """Devices that look like one of ``profiles``: BLE ones heard by ``listen`` (strongest
    first), then serial ports with a known meter cable.

    Args:
        profiles: the device models looked for.
        listen: one scan; called only when a BLE model is looked for.
        serial: also look at the serial ports (not for simulated devices).
    """
    candidates: list[Candidate] = []
    if any(profile.is_ble for profile in profiles):
        candidates += match_advertisements(await listen(), profiles)
    if serial and any(not profile.is_ble for profile in profiles):
        candidates += await asyncio.to_thread(serial_candidates, profiles)
    return candidates


async def identify(candidate: Candidate, *, ble: BleBackends | None) -> DeviceInfo:
    """Connect to a candidate and read the identity it reports, within
    :data:`~gateway.pairing.PAIRING_DEADLINE_SECONDS`.

    Args:
        candidate: the device to ask.
        ble: simulator backends, or ``None`` for the OS Bluetooth stack.

    Raises:
        PairingError: the device did not answer in time or gave no usable identity.
    """
    link = open_link(
        candidate.profile, candidate.address, ble=ble, advertisement=candidate.advertisement
    )
    try:
        async with asyncio.timeout(PAIRING_DEADLINE_SECONDS):
            return await read_identity(link.driver)
    except TimeoutError:
        raise PairingError(
            f"the device at {candidate.address} did not answer within "
            f"{PAIRING_DEADLINE_SECONDS:g} s"
        ) from None
