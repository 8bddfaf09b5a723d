"""May this gateway send this device's reading for this patient, measured then?

The broker ties the gateway id in the topic to the gateway's credential; everything else in
a reading is the gateway's claim. Ingest accepts a reading only if the registry agrees:

1. the gateway exists (``unknown_gateway``) and is active (``inactive_gateway``);
2. the device exists (``unknown_device``);
3. a pairing of the device accepts the reading's ``measured_at`` and names this gateway
   and the claimed patient. Otherwise, in this order: ``wrong_patient`` (a pairing of this
   gateway accepts that time, for another patient); ``before_binding`` (this gateway and
   patient are paired, but the reading is older than the history the binding accepted);
   ``not_paired_at_measured_at`` (the device is paired to this gateway now, not then);
   ``device_not_paired_to_gateway``.

Every verdict but ``ok`` is quarantined and never reaches the store or the alerts. All but
``before_binding`` are security events; ``before_binding`` is a clinical question (whose
values are these?) that a person answers by releasing the readings, or not.

**Stored history (``history_since``).** Meters keep their readings in memory, and the
first download after pairing brings weeks of records measured *before* the pairing
existed. Whether they are the new patient's is known only to the person enrolling them:
their own meter, yes; a second-hand or borrowed one, no. So the decision is made at
binding time and stored with the pairing: it accepts readings measured from its
``history_since`` on (by default its own start: no history). Readings older than that come
out as ``before_binding``. The window never reaches back past the end of a previous
pairing of the same device **with another patient**: that period's readings belong to that
patient, and a gateway that re-downloads an inherited meter must not file them under the
new one (they come out as ``wrong_patient`` if the same gateway had them, else as not
paired — never as releasable ``before_binding``). A gateway swap for the same patient keeps
the previous pairing's ``history_since`` (see :mod:`registry.repositories`): the new box
uploads the same person's memory.

**Cost.** Ingest calls :meth:`OwnershipChecker.check` per reading at up to ~100k readings/s.
The checker caches each device's pairings and each gateway's state for a TTL: a cached
check is a few dict lookups and comparisons, no SQL. A binding change therefore takes
effect within the TTL (5 s by default) in every ingest worker, or at once where
:meth:`OwnershipChecker.invalidate` is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypeVar

from sqlalchemy import Engine, select

from registry.clock import Clock, utc_now
from registry.db import UNREACHABLE_ERRORS, unavailable
from registry.errors import InvalidRegistryInput
from registry.models import Device, DevicePairing, Gateway

DEFAULT_CACHE_TTL_SECONDS: Final = 5.0
"""How long a device's pairings are trusted without asking the database: long enough that
a 500-record history download costs one query, short enough that an unbind is effective
in every ingest worker before an operator has finished reading the confirmation."""

MAX_CACHED_ENTRIES: Final = 200_000
"""Bound on cached devices (and, separately, gateways). Readings naming unknown devices
are cached too (so a flood of them does not become a flood of queries); the bound keeps
a flood of *distinct* made-up ids from growing memory without limit."""


class OwnershipVerdict(StrEnum):
    """The answer of :meth:`OwnershipChecker.check`; anything but ``OK`` is quarantined."""

    OK = "ok"
    UNKNOWN_GATEWAY = "unknown_gateway"
    INACTIVE_GATEWAY = "inactive_gateway"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_NOT_PAIRED_TO_GATEWAY = "device_not_paired_to_gateway"
    """No pairing accepts the time and the device is not paired to this gateway now."""
    WRONG_PATIENT = "wrong_patient"
    """Paired to this gateway at that time, but for another patient."""
    NOT_PAIRED_AT_MEASURED_AT = "not_paired_at_measured_at"
    """Paired to this gateway now, but not at the time the reading was measured."""
    BEFORE_BINDING = "before_binding"
    """This gateway and patient are paired, but the reading was measured before the
    history the binding accepts (``history_since``). Not a security event: a person decides
    whether the readings are the patient's."""

    @property
    def is_security_event(self) -> bool:
        """The gateway sent something it was not entitled to (all refusals but one)."""
        return self not in (OwnershipVerdict.OK, OwnershipVerdict.BEFORE_BINDING)


@dataclass(frozen=True, slots=True)
class PairingPeriod:
    """One pairing of a device, as the ownership rule sees it.

    ``history_since`` is how far back the pairing accepts stored history; ``None`` means
    its own start (no history).
    """

    gateway_id: str
    patient_id: str
    valid_from: datetime
    valid_to: datetime | None
    history_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class AcceptanceWindow:
    """The measurement times a pairing accepts: ``[accepts_from, valid_to)``.

    ``accepts_from`` is the pairing's ``history_since``, moved forward to ``history_floor``
    when that is later (see the module docstring); ``valid_from`` is kept to tell "paired
    now" from "paired then".

    Attributes:
        history_floor: the end of the latest earlier pairing of the device with another
            patient (``None``: there is none). Readings before it are never this
            pairing's, not even by a person's release.
    """

    gateway_id: str
    patient_id: str
    accepts_from: datetime
    valid_from: datetime
    valid_to: datetime | None
    history_floor: datetime | None = None


def acceptance_windows(periods: Iterable[PairingPeriod]) -> tuple[AcceptanceWindow, ...]:
    """Each pairing's acceptance window (computed once per cache fill, not per reading)."""
    ordered = sorted(periods, key=lambda period: period.valid_from)
    windows = []
    for index, period in enumerate(ordered):
        floor: datetime | None = None
        for earlier in ordered[:index]:
            if earlier.patient_id != period.patient_id and earlier.valid_to is not None:
                floor = earlier.valid_to if floor is None else max(floor, earlier.valid_to)
        history_since = period.valid_from if period.history_since is None else period.history_since
        accepts_from = min(history_since, period.valid_from)
        if floor is not None:
            accepts_from = max(accepts_from, floor)
        windows.append(
            AcceptanceWindow(
                gateway_id=period.gateway_id,
                patient_id=period.patient_id,
                accepts_from=accepts_from,
                valid_from=period.valid_from,
                valid_to=period.valid_to,
                history_floor=floor,
            )
        )
    return tuple(windows)


def judge(
    windows: tuple[AcceptanceWindow, ...],
    *,
    gateway_id: str,
    patient_id: str,
    at: datetime,
    now: datetime,
) -> OwnershipVerdict:
    """The verdict for a known device on an active gateway (rule 3 of the module docstring)."""
    gateway_had_it = False
    before_binding = False
    for window in windows:
        if window.gateway_id != gateway_id:
            continue
        if window.accepts_from <= at and (window.valid_to is None or at < window.valid_to):
            if window.patient_id == patient_id:
                return OwnershipVerdict.OK
            gateway_had_it = True
        elif (
            window.patient_id == patient_id
            and at < window.accepts_from
            and (window.history_floor is None or window.history_floor <= at)
        ):
            before_binding = True
    if gateway_had_it:
        return OwnershipVerdict.WRONG_PATIENT
    if before_binding:
        return OwnershipVerdict.BEFORE_BINDING
    for window in windows:
        if (
            window.gateway_id == gateway_id
            and window.valid_from <= now
            and (window.valid_to is None or now < window.valid_to)
        ):
            return OwnershipVerdict.NOT_PAIRED_AT_MEASURED_AT
    return OwnershipVerdict.DEVICE_NOT_PAIRED_TO_GATEWAY


@dataclass(frozen=True, slots=True)
class _GatewayState:
    expires_at: datetime
    verdict: OwnershipVerdict
    """``OK`` for an existing, active gateway."""


@dataclass(frozen=True, slots=True)
class _DeviceState:
    expires_at: datetime
    windows: tuple[AcceptanceWindow, ...] | None
    """``None`` for a device the registry does not know."""


_State = TypeVar("_State", _GatewayState, _DeviceState)


class OwnershipChecker:
    """Decides :class:`OwnershipVerdict` per reading, from a TTL cache of the registry.

    Thread-safe: lookups read immutable cache entries; a miss loads under a lock, so one
    device is loaded once however many threads ask for it at the same moment.

    Args:
        engine: the registry's engine.
        cache_ttl_seconds: how long a loaded gateway or device is used without asking
            the database again (0 disables the cache).
        clock: the current time, timezone-aware (cache expiry, "paired now").
        max_cached_entries: bound on cached devices (and on cached gateways).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        clock: Clock = utc_now,
        max_cached_entries: int = MAX_CACHED_ENTRIES,
    ) -> None:
        if cache_ttl_seconds < 0:
            raise InvalidRegistryInput("cache_ttl_seconds", "must not be negative")
        if max_cached_entries < 1:
            raise InvalidRegistryInput("max_cached_entries", "must be at least 1")
        self._engine = engine
        self._ttl = timedelta(seconds=cache_ttl_seconds)
        self._clock = clock
        self._max_cached_entries = max_cached_entries
        self._lock = threading.Lock()
        self._gateways: dict[str, _GatewayState] = {}
        self._devices: dict[str, _DeviceState] = {}

    def check(
        self, gateway_id: str, device_id: str, patient_id: str, at: datetime
    ) -> OwnershipVerdict:
        """The verdict for a reading of ``device_id`` for ``patient_id`` measured ``at``.

        Args:
            gateway_id: from the topic (tied to the gateway's credential by the broker).
            device_id: the reading's device.
            patient_id: the patient the reading claims.
            at: the reading's ``measured_at`` (timezone-aware).

        Raises:
            InvalidRegistryInput: ``at`` is naive.
            RegistryUnavailable: the database is needed and cannot be reached.
        """
        if at.tzinfo is None:
            raise InvalidRegistryInput("at", "naive datetime: give measured_at with its offset")
        now = self._clock()
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.expires_at <= now:
            gateway = self._load_gateway(gateway_id, now)
        if gateway.verdict is not OwnershipVerdict.OK:
            return gateway.verdict
        device = self._devices.get(device_id)
        if device is None or device.expires_at <= now:
            device = self._load_device(device_id, now)
        if device.windows is None:
            return OwnershipVerdict.UNKNOWN_DEVICE
        return judge(device.windows, gateway_id=gateway_id, patient_id=patient_id, at=at, now=now)

    def invalidate(self) -> None:
        """Forget everything cached; the next check of each device asks the database."""
        with self._lock:
            self._gateways = {}
            self._devices = {}

    def _load_gateway(self, gateway_id: str, now: datetime) -> _GatewayState:
        with self._lock:
            cached = self._gateways.get(gateway_id)
            if cached is not None and cached.expires_at > now:
                return cached
            try:
                with self._engine.connect() as connection:
                    active = connection.scalar(
                        select(Gateway.active).where(Gateway.id == gateway_id)
                    )
            except UNREACHABLE_ERRORS as exc:
                raise unavailable(exc) from exc
            if active is None:
                verdict = OwnershipVerdict.UNKNOWN_GATEWAY
            elif not active:
                verdict = OwnershipVerdict.INACTIVE_GATEWAY
            else:
                verdict = OwnershipVerdict.OK
            state = _GatewayState(expires_at=now + self._ttl, verdict=verdict)
            self._gateways = self._store(self._gateways, gateway_id, state, now)
            return state

    def _load_device(self, device_id: str, now: datetime) -> _DeviceState:
        with self._lock:
            cached = self._devices.get(device_id)
            if cached is not None and cached.expires_at > now:
                return cached
            query = (
                select(
                    Device.id,
                    DevicePairing.gateway_id,
                    DevicePairing.patient_id,
                    DevicePairing.valid_from,
                    DevicePairing.valid_to,
                    DevicePairing.history_since,
                )
                .outerjoin(DevicePairing, DevicePairing.device_id == Device.id)
                .where(Device.id == device_id)
            )
            try:
                with self._engine.connect() as connection:
                    rows = connection.execute(query).all()
            except UNREACHABLE_ERRORS as exc:
                raise unavailable(exc) from exc
            windows = None
            if rows:
                windows = acceptance_windows(
                    PairingPeriod(
                        row.gateway_id,
                        row.patient_id,
                        row.valid_from,
                        row.valid_to,
                        row.history_since,
                    )
                    for row in rows
                    if row.gateway_id is not None
                )
            state = _DeviceState(expires_at=now + self._ttl, windows=windows)
            self._devices = self._store(self._devices, device_id, state, now)
            return state

    def _store(
        self, cache: dict[str, _State], key: str, state: _State, now: datetime
    ) -> dict[str, _State]:
        if len(cache) >= self._max_cached_entries and key not in cache:
            cache = {k: v for k, v in cache.items() if v.expires_at > now}
            if len(cache) >= self._max_cached_entries:
                cache = {}
        cache[key] = state
        return cache
