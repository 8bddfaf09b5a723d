"""Operator actions on the registry: add gateways and patients, bind and unbind devices.

Each repository works inside the caller's transaction (a :class:`~sqlalchemy.orm.Session`
from :func:`registry.db.session_scope`), so a change and its audit row commit together.
They return frozen records, never ORM objects, so nothing outlives its session by accident.

Pairing rules:

* A device has at most one current pairing (``valid_to`` unset); history is never deleted.
* Binding a device to the patient and gateway it is already bound to changes nothing,
  unless another ``history_since`` is given: then only that changes.
* Binding it to the same patient through another gateway (the household got a new box)
  closes the current pairing and opens the new one at the same instant; the new pairing
  keeps the old one's ``history_since`` unless another is given.
* Binding it to another patient is refused until it is unbound: a reading is attributed
  to a patient by this table, and a silent re-assignment would file one person's values
  under another's name.
* Pairings never overlap in time; a pairing cannot start before the previous one ended.
* ``history_since`` (how much of the device's stored memory is the patient's, see
  :mod:`registry.ownership`) defaults to the binding time: no history. It can be neither
  after the binding time nor before the end of a previous pairing of the device with
  another patient (that patient's readings are never the new one's).
* Gateway ids that are service identities of the broker's ACL
  (:data:`readings.topics.SERVICE_IDENTITIES`, and every name starting with
  :data:`readings.topics.SERVICE_IDENTITY_PREFIX`) are refused: a gateway certified under
  such a name would get that service's rights on the broker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from readings.identity import DEVICE_ID_PATTERN, device_identity
from readings.model import ID_PATTERN
from readings.topics import (
    SERVICE_IDENTITIES,
    SERVICE_IDENTITY_PREFIX,
)
from readings.topics import (
    is_reserved_gateway_id as is_reserved_gateway_id,  # re-exported
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import (
    AlreadyExists,
    DeviceAlreadyBound,
    InvalidRegistryInput,
    NotFound,
)
from registry.models import (
    DEFAULT_PATIENT_TIME_ZONE,
    Device,
    DevicePairing,
    Gateway,
    Patient,
)

MAX_LABEL_LENGTH: Final = 200
MAX_DEVICE_PART_LENGTH: Final = 128
MAX_PROFILE_LENGTH: Final = 128

_ID_RE: Final = re.compile(ID_PATTERN)
_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A gateway as stored."""

    id: str
    label: str
    created_at: datetime
    active: bool


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A patient as stored: an opaque id, a display label, a time zone."""

    id: str
    display_name: str | None
    time_zone: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as stored."""

    id: str
    manufacturer: str
    model: str
    serial: str
    profile: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PairingRecord:
    """A device bound to a patient through a gateway over ``[valid_from, valid_to)``."""

    device_id: str
    gateway_id: str
    patient_id: str
    valid_from: datetime
    valid_to: datetime | None
    """``None`` while the pairing is current."""
    history_since: datetime
    """Readings measured from then on are the patient's (``valid_from``: no stored history)."""

    @property
    def is_current(self) -> bool:
        """The pairing has not been closed."""
        return self.valid_to is None


@dataclass(frozen=True, slots=True)
class BindResult:
    """What :meth:`DeviceRepository.bind` did.

    Attributes:
        pairing: the device's current pairing after the call.
        created: a new pairing was opened (``False``: it was bound like this already).
        closed: the pairing closed to make room (same patient, previous gateway), if any.
        device_created: the device was not known before and was registered.
        history_changed: the current pairing was kept and only its ``history_since``
            changed.
    """

    pairing: PairingRecord
    created: bool
    closed: PairingRecord | None
    device_created: bool
    history_changed: bool = False


def _check_id(value: str, field: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise InvalidRegistryInput(
            field,
            "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit",
        )
    return value


def _check_gateway_id(value: str) -> str:
    _check_id(value, "gateway_id")
    if is_reserved_gateway_id(value):
        raise InvalidRegistryInput(
            "gateway_id",
            f"{value!r} is reserved: names starting with {SERVICE_IDENTITY_PREFIX!r} "
            f"({', '.join(SERVICE_IDENTITIES)}) are the broker identities of VitalGate's "
            "services, and a gateway certified under one would get that service's rights; "
            "choose another id",
        )
    return value


def _check_device_id(value: str) -> str:
    if not _DEVICE_ID_RE.fullmatch(value):
        raise InvalidRegistryInput(
            "device_id",
            "must be manufacturer-model-serial (three parts of letters, digits, '.' or '_')",
        )
    return value


def _check_text(value: str, field: str, max_length: int) -> str:
    if len(value) > max_length:
        raise InvalidRegistryInput(field, f"must be at most {max_length} characters")
    return value


def _gateway_record(row: Gateway) -> GatewayRecord:
    return GatewayRecord(id=row.id, label=row.label, created_at=row.created_at, active=row.active)


def _patient_record(row: Patient) -> PatientRecord:
    return PatientRecord(
        id=row.id, display_name=row.display_name, time_zone=row.time_zone, created_at=row.created_at
    )


def _device_record(row: Device) -> DeviceRecord:
    return DeviceRecord(
        id=row.id,
        manufacturer=row.manufacturer,
        model=row.model,
        serial=row.serial,
        profile=row.profile,
        created_at=row.created_at,
    )


def _pairing_record(row: DevicePairing) -> PairingRecord:
    return PairingRecord(
        device_id=row.device_id,
        gateway_id=row.gateway_id,
        patient_id=row.patient_id,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        history_since=row.history_since,
    )


def _flush_or_already_exists(
    session: Session, entity: str, key: str, message: str | None = None
) -> None:
    # The existence check before an insert can race with another transaction; the
    # primary key (or unique index) is what really decides.
    try:
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(entity, key, message) from exc


def _check_history_since(
    since: datetime, start: datetime, history: Sequence[DevicePairing], patient_id: str
) -> None:
    """``since`` may not be after the binding's start, nor cross another patient's pairing."""
    if since > start:
        raise InvalidRegistryInput(
            "history_since",
            f"{since.isoformat()} is after the binding's start {start.isoformat()}: "
            "stored history lies before the binding",
        )
    other_ends = [
        row.valid_to
        for row in history
        if row.patient_id != patient_id and row.valid_to is not None and row.valid_to <= start
    ]
    if other_ends and since < max(other_ends):
        raise InvalidRegistryInput(
            "history_since",
            f"{since.isoformat()} is before {max(other_ends).isoformat()}, when the device's "
            "pairing with another patient ended: readings from then are that patient's",
        )


def _concurrent_bind(device_id: str) -> str:
    return (
        f"device {device_id!r} was bound by another operation at the same moment: "
        "check with `vitalgate registry device list`"
    )


class GatewayRepository:
    """Gateways: the edge boxes allowed to publish readings."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def add(self, gateway_id: str, label: str = "") -> GatewayRecord:
        """Register an active gateway.

        Raises:
            InvalidRegistryInput: the id is not a valid topic level or is reserved for a
                service (:func:`is_reserved_gateway_id`), or the label is too long.
            AlreadyExists: a gateway with this id exists.
        """
        _check_gateway_id(gateway_id)
        _check_text(label, "label", MAX_LABEL_LENGTH)
        if self._session.get(Gateway, gateway_id) is not None:
            raise AlreadyExists("gateway", gateway_id)
        row = Gateway(id=gateway_id, label=label, created_at=self._clock(), active=True)
        self._session.add(row)
        _flush_or_already_exists(self._session, "gateway", gateway_id)
        return _gateway_record(row)

    def get(self, gateway_id: str) -> GatewayRecord:
        """The gateway with this id.

        Raises:
            NotFound: there is none.
        """
        return _gateway_record(self._row(gateway_id))

    def set_active(self, gateway_id: str, active: bool) -> GatewayRecord:
        """Activate or deactivate a gateway (a deactivated gateway's readings are refused).

        Raises:
            NotFound: there is no such gateway.
        """
        row = self._row(gateway_id)
        row.active = active
        self._session.flush()
        return _gateway_record(row)

    def _row(self, gateway_id: str) -> Gateway:
        row = self._session.get(Gateway, gateway_id)
        if row is None:
            raise NotFound("gateway", gateway_id)
        return row


class PatientRepository:
    """Patients: opaque ids with a display label and a time zone."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def add(
        self,
        patient_id: str,
        display_name: str | None = None,
        time_zone: str = DEFAULT_PATIENT_TIME_ZONE,
    ) -> PatientRecord:
        """Register a patient.

        Args:
            patient_id: opaque id (never a name or an identity-card number: it travels in
                every reading and appears in topics and logs of other systems).
            display_name: how the care team refers to the patient; optional.
            time_zone: IANA zone of the patient's home, for daily summaries.

        Raises:
            InvalidRegistryInput: bad id, over-long name, or unknown time zone.
            AlreadyExists: a patient with this id exists.
        """
        _check_id(patient_id, "patient_id")
        if display_name is not None:
            _check_text(display_name, "display_name", MAX_LABEL_LENGTH)
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidRegistryInput(
                "time_zone", f"unknown IANA time zone {time_zone!r} (e.g. Asia/Shanghai)"
            ) from exc
        if self._session.get(Patient, patient_id) is not None:
            raise AlreadyExists("patient", patient_id)
        row = Patient(
            id=patient_id,
            display_name=display_name,
            time_zone=time_zone,
            created_at=self._clock(),
        )
        self._session.add(row)
        _flush_or_already_exists(self._session, "patient", patient_id)
        return _patient_record(row)

    def get(self, patient_id: str) -> PatientRecord:
        """The patient with this id.

        Raises:
            NotFound: there is none.
        """
        row = self._session.get(Patient, patient_id)
        if row is None:
            raise NotFound("patient", patient_id)
        return _patient_record(row)


class DeviceRepository:
    """Devices and their pairings with gateways and patients (see the module docstring)."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def get(self, device_id: str) -> DeviceRecord:
        """The device with this id.

        Raises:
            NotFound: there is none.
        """
        row = self._session.get(Device, device_id)
        if row is None:
            raise NotFound("device", device_id)
        return _device_record(row)

    def bind(
        self,
        device_id: str,
        gateway_id: str,
        patient_id: str,
        at: datetime | None = None,
        *,
        history_since: datetime | None = None,
        manufacturer: str | None = None,
        model: str | None = None,
        serial: str | None = None,
        profile: str | None = None,
    ) -> BindResult:
        """Bind a device to a patient through a gateway from ``at`` (default: now) on.

        ``history_since`` decides which of the readings already in the device's memory are
        the patient's: those measured from then on. By default none are (``at`` itself),
        except when the device moves to another gateway of the same patient, where the
        previous pairing's decision carries over. Given for the device's current binding,
        it changes only that decision.

        An unknown device is registered on the way. Its manufacturer, model and serial
        default to the three parts of its id; when given, they must produce that id
        (:func:`readings.identity.device_identity`), so the stored names are the device's
        own spelling of the id. ``profile`` (a ``firmware_configs`` profile) is updated when
        given.

        Raises:
            InvalidRegistryInput: bad ids, parts that do not match the id, an inactive
                gateway, an ``at`` that overlaps the device's pairing history, or a
                ``history_since`` after the binding's start or before the end of the
                device's pairing with another patient.
            NotFound: the gateway or the patient does not exist.
            DeviceAlreadyBound: the device is bound to another patient.
            AlreadyExists: another transaction bound the device at the same moment.
        """
        _check_device_id(device_id)
        _check_id(gateway_id, "gateway_id")
        _check_id(patient_id, "patient_id")
        start = self._clock() if at is None else aware_utc(at, "at")
        since = None if history_since is None else aware_utc(history_since, "history_since")
        parts = self._device_parts(device_id, manufacturer, model, serial)
        if profile is not None:
            _check_text(profile, "profile", MAX_PROFILE_LENGTH)

        gateway = self._session.get(Gateway, gateway_id)
        if gateway is None:
            raise NotFound("gateway", gateway_id)
        if not gateway.active:
            raise InvalidRegistryInput(
                "gateway_id", f"gateway {gateway_id!r} is deactivated: activate it first"
            )
        if self._session.get(Patient, patient_id) is None:
            raise NotFound("patient", patient_id)

        device = self._session.get(Device, device_id)
        device_created = device is None
        if device is None:
            device = Device(
                id=device_id,
                manufacturer=parts[0],
                model=parts[1],
                serial=parts[2],
                profile=profile,
                created_at=self._clock(),
            )
            self._session.add(device)
            _flush_or_already_exists(
                self._session, "pairing", device_id, _concurrent_bind(device_id)
            )
        elif profile is not None:
            device.profile = profile

        history = self._history_rows(device_id)
        current = next((row for row in history if row.valid_to is None), None)
        closed: PairingRecord | None = None
        if current is not None:
            if current.gateway_id == gateway_id and current.patient_id == patient_id:
                changed = since is not None and since != current.history_since
                if since is not None and changed:
                    _check_history_since(since, current.valid_from, history, patient_id)
                    current.history_since = since
                self._session.flush()
                return BindResult(
                    pairing=_pairing_record(current),
                    created=False,
                    closed=None,
                    device_created=False,
                    history_changed=changed,
                )
            if current.patient_id != patient_id:
                raise DeviceAlreadyBound(device_id, current.valid_from.isoformat())
            if start <= current.valid_from:
                raise InvalidRegistryInput(
                    "at",
                    f"must be after the current pairing's start {current.valid_from.isoformat()}",
                )
            if since is None:
                since = current.history_since
            current.valid_to = start
            closed = _pairing_record(current)
            # Close before opening: the unique index allows one open pairing per device.
            self._session.flush()
        else:
            ends = [row.valid_to for row in history if row.valid_to is not None]
            if ends and start < max(ends):
                raise InvalidRegistryInput(
                    "at",
                    f"overlaps the device's previous pairing, which ended {max(ends).isoformat()}",
                )
        if since is None:
            since = start
        _check_history_since(since, start, history, patient_id)

        pairing = DevicePairing(
            device_id=device_id,
            gateway_id=gateway_id,
            patient_id=patient_id,
            valid_from=start,
            valid_to=None,
            history_since=since,
        )
        self._session.add(pairing)
        _flush_or_already_exists(self._session, "pairing", device_id, _concurrent_bind(device_id))
        return BindResult(
            pairing=_pairing_record(pairing),
            created=True,
            closed=closed,
            device_created=device_created,
        )

    def unbind(self, device_id: str, at: datetime | None = None) -> PairingRecord:
        """Close the device's current pairing at ``at`` (default: now).

        Returns:
            The closed pairing.

        Raises:
            NotFound: the device does not exist or has no current pairing.
            InvalidRegistryInput: ``at`` is not after the pairing's start.
        """
        _check_device_id(device_id)
        end = self._clock() if at is None else aware_utc(at, "at")
        if self._session.get(Device, device_id) is None:
            raise NotFound("device", device_id)
        current = self._session.scalars(
            select(DevicePairing).where(
                DevicePairing.device_id == device_id, DevicePairing.valid_to.is_(None)
            )
        ).one_or_none()
        if current is None:
            raise NotFound("pairing", device_id, f"device {device_id!r} is not bound")
        if end <= current.valid_from:
            raise InvalidRegistryInput(
                "at", f"must be after the pairing's start {current.valid_from.isoformat()}"
            )
        current.valid_to = end
        self._session.flush()
        return _pairing_record(current)

    def current_pairing(self, device_id: str) -> PairingRecord | None:
        """The device's open pairing, ``None`` if it is not bound."""
        row = self._session.scalars(
            select(DevicePairing).where(
                DevicePairing.device_id == device_id, DevicePairing.valid_to.is_(None)
            )
        ).one_or_none()
        return None if row is None else _pairing_record(row)

    def history(self, device_id: str) -> list[PairingRecord]:
        """Every pairing the device ever had, oldest first."""
        return [_pairing_record(row) for row in self._history_rows(device_id)]

    def pairings_of_gateway(self, gateway_id: str) -> list[PairingRecord]:
        """The gateway's current pairings (what it should be collecting), by device id."""
        return self.pairings(gateway_id=gateway_id)

    def pairings(
        self, *, gateway_id: str | None = None, include_history: bool = False
    ) -> list[PairingRecord]:
        """Pairings by device id then start; current ones only unless ``include_history``."""
        query = select(DevicePairing).order_by(DevicePairing.device_id, DevicePairing.valid_from)
        if gateway_id is not None:
            query = query.where(DevicePairing.gateway_id == gateway_id)
        if not include_history:
            query = query.where(DevicePairing.valid_to.is_(None))
        return [_pairing_record(row) for row in self._session.scalars(query)]

    def pairings_of_patient(self, patient_id: str) -> list[tuple[PairingRecord, DeviceRecord]]:
        """Every pairing a patient's devices ever had, newest first, with the device."""
        rows = self._session.execute(
            select(DevicePairing, Device)
            .join(Device, Device.id == DevicePairing.device_id)
            .where(DevicePairing.patient_id == patient_id)
            .order_by(DevicePairing.valid_from.desc(), DevicePairing.id.desc())
        ).all()
        return [(_pairing_record(pairing), _device_record(device)) for pairing, device in rows]

    def _history_rows(self, device_id: str) -> Sequence[DevicePairing]:
        return self._session.scalars(
            select(DevicePairing)
            .where(DevicePairing.device_id == device_id)
            .order_by(DevicePairing.valid_from)
        ).all()

    @staticmethod
    def _device_parts(
        device_id: str, manufacturer: str | None, model: str | None, serial: str | None
    ) -> tuple[str, str, str]:
        given = (manufacturer, model, serial)
        if all(part is None for part in given):
            first, second, third = device_id.split("-")
            return first, second, third
        if manufacturer is None or model is None or serial is None:
            raise InvalidRegistryInput(
                "device_id", "give manufacturer, model and serial together, or none of them"
            )
        for name, part in zip(("manufacturer", "model", "serial"), given, strict=True):
            _check_text(part or "", name, MAX_DEVICE_PART_LENGTH)
        try:
            expected = device_identity(manufacturer, model, serial)
        except ValueError as exc:
            raise InvalidRegistryInput("device_id", str(exc)) from exc
        if expected != device_id:
            raise InvalidRegistryInput(
                "device_id",
                f"manufacturer, model and serial give the id {expected!r}, not {device_id!r}",
            )
        return manufacturer, model, serial
