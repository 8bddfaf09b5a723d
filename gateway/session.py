"""Device sessions: one supervised asyncio task per paired device.

A session drives its device through the driver lifecycle at every *contact*::

    connect ─► read_device_info (must be the paired device) ─► read_clock ─► fetch_records
      (from the cursor in the outbox) ─► readings + cursor committed in ONE outbox call ─►
      set the device clock (only where allowed and safe) ─► subscribe (live measurements,
      re-subscribed after every reconnect) ─► hold the link until it drops (a glucose
      meter's records after the cursor polled meanwhile, :func:`polls_held_link`) ─►
      disconnect

Every step has a deadline; a device that hangs, garbles or vanishes costs only its own
session. What a failure means is decided in one pure function, :func:`classify_failure`:
a device out of range or a cable not plugged in is the normal state of a home device and
costs nothing; real failures back off exponentially and, after
``breaker.failure_threshold`` in a row, open a per-device :class:`CircuitBreaker` for a
cool-down (one ``device_error`` event, not one per attempt); a full outbox pauses
downloads so the records stay on the meter; a BLE device that reports another identity
than the paired one is a security event and ends its session. A live measurement that
cannot be stored is announced (``readings_not_stored``), counted in the device's status
and holds the cursor, so a record the device keeps is downloaded at the next contact
(docs/gateway.md, "Live measurements that cannot be stored").

When a contact is due is a :class:`ContactTrigger`'s business: serial meters are
downloaded on a schedule and as soon as their cable's port appears
(:class:`SerialPortTrigger`); BLE devices when they are heard advertising
(:class:`AdvertisementTrigger`).

Readings carry the device's raw ``device_time``, a ``measured_at`` corrected with the
clock observed at this contact (:func:`gateway.clock.resolve_measured_at`) and the union of
the device's and the clock's flags. Control-solution tests and failed measurements become
events without values; logs carry device ids and counts, never values or patient ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from device_drivers.base import Driver, RecordCursor
from device_drivers.errors import DeviceNotFound, DeviceTimeout, DriverError
from device_drivers.measurement import Disposition, Measurement
from device_drivers.profiles import DeviceProfile
from gateway.clock import (
    FLAG_CLOCK_CORRECTED,
    MAX_UNCORRECTED_OFFSET_SECONDS,
    ClockObservation,
    needs_correction,
    resolve_measured_at,
)
from gateway.config import BreakerSettings, DeviceSettings
from gateway.errors import IdentityMismatch, OutboxError, OutboxFull
from gateway.outbox import Outbox
from gateway.pairing import Pairing, PairingStore
from readings.codec import DeviceStatus, EventMessage, EventType
from readings.errors import InvalidReading
from readings.model import Kind, Reading, new_reading

if TYPE_CHECKING:
    from device_drivers.transports.ble import Advertisement

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""
Monotonic = Callable[[], float]
EventSink = Callable[[EventMessage], None]
"""Takes an event for ``gw/{id}/events``; must not block (the publisher queues it)."""

FLAG_BATTERY_LOW: Final = "battery_low"
"""The measurement flag drivers set from a device's low-battery status bit."""
DISCONNECT_TIMEOUT_SECONDS: Final = 10.0
"""A disconnect that takes longer is abandoned: the link is gone either way, and a stuck
adapter call must not hold the session."""
LINK_DROP_GRACE_SECONDS: Final = 1.0
"""After a poll over a held link failed, how long to wait for the link's own report that it
dropped: the driver may notice a lost link (a failed write) before the transport's
disconnect callback has run. Dropped, the failure is the meter switching its radio off."""
CLOCK_ROLLBACK_TOLERANCE: Final = timedelta(minutes=5)
"""A device clock this far behind the newest record already downloaded went back (a reset,
or set by hand): its time-keyed cursor is no longer meaningful."""

T = TypeVar("T")


class SessionState(StrEnum):
    """What a session is doing; reported per device in the gateway's status."""

    STARTING = "starting"
    WAITING = "waiting"
    """Between contacts: the next download is scheduled, or the device is awaited."""
    CONNECTING = "connecting"
    DOWNLOADING = "downloading"
    CONNECTED = "connected"
    """Connected and receiving live measurements."""
    ABSENT = "absent"
    """Not in range (BLE) or its cable is not plugged in (serial)."""
    BACKOFF = "backoff"
    CIRCUIT_OPEN = "circuit_open"
    OUTBOX_FULL = "outbox_full"
    """Downloads paused: the outbox refused the records, which stay on the device."""
    OTHER_DEVICE = "other_device"
    """Another device answered on the paired serial port (a shared cable)."""
    IDENTITY_MISMATCH = "identity_mismatch"
    """Stopped: the device at the paired address reported another identity."""
    STOPPED = "stopped"


# -- circuit breaker and failure classification (pure) --------------------------------


class BreakerState(StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    """Contacts are attempted."""
    OPEN = "open"
    """Too many failures in a row: no contact until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """The cool-down passed: one trial contact decides between closed and open again."""


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """A per-device circuit breaker; every transition returns a new breaker.

    Attributes:
        failure_threshold: consecutive failures that open the circuit.
        open_seconds: how long it stays open before a trial contact.
        consecutive_failures: failures since the last success.
        opened_at: monotonic time it (last) opened, or ``None`` when closed.
    """

    failure_threshold: int
    open_seconds: float
    consecutive_failures: int = 0
    opened_at: float | None = None

    def state(self, now: float) -> BreakerState:
        """The state at monotonic time ``now``."""
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at >= self.open_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def seconds_until_trial(self, now: float) -> float:
        """How long until a contact may be attempted (0 when it may be now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.open_seconds - now)

    def after_success(self) -> CircuitBreaker:
        """A contact succeeded: closed, failures forgotten."""
        return replace(self, consecutive_failures=0, opened_at=None)

    def after_failure(self, now: float) -> CircuitBreaker:
        """A contact failed at ``now``: a failed trial re-opens; the threshold opens."""
        failures = self.consecutive_failures + 1
        if self.state(now) is BreakerState.HALF_OPEN or failures >= self.failure_threshold:
            return replace(self, consecutive_failures=failures, opened_at=now)
        return replace(self, consecutive_failures=failures)


class FailureKind(StrEnum):
    """What an exception out of a contact means for the session."""

    ABSENT = "absent"
    """The device is not there (out of range, cable unplugged): wait for it; no failure."""
    FAILURE = "failure"
    """The device or link misbehaved: back off; counts towards the circuit breaker."""
    OUTBOX_FULL = "outbox_full"
    """The gateway cannot keep more readings: pause downloads; not the device's fault."""
    OTHER_DEVICE = "other_device"
    """Another device answered on a shared serial port: not ours, try again later."""
    REFUSED = "refused"
    """The device is not the paired one (BLE): a security event; the session ends."""


def classify_failure(exc: BaseException, *, shared_port: bool) -> FailureKind:
    """What ``exc``, raised by a contact, means (see :class:`FailureKind`).

    Args:
        exc: the exception.
        shared_port: whether the device's address can reach other devices too (a serial
            port another meter may be plugged into), so a foreign identity is no attack.
    """
    match exc:
        case IdentityMismatch():
            return FailureKind.OTHER_DEVICE if shared_port else FailureKind.REFUSED
        case OutboxFull():
            return FailureKind.OUTBOX_FULL
        case DeviceNotFound():
            return FailureKind.ABSENT
        case _:
            return FailureKind.FAILURE


def retry_delay_seconds(consecutive_failures: int, *, initial: float, maximum: float) -> float:
    """Backoff before the next contact after ``consecutive_failures`` failures in a row.

    ``initial`` after the first failure, doubling, never more than ``maximum``.
    """
    if consecutive_failures < 1:
        return 0.0
    return min(maximum, initial * 2.0 ** min(consecutive_failures - 1, 32))


# -- measurements to readings (pure) ---------------------------------------------------


def measurement_to_reading(
    measurement: Measurement,
    *,
    pairing: Pairing,
    gateway_id: str,
    observation: ClockObservation | None,
    received_at: datetime,
    max_clock_offset_seconds: float = MAX_UNCORRECTED_OFFSET_SECONDS,
) -> Reading:
    """The contract's reading of a patient measurement from a paired device.

    ``device_time`` stays raw; ``measured_at`` is corrected with ``observation`` in the
    patient's time zone; flags are the device's plus the clock's.

    Raises:
        InvalidReading: the measurement has no values, or breaks the contract.
    """
    if measurement.values is None:
        raise InvalidReading("values", "a patient reading needs values")
    resolved = resolve_measured_at(
        device_time=measurement.device_time,
        received_at=received_at,
        time_zone=pairing.zone,
        observation=observation,
        max_offset_seconds=max_clock_offset_seconds,
    )
    return new_reading(
        values=measurement.values,
        source_unit=measurement.source_unit,
        measured_at=resolved.measured_at,
        received_at=received_at,
        device_id=pairing.device_id,
        patient_id=pairing.patient_id,
        gateway_id=gateway_id,
        device_time=measurement.device_time,
        context=measurement.context,
        flags=measurement.flags | resolved.flags,
        seq=measurement.seq,
    )


def cursor_after(cursor: RecordCursor | None, measurement: Measurement) -> RecordCursor | None:
    """The cursor once a live ``measurement`` is stored, or ``None`` if it does not move it."""
    if measurement.seq is not None:
        if (
            cursor is not None
            and cursor.last_seq is not None
            and measurement.seq <= cursor.last_seq
        ):
            return None
        return RecordCursor(last_seq=measurement.seq, last_device_time=measurement.device_time)
    if measurement.device_time is not None and (cursor is None or cursor.last_seq is None):
        last = cursor.last_device_time if cursor is not None else None
        if last is None or measurement.device_time > last:
            return RecordCursor(last_device_time=measurement.device_time)
    return None


def kept_on_device(profile: DeviceProfile, measurement: Measurement) -> bool:
    """Whether the device still holds ``measurement`` for a later download.

    True for a record of a device whose memory the gateway downloads (a glucose meter or
    CGM with RACP, a serial meter) that carries a record key (sequence number or device
    time): a download from the cursor as it stood before fetches it again. A continuous
    stream sample, or a device without a record memory, is gone once it is not stored.
    """
    has_memory = profile.quirks.racp_operators is not None or not profile.is_ble
    return has_memory and (measurement.seq is not None or measurement.device_time is not None)


def polls_held_link(profile: DeviceProfile) -> bool:
    """Whether the session asks the device for new records while it holds the link.

    True for a BLE glucose meter with RACP. The Glucose Profile sends stored records only
    in answer to a RACP request, and a meter that stays connected (many drop the link a few
    seconds after a sync, some keep it for minutes or for good) would otherwise have what
    it measures meanwhile downloaded only once it disconnects. A CGM notifies every record
    as it is made (CGM Service), and devices without a record memory have nothing to ask
    for: their links are just held.
    """
    return (
        profile.is_ble
        and profile.quirks.racp_operators is not None
        and Kind.CGM_GLUCOSE not in profile.kinds
    )


class NotStoredReason(StrEnum):
    """Why a live measurement could not be stored (the ``reason`` of its event)."""

    OUTBOX_FULL = "outbox_full"
    """The outbox reached its ceiling (or the disk is full)."""
    OUTBOX_ERROR = "outbox_error"
    """The outbox database failed (I/O error, locked)."""
    UNEXPECTED = "unexpected"
    """Anything else: a bug, logged with its traceback."""


def not_stored_reason(exc: BaseException) -> NotStoredReason:
    """The reason a store that raised ``exc`` reports."""
    if isinstance(exc, OutboxFull):
        return NotStoredReason.OUTBOX_FULL
    if isinstance(exc, OutboxError):
        return NotStoredReason.OUTBOX_ERROR
    return NotStoredReason.UNEXPECTED


def cursor_for_download(
    cursor: RecordCursor | None, observation: ClockObservation | None
) -> RecordCursor | None:
    """The cursor to download from, given the device clock read just now.

    A cursor keyed by device time alone is meaningless once the device clock went back
    below it (battery change, reset, set by hand): records made since would sort before
    it and be skipped for ever. Then everything is downloaded again; ids repeat, so the
    copies are harmless. Sequence-keyed cursors are left to the driver, which sees a
    reset in the sequence numbers.
    """
    if cursor is None or observation is None or cursor.last_seq is not None:
        return cursor
    last = cursor.last_device_time
    if last is not None and observation.device_now < last - CLOCK_ROLLBACK_TOLERANCE:
        return None
    return cursor


# -- when to make contact ----------------------------------------------------------------


class ContactTrigger(Protocol):
    """Decides when a session contacts its device."""

    async def wait(self) -> None:
        """Return when a contact is due."""

    def contacted(self, *, downloaded: bool) -> None:
        """A contact ended: ``downloaded`` if it completed, else the next is due soon."""

    def request(self) -> None:
        """Make a contact due now (``cmd/sync_time``)."""


def is_local_port(address: str) -> bool:
    """Whether a serial address is a device path (checkable) rather than a pyserial URL."""
    return "://" not in address


class SerialPortTrigger:
    """A serial meter: download when its port appears, then every ``poll_seconds``.

    A meter seated in its cable (the cable's USB adapter appearing as a port) is
    downloaded within ``check_seconds``. URLs (``rfc2217://``, ``loop://``) cannot be
    checked and count as always present.

    Args:
        address: port path or pyserial URL.
        poll_seconds: period of downloads while present.
        check_seconds: period of the presence check.
        exists: the presence check (``os.path.exists`` unless a test injects another).
        monotonic: clock for the schedule.
    """

    def __init__(
        self,
        address: str,
        *,
        poll_seconds: float,
        check_seconds: float,
        exists: Callable[[str], bool] = os.path.exists,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._address = address
        self._poll_seconds = poll_seconds
        self._check_seconds = check_seconds
        self._exists = exists
        self._monotonic = monotonic
        self._due = True
        self._last_download: float | None = None
        self._was_present = False
        self._requested = asyncio.Event()

    def present(self) -> bool:
        """Whether the port is there now."""
        return not is_local_port(self._address) or self._exists(self._address)

    async def wait(self) -> None:
        """Return when the port is present and a download is due."""
        while True:
            present = self.present()
            if present and not self._was_present:
                self._due = True
            self._was_present = present
            if self._requested.is_set():
                self._requested.clear()
                self._due = True
            scheduled = (
                self._last_download is not None
                and self._monotonic() - self._last_download >= self._poll_seconds
            )
            if present and (self._due or scheduled):
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_seconds):
                    await self._requested.wait()

    def contacted(self, *, downloaded: bool) -> None:
        """After a download the next is one poll away; after a failure, due again."""
        self._due = not downloaded
        if downloaded:
            self._last_download = self._monotonic()

    def request(self) -> None:
        """Download as soon as the port is present."""
        self._requested.set()


Scan = Callable[[float], Awaitable[Sequence["Advertisement"]]]
"""Listens for the given seconds and returns what it heard (``transports.ble.scan``)."""


class AdvertisementMonitor:
    """One shared scanner for all BLE sessions: who advertised, and when.

    Connecting only to devices just heard keeps absent devices from occupying the
    adapter (a controller makes one LE connection attempt at a time), so a meter in a
    drawer never delays the cuff on the table.

    Args:
        scan: listens for a window and returns the advertisements heard.
        window_seconds: length of one scan window.
        monotonic: clock for "last heard".
    """

    def __init__(
        self, scan: Scan, *, window_seconds: float, monotonic: Monotonic = time.monotonic
    ) -> None:
        self._scan = scan
        self._window_seconds = window_seconds
        self._monotonic = monotonic
        self._heard: dict[str, tuple[float, Advertisement]] = {}
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        """Scan window after window until cancelled; a failing adapter is retried."""
        while True:
            try:
                heard = await self._scan(self._window_seconds)
            except Exception as exc:
                # Every BLE session waits on this scanner: it must outlive any adapter error.
                logger.warning(
                    "BLE scan failed",
                    extra={"error": type(exc).__name__, "reason": str(exc)},
                    exc_info=not isinstance(exc, DriverError),
                )
                await asyncio.sleep(self._window_seconds)
                continue
            now = self._monotonic()
            async with self._changed:
                for advertisement in heard:
                    self._heard[advertisement.address.upper()] = (now, advertisement)
                self._changed.notify_all()

    def heard_since(self, since: float) -> list[Advertisement]:
        """Every device heard after monotonic time ``since``, one advertisement each."""
        return [advertisement for at, advertisement in self._heard.values() if at > since]

    def advertisement(self, address: str) -> Advertisement | None:
        """The last advertisement heard from ``address``."""
        entry = self._heard.get(address.upper())
        return entry[1] if entry is not None else None

    def heard_at(self, address: str) -> float | None:
        """When ``address`` was last heard (monotonic), if ever."""
        entry = self._heard.get(address.upper())
        return entry[0] if entry is not None else None

    async def wait_heard(self, address: str, *, since: float) -> None:
        """Return once ``address`` is heard after monotonic time ``since``."""
        async with self._changed:
            await self._changed.wait_for(lambda: (self.heard_at(address) or float("-inf")) > since)


class AdvertisementTrigger:
    """A BLE device: contact when it is heard advertising, at most every ``min_interval``.

    Args:
        monitor: the shared scanner.
        address: the device's address.
        min_interval_seconds: least time between contacts (a meter keeps advertising
            for a while after a download).
        monotonic: same clock as the monitor's.
    """

    def __init__(
        self,
        monitor: AdvertisementMonitor,
        address: str,
        *,
        min_interval_seconds: float,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._monitor = monitor
        self._address = address
        self._min_interval_seconds = min_interval_seconds
        self._monotonic = monotonic
        self._last_contact = float("-inf")
        self._requested = asyncio.Event()

    async def wait(self) -> None:
        """Return when the device was heard since the last contact (or one was requested)
        and the minimum interval has passed."""
        pause = self._last_contact + self._min_interval_seconds - self._monotonic()
        if pause > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._requested.wait()
        heard = asyncio.ensure_future(
            self._monitor.wait_heard(self._address, since=self._last_contact)
        )
        requested = asyncio.ensure_future(self._requested.wait())
        try:
            await asyncio.wait((heard, requested), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (heard, requested):
                task.cancel()
            await asyncio.gather(heard, requested, return_exceptions=True)
        self._requested.clear()

    def contacted(self, *, downloaded: bool) -> None:
        """Wait for the next advertisement after this contact."""
        self._last_contact = self._monotonic()

    def request(self) -> None:
        """Contact at the next chance, heard or not."""
        self._requested.set()


# -- the session ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLink:
    """A fresh connection to a device for one contact.

    Attributes:
        driver: the device's driver on a new transport.
        wait_disconnected: returns when the link drops (BLE); ``None`` for links without
            live measurements (serial), which are closed right after the download.
        battery_percent: reads the battery level (BLE Battery Level), when the device has one.
    """

    driver: Driver
    wait_disconnected: Callable[[], Awaitable[None]] | None = None
    battery_percent: Callable[[], Awaitable[int | None]] | None = None


LinkFactory = Callable[[], DeviceLink]


@dataclass(slots=True)
class SessionCounters:
    """What a session did since it started (diagnostics and tests)."""

    contacts: int = 0
    failures: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    dropped_unpaired: int = 0
    invalid_measurements: int = 0
    live_measurements: int = 0
    readings_not_stored: int = 0
    """Live measurements that could not be stored (also in the status and an event each)."""
    readings_lost: int = 0
    """Of those, the ones the device keeps no copy of."""


class DeviceSession:
    """Supervises one paired device (see the module docstring). Run it as a task.

    Args:
        pairing: the device's pairing (identity, patient, address, time zone).
        profile: its device model.
        link_factory: makes a new driver/transport for each contact.
        trigger: when contacts are due.
        outbox: where readings and the device cursor are committed.
        pairings: consulted before storing, so readings of a device unpaired meanwhile
            are dropped.
        gateway_id: this gateway.
        events: receives the session's events.
        devices: deadlines and schedules.
        breaker: circuit breaker and backoff settings.
        set_clocks: the gateway may set device clocks (still only where the profile allows).
        max_clock_offset_seconds: device clock offsets up to this are left uncorrected.
        clock: current time, timezone-aware.
        monotonic: clock for backoff and the breaker.
        port_lock: held during a contact; shared by sessions on one serial port.
        storage: runs the outbox's and pairing store's blocking calls; a pool of its own
            keeps them from queueing behind serial reads in the loop's default executor.
    """

    def __init__(
        self,
        *,
        pairing: Pairing,
        profile: DeviceProfile,
        link_factory: LinkFactory,
        trigger: ContactTrigger,
        outbox: Outbox,
        pairings: PairingStore,
        gateway_id: str,
        events: EventSink,
        devices: DeviceSettings,
        breaker: BreakerSettings,
        set_clocks: bool,
        clock: Clock,
        max_clock_offset_seconds: float = MAX_UNCORRECTED_OFFSET_SECONDS,
        monotonic: Monotonic = time.monotonic,
        port_lock: asyncio.Lock | None = None,
        storage: Executor | None = None,
    ) -> None:
        self.pairing = pairing
        self.profile = profile
        self._link_factory = link_factory
        self._trigger = trigger
        self._outbox = outbox
        self._pairings = pairings
        self._gateway_id = gateway_id
        self._events = events
        self._devices = devices
        self._backoff = breaker
        self._set_clocks = set_clocks
        self._max_clock_offset_seconds = max_clock_offset_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._port_lock = port_lock if port_lock is not None else asyncio.Lock()
        self._storage = storage
        self._breaker = CircuitBreaker(breaker.failure_threshold, breaker.open_seconds)
        self._state = SessionState.STARTING
        self._last_contact: datetime | None = None
        self._battery_percent: int | None = None
        self._live_observation: ClockObservation | None = None
        self._live_cursor: RecordCursor | None = None
        self._live_cursor_held = False
        """A live measurement the device keeps failed to store during this contact: the
        cursor stays before it, so the next download fetches it again."""
        self._stream_loss_announced = False
        self._contact_events: set[EventType] = set()
        self.counters = SessionCounters()

    @property
    def device_id(self) -> str:
        """The paired device's identity."""
        return self.pairing.device_id

    @property
    def state(self) -> SessionState:
        """What the session is doing now."""
        return self._state

    @property
    def breaker(self) -> CircuitBreaker:
        """The device's circuit breaker."""
        return self._breaker

    def status(self) -> DeviceStatus:
        """The device's entry in the gateway's status message."""
        return DeviceStatus(
            device_id=self.device_id,
            state=self._state.value,
            last_contact=self._last_contact,
            battery_percent=self._battery_percent,
            readings_not_stored=self.counters.readings_not_stored,
            readings_lost=self.counters.readings_lost,
        )

    def request_contact(self) -> None:
        """Contact the device at the next chance (``cmd/sync_time``)."""
        self._trigger.request()

    async def run(self) -> None:
        """Contact the device whenever due, until cancelled or the device is refused."""
        try:
            while True:
                pause = self._breaker.seconds_until_trial(self._monotonic())
                if pause > 0:
                    self._set_state(SessionState.CIRCUIT_OPEN)
                    await asyncio.sleep(pause)
                self._set_state(SessionState.WAITING)
                await self._trigger.wait()
                if not await self._attempt():
                    return
        finally:
            if self._state is not SessionState.IDENTITY_MISMATCH:
                self._set_state(SessionState.STOPPED)

    async def _attempt(self) -> bool:
        """One contact and its consequences; False when the session must end."""
        self.counters.contacts += 1
        self._contact_events.clear()
        try:
            async with self._port_lock:
                await self._contact()
        except Exception as exc:
            kind = classify_failure(exc, shared_port=not self.profile.is_ble)
            return await self._after_failure(kind, exc)
        self._breaker = self._breaker.after_success()
        self._trigger.contacted(downloaded=True)
        return True

    async def _after_failure(self, kind: FailureKind, exc: Exception) -> bool:
        device_id = self.device_id
        self._trigger.contacted(downloaded=False)
        if kind is FailureKind.REFUSED:
            assert isinstance(exc, IdentityMismatch)
            logger.error(
                "device reported another identity; session stopped",
                extra={"device_id": device_id, "reason": "identity_mismatch"},
            )
            self._emit(
                EventType.DEVICE_ERROR,
                reason="identity_mismatch",
                found_device_id=exc.found_device_id,
                address=exc.address,
            )
            self._set_state(SessionState.IDENTITY_MISMATCH)
            return False
        if kind is FailureKind.ABSENT:
            self._set_state(SessionState.ABSENT)
            await asyncio.sleep(self._devices.absent_retry_seconds)
            return True
        if kind is FailureKind.OTHER_DEVICE:
            logger.info("another device is on the paired port", extra={"device_id": device_id})
            self._set_state(SessionState.OTHER_DEVICE)
            await asyncio.sleep(self._devices.absent_retry_seconds)
            return True
        if kind is FailureKind.OUTBOX_FULL:
            logger.error(
                "outbox full: download paused, records stay on the device",
                extra={
                    "device_id": device_id,
                    "delay_seconds": self._devices.outbox_full_retry_seconds,
                },
            )
            self._set_state(SessionState.OUTBOX_FULL)
            await asyncio.sleep(self._devices.outbox_full_retry_seconds)
            return True
        self.counters.failures += 1
        now = self._monotonic()
        was_open = self._breaker.opened_at is not None
        self._breaker = self._breaker.after_failure(now)
        reason = type(exc).__name__
        if isinstance(exc, DriverError | TimeoutError):
            logger.warning(
                "device contact failed",
                extra={
                    "device_id": device_id,
                    "error": reason,
                    "reason": str(exc),
                    "attempt": self._breaker.consecutive_failures,
                },
            )
        else:
            logger.error(
                "device contact failed unexpectedly",
                extra={"device_id": device_id, "error": reason},
                exc_info=exc,
            )
        if self._breaker.opened_at is not None:
            if not was_open:
                self._emit(
                    EventType.DEVICE_ERROR,
                    reason=reason,
                    consecutive_failures=self._breaker.consecutive_failures,
                    circuit="open",
                )
            self._set_state(SessionState.CIRCUIT_OPEN)
            return True
        delay = retry_delay_seconds(
            self._breaker.consecutive_failures,
            initial=self._backoff.backoff_initial_seconds,
            maximum=self._backoff.backoff_max_seconds,
        )
        self._set_state(SessionState.BACKOFF)
        await asyncio.sleep(delay)
        return True

    # -- one contact -----------------------------------------------------------------

    async def _contact(self) -> None:
        link = self._link_factory()
        driver = link.driver
        devices = self._devices
        try:
            self._set_state(SessionState.CONNECTING)
            try:
                await self._bounded(driver.connect(), devices.connect_timeout_seconds, "connect")
                info = await self._bounded(
                    driver.read_device_info(),
                    devices.operation_timeout_seconds,
                    "read_device_info",
                )
            except DeviceTimeout as exc:
                if self.profile.is_ble:
                    raise
                # The cable's adapter is there but nothing answers: the meter is not
                # seated in it, the normal state of a serial meter.
                raise DeviceNotFound(f"{self.device_id}: no meter answers on the port") from exc
            if info.device_id != self.device_id:
                raise IdentityMismatch(
                    self.device_id, address=self.pairing.address, found_device_id=info.device_id
                )
            self._last_contact = self._clock()
            observation = await self._observe_clock(driver)
            self._set_state(SessionState.DOWNLOADING)
            stored = await self._storage_call(self._outbox.cursor, self.device_id)
            cursor = cursor_for_download(stored, observation)
            if stored is not None and cursor is None:
                logger.warning(
                    "device clock went back: downloading all records again",
                    extra={"device_id": self.device_id},
                )
            result = await self._bounded(
                driver.fetch_records(cursor), devices.download_timeout_seconds, "fetch_records"
            )
            if result.measurements or result.cursor != stored:
                # Nothing new, cursor unchanged: no transaction, no fsync on the SD card.
                await self._store(result.measurements, result.cursor, observation)
            observation = await self._maybe_set_clock(driver, observation, result.cursor)
            await self._read_battery(link)
            if link.wait_disconnected is not None:
                self._live_observation = observation
                self._live_cursor = result.cursor
                self._live_cursor_held = False
                self._stream_loss_announced = False
                await self._bounded(
                    driver.subscribe(self._on_live), devices.operation_timeout_seconds, "subscribe"
                )
                self._set_state(SessionState.CONNECTED)
                await self._hold_link(driver, link.wait_disconnected, observation)
        finally:
            await self._disconnect(driver)

    async def _hold_link(
        self,
        driver: Driver,
        wait_disconnected: Callable[[], Awaitable[None]],
        observation: ClockObservation | None,
    ) -> None:
        """Keep the link until it drops; a glucose meter's memory is polled meanwhile.

        A meter that keeps its link sends a result it takes meanwhile only when asked
        (:func:`polls_held_link`), so every ``ble_retry_seconds`` its records after the
        cursor are requested, within the download deadline. A link that drops during a
        poll ends the contact like any drop: nothing was committed, the next contact
        downloads from the same cursor.
        """
        disconnected = asyncio.ensure_future(wait_disconnected())
        try:
            if not polls_held_link(self.profile):
                await disconnected
                return
            poll_seconds = self._devices.ble_retry_seconds
            while True:
                await asyncio.wait((disconnected,), timeout=poll_seconds)
                if disconnected.done():
                    return
                try:
                    await self._poll_records(driver, observation)
                except DriverError as exc:
                    await asyncio.wait((disconnected,), timeout=LINK_DROP_GRACE_SECONDS)
                    if not disconnected.done():
                        raise
                    logger.info(
                        "link dropped during a poll; the next contact downloads from the cursor",
                        extra={"device_id": self.device_id, "error": type(exc).__name__},
                    )
                    return
        finally:
            disconnected.cancel()
            await asyncio.gather(disconnected, return_exceptions=True)

    async def _poll_records(self, driver: Driver, observation: ClockObservation | None) -> None:
        """Download the records after the committed cursor over the held link."""
        refused_before = self.counters.readings_not_stored
        stored = await self._storage_call(self._outbox.cursor, self.device_id)
        cursor = cursor_for_download(stored, observation)
        result = await self._bounded(
            driver.fetch_records(cursor), self._devices.download_timeout_seconds, "fetch_records"
        )
        if result.measurements or result.cursor != stored:
            await self._store(result.measurements, result.cursor, observation)
        # Downloaded from the committed cursor, so a live record refused earlier in this
        # contact came again with this download: live records may move the cursor again.
        # Unless one was refused while this poll ran: it may be newer than the download.
        if self.counters.readings_not_stored == refused_before:
            self._live_cursor = result.cursor
            self._live_cursor_held = False

    async def _storage_call(self, call: Callable[..., T], *args: Any) -> T:
        """A blocking outbox or pairing-store call, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._storage, call, *args)

    async def _bounded(self, operation: Awaitable[T], seconds: float, what: str) -> T:
        try:
            async with asyncio.timeout(seconds):
                return await operation
        except TimeoutError:
            raise DeviceTimeout(
                f"{self.device_id}: {what} did not finish within {seconds:g} s"
            ) from None

    async def _disconnect(self, driver: Driver) -> None:
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT_SECONDS):
                await driver.disconnect()
        except (DriverError, TimeoutError) as exc:
            logger.info(
                "disconnect failed; link abandoned",
                extra={"device_id": self.device_id, "error": type(exc).__name__},
            )

    async def _observe_clock(self, driver: Driver) -> ClockObservation | None:
        device_now = await self._bounded(
            driver.read_clock(), self._devices.operation_timeout_seconds, "read_clock"
        )
        if device_now is None:
            return None
        return ClockObservation(device_now=device_now, gateway_now=self._clock())

    async def _maybe_set_clock(
        self, driver: Driver, observation: ClockObservation | None, cursor: RecordCursor
    ) -> ClockObservation | None:
        """Set the device clock when it is off, allowed, and safe; the new observation.

        Setting a clock *back* on a device whose records are keyed by time alone would
        give new records the times of records already downloaded, and the cursor would
        skip them: such a clock is left alone and every reading corrected instead.
        """
        zone = self.pairing.zone
        if observation is None or not needs_correction(
            observation, zone, max_offset_seconds=self._max_clock_offset_seconds
        ):
            return observation
        if not (self._set_clocks and self.profile.quirks.clock_settable):
            return observation
        offset = observation.offset(zone)
        if offset > timedelta(0) and cursor.last_seq is None:
            logger.info(
                "device clock is fast but its records are keyed by time: not set, corrected",
                extra={"device_id": self.device_id},
            )
            return observation
        target = self._clock().astimezone(zone).replace(tzinfo=None, microsecond=0)
        await self._bounded(
            driver.set_clock(target), self._devices.operation_timeout_seconds, "set_clock"
        )
        self._emit(EventType.CLOCK_SET, offset_seconds=round(offset.total_seconds()))
        logger.info("device clock set", extra={"device_id": self.device_id})
        return await self._observe_clock(driver)

    async def _read_battery(self, link: DeviceLink) -> None:
        if link.battery_percent is None:
            return
        level = await self._bounded(
            link.battery_percent(), self._devices.operation_timeout_seconds, "read battery"
        )
        if level is None:
            return
        self._battery_percent = level
        if level <= self._devices.battery_low_percent:
            self._emit_once(EventType.BATTERY_LOW, battery_percent=level)

    # -- storing -------------------------------------------------------------------------

    async def _store(
        self,
        measurements: Sequence[Measurement],
        cursor: RecordCursor | None,
        observation: ClockObservation | None,
        *,
        live: bool = False,
    ) -> None:
        """Readings and the cursor in one outbox call; events for what is not a reading.

        ``live``: a measurement pushed while connected; logged at debug level, since a
        heart-rate strap sends one a second.
        """
        pairing = await self._storage_call(self._pairings.get, self.device_id)
        if pairing is None:
            self.counters.dropped_unpaired += len(measurements)
            logger.warning(
                "device is no longer paired: its records were not stored",
                extra={"device_id": self.device_id, "count": len(measurements)},
            )
            return
        received_at = self._clock()
        readings: list[Reading] = []
        events: list[tuple[EventType, dict[str, str | int | float | bool]]] = []
        battery_low = False
        for measurement in measurements:
            battery_low = battery_low or FLAG_BATTERY_LOW in measurement.flags
            if measurement.disposition is Disposition.CONTROL_SOLUTION:
                events.append((EventType.CONTROL_SOLUTION_TEST, _record_detail(measurement)))
                continue
            if measurement.disposition is Disposition.DEVICE_ERROR:
                detail = _record_detail(measurement)
                if measurement.flags:
                    detail["flags"] = ",".join(sorted(measurement.flags))
                events.append((EventType.MEASUREMENT_FAILED, detail))
                continue
            try:
                readings.append(
                    measurement_to_reading(
                        measurement,
                        pairing=pairing,
                        gateway_id=self._gateway_id,
                        observation=observation,
                        received_at=received_at,
                        max_clock_offset_seconds=self._max_clock_offset_seconds,
                    )
                )
            except InvalidReading as exc:
                self.counters.invalid_measurements += 1
                logger.error(
                    "device record breaks the contract; not stored",
                    extra={"device_id": self.device_id, "reason": exc.field},
                )
                events.append(
                    (EventType.DEVICE_ERROR, {"reason": "invalid_record", "field": exc.field})
                )
        result = await self._storage_call(
            functools.partial(
                self._outbox.add,
                readings,
                cursor=(self.device_id, cursor) if cursor is not None else None,
            )
        )
        self.counters.readings_stored += result.added
        self.counters.duplicates += result.duplicates
        if readings:
            logger.log(
                logging.DEBUG if live else logging.INFO,
                "readings stored",
                extra={
                    "device_id": self.device_id,
                    "count": result.added,
                    "duplicates": result.duplicates,
                },
            )
        corrected = sum(1 for reading in readings if FLAG_CLOCK_CORRECTED in reading.flags)
        if corrected and observation is not None:
            offset = observation.offset(pairing.zone).total_seconds()
            self._emit_once(
                EventType.CLOCK_CORRECTED, offset_seconds=round(offset), count=corrected
            )
        for event, detail in events:
            self._emit(event, **detail)
        if battery_low:
            self._emit_once(EventType.BATTERY_LOW, source="device_status")

    async def _on_live(self, measurement: Measurement) -> None:
        """A live measurement: stored like a downloaded record. Never raises into the
        driver's delivery task; one that cannot be stored is counted and announced, and
        the cursor stops moving for the rest of the contact, so a record the device keeps
        is downloaded again at the next contact."""
        self.counters.live_measurements += 1
        cursor = None if self._live_cursor_held else cursor_after(self._live_cursor, measurement)
        try:
            await self._store([measurement], cursor, self._live_observation, live=True)
        except Exception as exc:
            try:
                self._live_not_stored(measurement, exc)
            except Exception:
                # Reporting must not end the driver's delivery of the next measurement.
                logger.exception("cannot report a live measurement not stored")
            return
        if cursor is not None:
            self._live_cursor = cursor

    def _live_not_stored(self, measurement: Measurement, exc: Exception) -> None:
        reason = not_stored_reason(exc)
        kept = kept_on_device(self.profile, measurement)
        # Later live records must not move the cursor past this one: were the cursor to
        # follow them, the next download would start after the record that is missing.
        self._live_cursor_held = True
        self.counters.readings_not_stored += 1
        if not kept:
            self.counters.readings_lost += 1
        logger.error(
            "live measurement not stored",
            extra={
                "device_id": self.device_id,
                "reason": reason.value,
                "error": type(exc).__name__,
                "kept_on_device": kept,
            },
            exc_info=exc if reason is NotStoredReason.UNEXPECTED else None,
        )
        if isinstance(exc, OutboxFull):
            self._set_state(SessionState.OUTBOX_FULL)
        # Every record a device keeps gets its own event (the central side learns which
        # one to expect later); a stream loses a sample a second, announced once per
        # contact, its total in the status.
        if kept or not self._stream_loss_announced:
            self._stream_loss_announced = self._stream_loss_announced or not kept
            self._emit(
                EventType.READINGS_NOT_STORED,
                reason=reason.value,
                kept_on_device=kept,
                **_record_detail(measurement),
            )

    # -- events and state ------------------------------------------------------------

    def _emit(self, event: EventType, **detail: str | int | float | bool) -> None:
        self._events(
            EventMessage(
                gateway_id=self._gateway_id,
                at=self._clock(),
                event=event,
                device_id=self.device_id,
                detail=detail,
            )
        )

    def _emit_once(self, event: EventType, **detail: str | int | float | bool) -> None:
        """At most one event of this type per contact."""
        if event in self._contact_events:
            return
        self._contact_events.add(event)
        self._emit(event, **detail)

    def _set_state(self, state: SessionState) -> None:
        if state is not self._state:
            logger.debug(
                "device session state", extra={"device_id": self.device_id, "state": state.value}
            )
            self._state = state


def _record_detail(measurement: Measurement) -> dict[str, str | int | float | bool]:
    """What an event may say about a record: its kind and key, never its values."""
    detail: dict[str, str | int | float | bool] = {"kind": measurement.kind.value}
    if measurement.seq is not None:
        detail["seq"] = measurement.seq
    if measurement.device_time is not None:
        detail["device_time"] = measurement.device_time.isoformat(timespec="seconds")
    return detail
