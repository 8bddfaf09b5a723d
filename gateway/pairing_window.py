"""The pairing window's task: look for new devices and pair them until the window closes.

Opened by ``cmd/pair`` (through
:meth:`~gateway.runtime.GatewayRuntime.open_pairing_window`), it scans in short rounds,
identifies every candidate heard that is not paired yet and binds it to the window's
patient, and reports how the window ended (``timeout``, ``replaced`` by a new window, or
``stopped`` with the gateway). Devices heard while the window was open are paired even if
it closed during the scan; none heard after it closed are looked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Final

from gateway.errors import PairingError
from gateway.pairing import Candidate, OpenWindow, Pairing, PairingWindow

logger = logging.getLogger(__name__)

PAIRING_SCAN_SECONDS: Final = 3.0
"""One scan of the pairing window: meters advertise every 1–2 s while pairable."""
PAIRING_RETRY_PAUSE_SECONDS: Final = 1.0
"""Pause between pairing scans, so a failing adapter is not hammered."""

Discover = Callable[[OpenWindow, float], Awaitable[list[Candidate]]]
"""Candidates for the window heard within the given seconds."""
PairCandidate = Callable[[Candidate, str, str], Awaitable[Pairing]]
"""Identify a candidate and bind it to (patient id, time zone)."""


async def run_pairing_window(
    window: OpenWindow,
    *,
    windows: PairingWindow,
    clock: Callable[[], datetime],
    time_zone: str,
    paired_addresses: Callable[[], Collection[str]],
    discover: Discover,
    pair: PairCandidate,
    on_paired: Callable[[], None],
    on_closed: Callable[[str, int], None],
) -> None:
    """Pair new devices while ``window`` is the open one.

    Args:
        window: the window this task serves.
        windows: who knows which window is open now.
        clock: the current time, timezone-aware.
        time_zone: the patients' zone when the window names none.
        paired_addresses: addresses already paired (upper case), asked every round.
        discover: one round of looking for candidates.
        pair: identify and bind one candidate.
        on_paired: called after each new pairing (the runtime starts its session).
        on_closed: called once at the end with the reason and the number paired.
    """
    paired = 0
    reason = "timeout"
    zone = window.time_zone or time_zone
    try:
        while windows.current() is window:
            remaining = window.remaining_seconds(clock())
            known = set(paired_addresses())
            try:
                found = await discover(window, min(PAIRING_SCAN_SECONDS, remaining))
            except Exception as exc:
                logger.error(
                    "looking for devices to pair failed",
                    extra={"error": type(exc).__name__},
                    exc_info=exc,
                )
                found = []
            for candidate in found:
                if candidate.address.upper() in known:
                    continue
                try:
                    pairing = await pair(candidate, window.patient_id, zone)
                except PairingError as exc:
                    logger.warning(
                        "device not paired",
                        extra={"device_id": exc.device_id, "reason": exc.reason},
                    )
                    continue
                paired += 1
                known.add(pairing.address.upper())
                on_paired()
            await asyncio.sleep(min(PAIRING_RETRY_PAUSE_SECONDS, window.remaining_seconds(clock())))
    except asyncio.CancelledError:
        reason = "replaced" if windows.current() is not window else "stopped"
        raise
    finally:
        on_closed(reason, paired)
        logger.info("pairing window closed", extra={"reason": reason, "count": paired})
