"""Pairing: which device belongs to which patient, and the window in which new ones may join.

A pairing binds a device — by the identity it **reports** (manufacturer-model-serial read
from the device, never a BLE address, which may be random) — to a patient, a device
profile, the transport address it is reached at and the patient's time zone. Pairings
live in a small SQLite database in the gateway's data directory (``pairings.db``), next to
each device's last known state for ``vitalgate gateway devices``.

Display-less meters pair "Just Works", without protection against a man in the middle
(docs/gateway-runtime.md, *Pairing*). The gateway therefore pairs only inside a short
**pairing window**, opened by the operator (``vitalgate gateway pair``) or by the clinic
(``cmd/pair``), and refuses readings from devices it has not paired: a session checks the
device's reported identity against the pairing on every connection, and readings of a
device unpaired meanwhile are dropped and counted. Finding and identifying candidates is
:mod:`gateway.discovery`, shared by the window and the CLI.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device_drivers.base import DeviceInfo, Driver
from device_drivers.errors import DriverError
from device_drivers.profiles import DeviceProfile
from gateway.errors import PairingError
from readings.codec import MAX_PAIRING_WINDOW_SECONDS

if TYPE_CHECKING:
    from device_drivers.transports.ble import Advertisement

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MILLISECONDS: Final = 5_000
"""The CLI (``vitalgate gateway devices``) reads while the gateway writes; WAL lets it,
and a short wait covers a checkpoint."""

PAIRING_DEADLINE_SECONDS: Final = 90.0
"""Connecting to a device and reading its identity: the BLE transport's 45 s connect
deadline, a bonding prompt on the device, and the Device Information reads."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS pairings (
    device_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    address TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    paired_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_state (
    device_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_contact TEXT,
    battery_percent INTEGER,
    updated_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Pairing:
    """One device bound to one patient.

    Attributes:
        device_id: the identity the device reported (``manufacturer-model-serial``).
        patient_id: the patient its readings belong to.
        profile_id: the device model (a ``firmware_configs`` profile id).
        address: how the gateway reaches it: a BLE address, or a serial port path or URL.
        time_zone: the patient's IANA time zone; device wall clocks are read in it.
        paired_at: when it was paired (UTC).
    """

    device_id: str
    patient_id: str
    profile_id: str
    address: str
    time_zone: str
    paired_at: datetime

    @property
    def zone(self) -> ZoneInfo:
        """The patient's time zone."""
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's last known state, as the running gateway recorded it."""

    device_id: str
    state: str
    last_contact: datetime | None
    battery_percent: int | None
    updated_at: datetime


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("pairing times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


class PairingStore:
    """The pairings of one gateway, in SQLite (WAL, ``synchronous=FULL``). Thread-safe.

    Args:
        path: the database file (created with its directory if missing).
        clock: the current time, timezone-aware.

    Raises:
        PairingError: the file cannot be opened or was written by a newer schema.
    """

    def __init__(self, path: Path | str, *, clock: Clock) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                self._db.close()
                raise PairingError(
                    f"{self.path}: schema version {version} was written by a newer gateway; "
                    "run that release or move the file aside and pair the devices again"
                )
            if version == 0:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
        except (OSError, sqlite3.Error) as exc:
            raise PairingError(f"cannot open the pairings database {self.path}: {exc}") from exc

    def bind(
        self,
        info: DeviceInfo,
        *,
        patient_id: str,
        profile_id: str,
        address: str,
        time_zone: str,
    ) -> Pairing:
        """Bind the device that reported ``info`` to ``patient_id``.

        Pairing the same device to the same patient again updates its address, profile and
        time zone (a meter moved to another cable, a patient who moved).

        Raises:
            PairingError: the device is paired to another patient (unpair it first: a
                meter changing hands must be a deliberate act), or the time zone is unknown.
        """
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PairingError(f"{time_zone!r} is not a known IANA time zone") from None
        device_id = info.device_id
        pairing = Pairing(
            device_id=device_id,
            patient_id=patient_id,
            profile_id=profile_id,
            address=address,
            time_zone=time_zone,
            paired_at=self._clock(),
        )
        with self._lock, self._transaction() as db:
            row = db.execute(
                "SELECT patient_id FROM pairings WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is not None and row[0] != patient_id:
                raise PairingError(
                    "is paired to another patient; unpair it first "
                    f"(vitalgate gateway unpair {device_id})",
                    device_id=device_id,
                )
            db.execute(
                "INSERT INTO pairings (device_id, patient_id, profile_id, address, time_zone,"
                " paired_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " profile_id = excluded.profile_id, address = excluded.address,"
                " time_zone = excluded.time_zone",
                (device_id, patient_id, profile_id, address, time_zone, _iso(pairing.paired_at)),
            )
        stored = self.get(device_id)
        assert stored is not None
        return stored

    def unbind(self, device_id: str) -> Pairing | None:
        """Forget a device; returns the pairing that was removed, or ``None``."""
        with self._lock, self._transaction() as db:
            pairing = self._get(db, device_id)
            db.execute("DELETE FROM pairings WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM device_state WHERE device_id = ?", (device_id,))
        return pairing

    def get(self, device_id: str) -> Pairing | None:
        """The pairing of ``device_id``, if it is paired."""
        with self._lock:
            return self._get(self._db, device_id)

    def patient_of(self, device_id: str) -> str | None:
        """The patient ``device_id`` is bound to, or ``None`` when it is not paired."""
        pairing = self.get(device_id)
        return pairing.patient_id if pairing is not None else None

    def all(self) -> list[Pairing]:
        """Every pairing, by device id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, patient_id, profile_id, address, time_zone, paired_at"
                " FROM pairings ORDER BY device_id"
            ).fetchall()
        return [_pairing(row) for row in rows]

    def record_state(
        self,
        device_id: str,
        *,
        state: str,
        last_contact: datetime | None,
        battery_percent: int | None,
    ) -> None:
        """Remember a device's state for ``vitalgate gateway devices`` (best effort)."""
        with self._lock, self._transaction() as db:
            db.execute(
                "INSERT INTO device_state (device_id, state, last_contact, battery_percent,"
                " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " state = excluded.state, last_contact = excluded.last_contact,"
                " battery_percent = excluded.battery_percent, updated_at = excluded.updated_at",
                (
                    device_id,
                    state,
                    _iso(last_contact) if last_contact is not None else None,
                    battery_percent,
                    _iso(self._clock()),
                ),
            )

    def states(self) -> dict[str, DeviceState]:
        """The last recorded state of every device, by device id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, state, last_contact, battery_percent, updated_at"
                " FROM device_state"
            ).fetchall()
        return {
            row[0]: DeviceState(
                device_id=row[0],
                state=row[1],
                last_contact=datetime.fromisoformat(row[2]) if row[2] is not None else None,
                battery_percent=row[3],
                updated_at=datetime.fromisoformat(row[4]),
            )
            for row in rows
        }

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _get(db: sqlite3.Connection, device_id: str) -> Pairing | None:
        row = db.execute(
            "SELECT device_id, patient_id, profile_id, address, time_zone, paired_at"
            " FROM pairings WHERE device_id = ?",
            (device_id,),
        ).fetchone()
        return _pairing(row) if row is not None else None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error; SQLite errors become
    :class:`PairingError`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise PairingError(f"pairings database {self._path}: {exc}") from exc
        return self._db

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise PairingError(f"pairings database {self._path}: {exc}") from exc
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise PairingError(f"pairings database {self._path}: {error}") from error


def _pairing(row: Sequence[str]) -> Pairing:
    return Pairing(
        device_id=row[0],
        patient_id=row[1],
        profile_id=row[2],
        address=row[3],
        time_zone=row[4],
        paired_at=datetime.fromisoformat(row[5]),
    )


@dataclass(frozen=True, slots=True)
class OpenWindow:
    """A pairing window: new devices found until ``closes_at`` are bound to ``patient_id``.

    Attributes:
        patient_id: the patient new devices are bound to.
        profile_id: only devices of this model, or any model when ``None``.
        time_zone: the patient's time zone, or ``None`` for the gateway's default.
        opened_at: when it opened (UTC).
        closes_at: when it closes (UTC).
    """

    patient_id: str
    profile_id: str | None
    time_zone: str | None
    opened_at: datetime
    closes_at: datetime

    def remaining_seconds(self, now: datetime) -> float:
        """Seconds until it closes (0 when closed)."""
        return max(0.0, (self.closes_at - now).total_seconds())


class PairingWindow:
    """The gateway's one pairing window; opening it again replaces it.

    Args:
        clock: the current time, timezone-aware.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._window: OpenWindow | None = None

    def open(
        self,
        *,
        patient_id: str,
        seconds: float,
        profile_id: str | None = None,
        time_zone: str | None = None,
    ) -> OpenWindow:
        """Open (or re-open) the window for ``seconds``.

        Raises:
            PairingError: ``seconds`` is not within 1 s .. 15 minutes.
        """
        if not 1 <= seconds <= MAX_PAIRING_WINDOW_SECONDS:
            raise PairingError(
                f"a pairing window lasts 1 to {MAX_PAIRING_WINDOW_SECONDS} s, not {seconds}: "
                "a Just-Works meter must not stay pairable for long"
            )
        now = self._clock()
        self._window = OpenWindow(
            patient_id=patient_id,
            profile_id=profile_id,
            time_zone=time_zone,
            opened_at=now,
            closes_at=now + timedelta(seconds=seconds),
        )
        return self._window

    def current(self) -> OpenWindow | None:
        """The open window, or ``None`` when none is open (or it has expired)."""
        window = self._window
        if window is not None and self._clock() >= window.closes_at:
            self._window = None
            return None
        return window

    def admits(self, profile_id: str) -> OpenWindow | None:
        """The open window if a device of ``profile_id`` may be paired in it now."""
        window = self.current()
        if window is None or (window.profile_id is not None and window.profile_id != profile_id):
            return None
        return window

    def close(self) -> OpenWindow | None:
        """Close the window early; returns the window that was open, if any."""
        window, self._window = self.current(), None
        return window


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device that could be paired: seen advertising, or a serial port, and its model.

    Attributes:
        address: BLE address or serial port path/URL.
        profile: the device model it looks like.
        name: the advertised name, if any.
        rssi: signal strength in dBm (BLE only).
        advertisement: the scan result, so a BLE connect need not scan again.
    """

    address: str
    profile: DeviceProfile
    name: str | None = None
    rssi: int | None = None
    advertisement: Advertisement | None = None


def match_advertisements(
    advertisements: Sequence[Advertisement],
    profiles: Sequence[DeviceProfile],
    *,
    profile_id: str | None = None,
) -> list[Candidate]:
    """The advertisements that look like a known device model, strongest signal first.

    Args:
        advertisements: what a scan heard.
        profiles: the known device models.
        profile_id: only this model, when given.
    """
    candidates = []
    for advertisement in advertisements:
        for profile in profiles:
            if profile_id is not None and profile.profile_id != profile_id:
                continue
            if profile.matches_advertisement(advertisement.local_name, advertisement.service_uuids):
                candidates.append(
                    Candidate(
                        address=advertisement.address,
                        profile=profile,
                        name=advertisement.local_name,
                        rssi=advertisement.rssi,
                        advertisement=advertisement,
                    )
                )
                break
    return sorted(candidates, key=lambda c: -(c.rssi if c.rssi is not None else -1000))


async def read_identity(driver: Driver) -> DeviceInfo:
    """Connect to a device, read who it says it is, and disconnect.

    The caller bounds the time (:data:`PAIRING_DEADLINE_SECONDS`).

    Raises:
        PairingError: the device could not be reached or gave no usable identity.
    """
    try:
        await driver.connect()
        try:
            return await driver.read_device_info()
        finally:
            await driver.disconnect()
    except DriverError as exc:
        raise PairingError(f"cannot read the device's identity: {exc}") from exc
