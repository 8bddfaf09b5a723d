"""The gateway fleet state: what gateways said of themselves, and pairing windows.

The fleet listener (:mod:`ingest.fleet_listener`) hands every status and event it examined
to :class:`FleetRepository`; the API reads the result from here, never from MQTT.

* :func:`next_gateway_status` — pure: the stored status after one more status message
  (the rules of "offline since", ``docs/fleet.md``).
* :meth:`FleetRepository.record_status` / :meth:`FleetRepository.record_event` — store them;
  an event is stored once by its key however often it is delivered.
* :meth:`FleetRepository.open_pairing` — the API opened a pairing window; a ``paired``
  event inside that window (for that gateway and patient) binds the device
  (:meth:`registry.repositories.DeviceRepository.bind`). A ``paired`` event nobody asked
  for is logged and binds nothing: a gateway alone cannot give a device to a patient.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from readings.codec import (
    MAX_PAIRING_WINDOW_SECONDS,
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
    format_utc,
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import DeviceAlreadyBound, InvalidRegistryInput, NotFound, RegistryError
from registry.fleet_models import (
    DeviceStatusRow,
    GatewayEventRow,
    GatewayStatusRow,
    PairingRequestRow,
)
from registry.models import Gateway, Patient
from registry.repositories import DeviceRepository

PAIRED_GRACE_SECONDS: Final = 30
"""A ``paired`` event may arrive this long after the window closed: the gateway pairs a
device heard in the window's last scan (3 s) after identifying and bonding it (tens of
seconds for a slow BLE meter)."""
MAX_ERROR_LENGTH: Final = 200
BATTERY_REPLACED_PERCENT: Final = 50
"""A status showing at least this much after a ``battery_low`` event means the battery was
replaced: a coin cell or AA pair does not recover from the gateway's low mark (20 % by
default) to half by itself."""

_T = TypeVar("_T")


class PairingState(StrEnum):
    """How a pairing window opened through the API ended (so far)."""

    PENDING = "pending"
    PAIRED = "paired"
    FAILED = "failed"
    TIMEOUT = "timeout"
    """Reported, never stored: a pending request past its window (and grace)."""


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's last known status (see ``docs/fleet.md`` for ``since``)."""

    gateway_id: str
    state: GatewayState
    since: datetime
    since_exact: bool
    last_seen_at: datetime | None
    status_at: datetime | None
    queue_depth: int | None
    oldest_unacked_age_seconds: float | None
    outbox_bytes: int | None
    outbox_quota_bytes: int | None
    over_quota: bool
    software_version: str | None
    updated_at: datetime


def next_gateway_status(
    previous: GatewayStatus | None,
    message: StatusMessage,
    *,
    received_at: datetime,
    retained: bool,
) -> GatewayStatus:
    """The stored status after ``message`` arrived at ``received_at``.

    * Same state as before: ``since`` stays (a periodic status, or the retained copy the
      broker hands a listener that subscribes again).
    * A change seen live: ``since`` is ``received_at`` — the listener's clock, not the
      gateway's (a will's ``at`` is the time the gateway *connected*; the broker publishes
      it about 1.5 keepalives after the link died).
    * A change found retained on subscribing (it happened while no listener ran): the
      exact moment is unknown; ``since`` is the latest moment known to be before it — the
      status's own ``at`` or the last time the gateway was heard, whichever is later — and
      ``since_exact`` is false.

    An offline status carries no backlog: the last known one is kept (what was waiting
    when the gateway was last heard). ``last_seen_at`` moves only with an online status.
    """
    changed = previous is None or previous.state is not message.state
    if not changed:
        assert previous is not None
        since, exact = previous.since, previous.since_exact
    elif not retained:
        since, exact = received_at, True
    else:
        candidates = [t for t in (message.at, previous.last_seen_at if previous else None) if t]
        since, exact = (max(candidates) if candidates else received_at), False
    online = message.state is GatewayState.ONLINE
    last_seen = received_at if online else (previous.last_seen_at if previous else None)

    def keep(new: _T | None, old: _T | None) -> _T | None:
        return new if new is not None or online else old

    return GatewayStatus(
        gateway_id=message.gateway_id,
        state=message.state,
        since=since,
        since_exact=exact,
        last_seen_at=last_seen,
        status_at=message.at,
        queue_depth=keep(message.queue_depth, previous.queue_depth if previous else None),
        oldest_unacked_age_seconds=keep(
            message.oldest_unacked_age_seconds,
            previous.oldest_unacked_age_seconds if previous else None,
        ),
        outbox_bytes=keep(message.outbox_bytes, previous.outbox_bytes if previous else None),
        outbox_quota_bytes=keep(
            message.outbox_quota_bytes, previous.outbox_quota_bytes if previous else None
        ),
        over_quota=message.over_quota if online or previous is None else previous.over_quota,
        software_version=message.software_version
        or (previous.software_version if previous else None),
        updated_at=received_at,
    )


@dataclass(frozen=True, slots=True)
class DeviceFleetStatus:
    """What the fleet knows of one device."""

    device_id: str
    gateway_id: str
    state: str | None
    last_contact: datetime | None
    battery_percent: int | None
    battery_low_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    readings_not_stored: int
    readings_lost: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class GatewayEventRecord:
    """One stored gateway event."""

    id: int
    gateway_id: str
    at: datetime
    received_at: datetime
    event: str
    device_id: str | None
    detail: dict[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class PairingRequest:
    """A pairing window opened through the API; ``state`` as of the time asked."""

    id: int
    patient_id: str
    gateway_id: str
    requested_by: str
    requested_at: datetime
    window_seconds: int
    expires_at: datetime
    profile: str | None
    state: PairingState
    device_id: str | None
    outcome: str | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What :meth:`FleetRepository.record_event` did.

    Attributes:
        stored: the event was new (``False``: a redelivery, nothing changed).
        bound_request: the pairing request a ``paired`` event resolved, if any.
        unrequested_pairing: a ``paired`` event no open window of the API asked for.
    """

    stored: bool
    bound_request: PairingRequest | None = None
    unrequested_pairing: bool = False


def event_key(message: EventMessage) -> str:
    """The identity of an event: a digest of everything it says.

    Events carry no id; two deliveries of one event are byte-for-byte the same message,
    and two different events differ in time, type, device or detail.
    """
    canonical = json.dumps(
        [
            message.gateway_id,
            format_utc(message.at),
            message.event.value,
            message.device_id,
            message.detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _status(row: GatewayStatusRow) -> GatewayStatus:
    return GatewayStatus(
        gateway_id=row.gateway_id,
        state=GatewayState(row.state),
        since=row.since,
        since_exact=row.since_exact,
        last_seen_at=row.last_seen_at,
        status_at=row.status_at,
        queue_depth=row.queue_depth,
        oldest_unacked_age_seconds=row.oldest_unacked_age_seconds,
        outbox_bytes=row.outbox_bytes,
        outbox_quota_bytes=row.outbox_quota_bytes,
        over_quota=row.over_quota,
        software_version=row.software_version,
        updated_at=row.updated_at,
    )


def _device(row: DeviceStatusRow) -> DeviceFleetStatus:
    return DeviceFleetStatus(
        device_id=row.device_id,
        gateway_id=row.gateway_id,
        state=row.state,
        last_contact=row.last_contact,
        battery_percent=row.battery_percent,
        battery_low_at=row.battery_low_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        readings_not_stored=row.readings_not_stored,
        readings_lost=row.readings_lost,
        updated_at=row.updated_at,
    )


def _request(row: PairingRequestRow, now: datetime) -> PairingRequest:
    state = PairingState(row.state)
    if state is PairingState.PENDING and now > row.expires_at + timedelta(
        seconds=PAIRED_GRACE_SECONDS
    ):
        state = PairingState.TIMEOUT
    return PairingRequest(
        id=row.id,
        patient_id=row.patient_id,
        gateway_id=row.gateway_id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        window_seconds=row.window_seconds,
        expires_at=row.expires_at,
        profile=row.profile,
        state=state,
        device_id=row.device_id,
        outcome=row.outcome,
        resolved_at=row.resolved_at,
    )


class FleetRepository:
    """Gateway and device status, the gateway event log, pairing windows."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    # -- status ----------------------------------------------------------------------

    def record_status(
        self, message: StatusMessage, *, received_at: datetime, retained: bool = False
    ) -> GatewayStatus:
        """Store a gateway's status (and what it says of each device).

        Raises:
            NotFound: the gateway is not in the registry.
        """
        received_at = aware_utc(received_at, "received_at")
        if self._session.get(Gateway, message.gateway_id) is None:
            raise NotFound("gateway", message.gateway_id)
        row = self._session.get(GatewayStatusRow, message.gateway_id)
        previous = None if row is None else _status(row)
        status = next_gateway_status(previous, message, received_at=received_at, retained=retained)
        if row is None:
            row = GatewayStatusRow(gateway_id=status.gateway_id)
            self._session.add(row)
        for name in GatewayStatus.__slots__:
            if name != "gateway_id":
                value = getattr(status, name)
                setattr(row, name, value.value if name == "state" else value)
        for device in message.devices:
            drow = self._device_row(device.device_id, message.gateway_id, received_at)
            drow.state = device.state
            drow.last_contact = device.last_contact or drow.last_contact
            if device.battery_percent is not None:
                drow.battery_percent = device.battery_percent
                if device.battery_percent >= BATTERY_REPLACED_PERCENT:
                    drow.battery_low_at = None
            drow.readings_not_stored = device.readings_not_stored
            drow.readings_lost = device.readings_lost
        self._session.flush()
        return status

    def gateway_status(self, gateway_id: str) -> GatewayStatus | None:
        """The gateway's last known status; ``None`` if none has arrived."""
        row = self._session.get(GatewayStatusRow, gateway_id)
        return None if row is None else _status(row)

    def gateway_statuses(self, gateway_ids: Collection[str]) -> dict[str, GatewayStatus]:
        """The last known status of each of ``gateway_ids`` that has one."""
        if not gateway_ids:
            return {}
        rows = self._session.scalars(
            select(GatewayStatusRow).where(GatewayStatusRow.gateway_id.in_(list(gateway_ids)))
        )
        return {row.gateway_id: _status(row) for row in rows}

    def device_statuses(self, device_ids: Collection[str]) -> dict[str, DeviceFleetStatus]:
        """What is known of each of ``device_ids`` (devices never mentioned are absent)."""
        if not device_ids:
            return {}
        rows = self._session.scalars(
            select(DeviceStatusRow).where(DeviceStatusRow.device_id.in_(list(device_ids)))
        )
        return {row.device_id: _device(row) for row in rows}

    def devices_of_gateway(self, gateway_id: str) -> list[DeviceFleetStatus]:
        """Every device the gateway has reported on, by id."""
        rows = self._session.scalars(
            select(DeviceStatusRow)
            .where(DeviceStatusRow.gateway_id == gateway_id)
            .order_by(DeviceStatusRow.device_id)
        )
        return [_device(row) for row in rows]

    def _device_row(self, device_id: str, gateway_id: str, at: datetime) -> DeviceStatusRow:
        row = self._session.get(DeviceStatusRow, device_id)
        if row is None:
            row = DeviceStatusRow(
                device_id=device_id,
                gateway_id=gateway_id,
                readings_not_stored=0,
                readings_lost=0,
                updated_at=at,
            )
            self._session.add(row)
        row.gateway_id = gateway_id
        row.updated_at = at
        return row

    # -- events ----------------------------------------------------------------------

    def record_event(self, message: EventMessage, *, received_at: datetime) -> EventOutcome:
        """Store an event once, and apply it (device status; a requested pairing).

        Raises:
            NotFound: the gateway is not in the registry.
        """
        received_at = aware_utc(received_at, "received_at")
        if self._session.get(Gateway, message.gateway_id) is None:
            raise NotFound("gateway", message.gateway_id)
        key = event_key(message)
        if self._session.scalar(select(GatewayEventRow.id).where(GatewayEventRow.event_key == key)):
            return EventOutcome(stored=False)
        try:
            with self._session.begin_nested():
                self._session.add(
                    GatewayEventRow(
                        event_key=key,
                        gateway_id=message.gateway_id,
                        at=message.at,
                        received_at=received_at,
                        event=message.event.value,
                        device_id=message.device_id,
                        detail=json.dumps(message.detail, sort_keys=True, ensure_ascii=False),
                    )
                )
        except IntegrityError:
            # Another listener stored the same event a moment ago.
            return EventOutcome(stored=False)
        status = self._session.get(GatewayStatusRow, message.gateway_id)
        if status is not None and status.state == GatewayState.ONLINE.value:
            status.last_seen_at = max(status.last_seen_at or received_at, received_at)
        outcome = EventOutcome(stored=True)
        device_id = message.device_id
        if device_id is not None:
            match message.event:
                case EventType.BATTERY_LOW:
                    row = self._device_row(device_id, message.gateway_id, received_at)
                    row.battery_low_at = message.at
                    level = message.detail.get("battery_percent")
                    if isinstance(level, int) and not isinstance(level, bool):
                        row.battery_percent = level
                case EventType.DEVICE_ERROR:
                    row = self._device_row(device_id, message.gateway_id, received_at)
                    row.last_error = str(message.detail.get("reason", "device_error"))[
                        :MAX_ERROR_LENGTH
                    ]
                    row.last_error_at = message.at
                case EventType.PAIRED:
                    self._device_row(device_id, message.gateway_id, received_at)
                    outcome = self._paired(message, device_id, received_at)
                case _:
                    pass
        self._session.flush()
        return outcome

    def events(self, gateway_id: str, *, limit: int = 100) -> list[GatewayEventRecord]:
        """The gateway's newest events, newest first."""
        rows = self._session.scalars(
            select(GatewayEventRow)
            .where(GatewayEventRow.gateway_id == gateway_id)
            .order_by(GatewayEventRow.at.desc(), GatewayEventRow.id.desc())
            .limit(limit)
        )
        return [
            GatewayEventRecord(
                id=row.id,
                gateway_id=row.gateway_id,
                at=row.at,
                received_at=row.received_at,
                event=row.event,
                device_id=row.device_id,
                detail=json.loads(row.detail),
            )
            for row in rows
        ]

    # -- pairing ---------------------------------------------------------------------

    def open_pairing(
        self,
        patient_id: str,
        gateway_id: str,
        *,
        requested_by: str,
        window_seconds: int,
        profile: str | None = None,
    ) -> PairingRequest:
        """Record a pairing window the API is about to open with ``cmd/pair``.

        Raises:
            InvalidRegistryInput: the window is outside 1..MAX_PAIRING_WINDOW_SECONDS.
            NotFound: no such patient or gateway.
        """
        if not 1 <= window_seconds <= MAX_PAIRING_WINDOW_SECONDS:
            raise InvalidRegistryInput(
                "window_seconds", f"must be 1..{MAX_PAIRING_WINDOW_SECONDS}, not {window_seconds}"
            )
        if self._session.get(Patient, patient_id) is None:
            raise NotFound("patient", patient_id)
        if self._session.get(Gateway, gateway_id) is None:
            raise NotFound("gateway", gateway_id)
        now = self._clock()
        row = PairingRequestRow(
            patient_id=patient_id,
            gateway_id=gateway_id,
            requested_by=requested_by,
            requested_at=now,
            window_seconds=window_seconds,
            expires_at=now + timedelta(seconds=window_seconds),
            profile=profile,
            state=PairingState.PENDING.value,
        )
        self._session.add(row)
        self._session.flush()
        return _request(row, now)

    def pairing_request(self, request_id: int) -> PairingRequest:
        """A pairing request, its state as of now.

        Raises:
            NotFound: there is none.
        """
        row = self._session.get(PairingRequestRow, request_id)
        if row is None:
            raise NotFound("pairing request", str(request_id))
        return _request(row, self._clock())

    def fail_pairing(self, request_id: int, outcome: str) -> PairingRequest:
        """Mark a pending request failed (the command never reached the broker).

        Raises:
            NotFound: there is none.
        """
        row = self._session.get(PairingRequestRow, request_id)
        if row is None:
            raise NotFound("pairing request", str(request_id))
        if row.state == PairingState.PENDING.value:
            row.state = PairingState.FAILED.value
            row.outcome = outcome[:MAX_ERROR_LENGTH]
            row.resolved_at = self._clock()
            self._session.flush()
        return _request(row, self._clock())

    def pairing_requests(self, patient_id: str, *, limit: int = 20) -> list[PairingRequest]:
        """The patient's newest pairing requests, newest first."""
        now = self._clock()
        rows = self._session.scalars(
            select(PairingRequestRow)
            .where(PairingRequestRow.patient_id == patient_id)
            .order_by(PairingRequestRow.requested_at.desc(), PairingRequestRow.id.desc())
            .limit(limit)
        )
        return [_request(row, now) for row in rows]

    def _paired(self, message: EventMessage, device_id: str, received_at: datetime) -> EventOutcome:
        patient_id = message.detail.get("patient_id")
        grace = timedelta(seconds=PAIRED_GRACE_SECONDS)
        candidates = self._session.scalars(
            select(PairingRequestRow)
            .where(
                PairingRequestRow.gateway_id == message.gateway_id,
                PairingRequestRow.patient_id == str(patient_id),
                PairingRequestRow.state.in_([PairingState.PENDING, PairingState.PAIRED]),
                PairingRequestRow.requested_at <= received_at,
            )
            .order_by(PairingRequestRow.requested_at.desc())
        ).all()
        row = next((r for r in candidates if received_at <= r.expires_at + grace), None)
        if row is None or not isinstance(patient_id, str):
            return EventOutcome(stored=True, unrequested_pairing=True)
        profile = message.detail.get("profile")
        failure: str | None = None
        try:
            with self._session.begin_nested():
                DeviceRepository(self._session, clock=self._clock).bind(
                    device_id,
                    message.gateway_id,
                    patient_id,
                    at=received_at,
                    profile=profile if isinstance(profile, str) else None,
                )
        except DeviceAlreadyBound:
            failure = "device is bound to another patient: unpair it there first"
        except (InvalidRegistryInput, NotFound) as exc:
            failure = str(exc)[:MAX_ERROR_LENGTH]
        except RegistryError as exc:  # AlreadyExists: bound concurrently
            failure = str(exc)[:MAX_ERROR_LENGTH]
        if row.state == PairingState.PENDING.value:
            row.state = (PairingState.FAILED if failure else PairingState.PAIRED).value
            row.device_id = device_id
            row.outcome = failure
            row.resolved_at = received_at
        self._session.flush()
        return EventOutcome(stored=True, bound_request=_request(row, received_at))
