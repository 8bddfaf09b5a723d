"""Device profiles: one TOML file per supported device model, validated on load.

A profile is data, not code: how to find the device (advertised services and name
patterns, or the serial cable's USB id), how to talk to it (BLE, or serial line settings),
which driver speaks its protocol, the units it sends, its quirks, and which simulator
stands in for it in ``--simulate`` mode. A new model of a known protocol is one file in
``firmware_configs/``; ``firmware_configs/README.md`` documents the keys.

Errors name the file and the key, e.g.
``firmware_configs/omron_hem7361t.toml: transport.baud: Input should be greater than 0``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from device_drivers import DRIVERS
from device_drivers.errors import DriverError, UnsupportedCharacteristic
from device_drivers.gatt.uuids import normalize_uuid
from readings.model import READING_CLASSES, Kind
from readings.units import Unit

PROFILE_SUFFIX: Final = ".toml"
CONFIG_EXAMPLE_SUFFIX: Final = ".example.toml"
"""Gateway configuration examples share the folder (``gateway.example.toml``); they are
not device profiles."""

BLE_CONNECT_DEADLINE_SECONDS: Final = 45.0
"""Total time for all connect attempts to a BLE device. Home meters and cuffs advertise for
only a minute or two after a measurement; the download must fit in that window too."""
_USB_ID_RE: Final = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


class ProfileError(DriverError):
    """A profile file that cannot be used.

    Attributes:
        path: the file, as shown to the operator.
        key: dotted key of the first offending entry (``transport.baud``), or ``None``
            when the file as a whole is unreadable.
        problems: every ``key: problem`` line found in the file.
    """

    def __init__(self, path: str, key: str | None, problems: Sequence[str]) -> None:
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))
        self.path = path
        self.key = key
        self.problems = tuple(problems)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BleTransportSettings(_Section):
    """How a BLE device is found and reached."""

    kind: Literal["ble"]
    service_uuids: tuple[str, ...] = Field(min_length=1)
    """Services the device advertises (any one matches); 16-bit or 128-bit UUIDs."""
    name_patterns: tuple[str, ...] = ()
    """Regular expressions matched (``re.fullmatch``) against the advertised local name."""
    connect_timeout_seconds: float = Field(default=BLE_CONNECT_DEADLINE_SECONDS, gt=0)
    """Total connect deadline, retries included."""

    @field_validator("service_uuids")
    @classmethod
    def _normalise_uuids(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(normalize_uuid(value) for value in values)
        except UnsupportedCharacteristic as exc:
            raise ValueError(str(exc)) from None

    @field_validator("name_patterns")
    @classmethod
    def _compile_patterns(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return values


class SerialParity(StrEnum):
    """Parity as pyserial spells it."""

    NONE = "N"
    EVEN = "E"
    ODD = "O"
    MARK = "M"
    SPACE = "S"


class SerialTransportSettings(_Section):
    """Line settings of a serial (RS-232 or USB-serial) meter."""

    kind: Literal["serial"]
    baud: int = Field(gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: SerialParity = SerialParity.NONE
    stopbits: float = 1
    """1, 1.5 or 2."""
    read_timeout_seconds: float = Field(gt=0)
    """How long to wait for a reply line before the meter counts as silent."""
    write_timeout_seconds: float = Field(gt=0)
    usb_ids: tuple[str, ...] = ()
    """``vendor:product`` ids (lower-case hex) of the cables that carry this meter."""

    @field_validator("stopbits")
    @classmethod
    def _check_stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError(f"{value} stop bits: must be 1, 1.5 or 2")
        return value

    @field_validator("usb_ids")
    @classmethod
    def _check_usb_ids(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _USB_ID_RE.match(value):
                raise ValueError(f"{value!r} is not a USB id like '067b:2303'")
        return values


class RacpOperator(StrEnum):
    """Record Access Control Point operators (``docs/devices.md``, RACP), by name."""

    ALL = "all"
    LESS_OR_EQUAL = "less_or_equal"
    GREATER_OR_EQUAL = "greater_or_equal"
    WITHIN_RANGE = "within_range"
    FIRST = "first"
    LAST = "last"


class Quirks(_Section):
    """What this model does differently from the letter of its protocol."""

    clock_settable: bool = False
    """The device accepts a clock write (Current Time, serial set-clock command)."""
    racp_operators: frozenset[RacpOperator] | None = None
    """RACP operators the device implements; ``None`` when it has no RACP. Drivers never
    send an operator outside this set."""
    racp_reports_count: bool = True
    """The device answers "report number of stored records" (``04 01``)."""
    needs_bonding: bool = False
    """Notifications and RACP need an encrypted, bonded link."""
    max_stored_records: int | None = Field(default=None, gt=0)
    """Memory capacity; older records are overwritten (the sequence keeps counting)."""
    cgm_e2e_crc: bool = False
    """CGM records carry the E2E-CRC."""


class SimulatorSettings(_Section):
    """Which simulator serves this model in ``--simulate`` mode, and as what."""

    kind: str = Field(min_length=1)
    """Simulator name, e.g. ``ble_glucose_meter`` or ``serial_onetouch_ultra2``."""
    serial: str = Field(min_length=1)
    """Serial number the simulated device reports."""
    firmware: str = "1.0.0"
    local_name: str | None = None
    """Advertised name of the simulated BLE device; must match ``transport.name_patterns``."""


class DeviceProfile(_Section):
    """One supported device model.

    Attributes:
        profile_id: the file name without ``.toml``; how configs refer to the model.
        source: the file it was loaded from.
    """

    profile_id: str
    source: str
    manufacturer: str = Field(min_length=1)
    model: str = Field(min_length=1)
    driver: str = Field(min_length=1)
    """Name of the driver module (``device_drivers.<driver>``)."""
    kinds: tuple[Kind, ...] = Field(min_length=1)
    """What the device measures."""
    description: str = ""
    transport: Annotated[
        BleTransportSettings | SerialTransportSettings, Field(discriminator="kind")
    ]
    units: Mapping[Kind, Unit] = Field(default_factory=dict)
    """Unit the device sends, per kind it measures."""
    quirks: Quirks = Quirks()
    simulator: SimulatorSettings | None = None

    @field_validator("driver")
    @classmethod
    def _check_driver(cls, name: str) -> str:
        if name not in DRIVERS:
            raise ValueError(f"no driver named {name!r}; known: {', '.join(sorted(DRIVERS))}")
        return name

    @field_validator("transport")
    @classmethod
    def _check_driver_transport(
        cls, transport: BleTransportSettings | SerialTransportSettings, info: ValidationInfo
    ) -> BleTransportSettings | SerialTransportSettings:
        entry = DRIVERS.get(info.data.get("driver", ""))
        if entry is not None and entry.transport != transport.kind:
            raise ValueError(
                f"driver {info.data['driver']!r} talks over {entry.transport}, not {transport.kind}"
            )
        return transport

    @field_validator("units")
    @classmethod
    def _check_units(cls, units: Mapping[Kind, Unit], info: ValidationInfo) -> Mapping[Kind, Unit]:
        kinds = info.data.get("kinds", ())
        for kind, unit in units.items():
            if kind not in kinds:
                raise ValueError(f"{kind}: the profile does not measure {kind}")
            allowed = READING_CLASSES[kind].UNITS_ALLOWED
            if unit not in allowed:
                raise ValueError(
                    f"{kind}: {unit} is not a unit of {kind} (one of {', '.join(sorted(allowed))})"
                )
        return units

    @field_validator("simulator")
    @classmethod
    def _check_simulated_name(
        cls, simulator: SimulatorSettings | None, info: ValidationInfo
    ) -> SimulatorSettings | None:
        transport = info.data.get("transport")
        if simulator is None or not isinstance(transport, BleTransportSettings):
            return simulator
        patterns = transport.name_patterns
        name = simulator.local_name
        if patterns and (name is None or not any(re.fullmatch(p, name) for p in patterns)):
            raise ValueError(
                f"local_name {name!r} does not match transport.name_patterns, "
                "so a scan would not recognise the simulated device"
            )
        return simulator

    @property
    def is_ble(self) -> bool:
        """Whether the device is reached over Bluetooth LE."""
        return isinstance(self.transport, BleTransportSettings)

    def matches_advertisement(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        """Whether an advertisement looks like this model.

        A match needs one of the profile's services in the advertisement and, when the
        profile lists name patterns, a local name matching one of them.
        """
        if not isinstance(self.transport, BleTransportSettings):
            return False
        advertised = {normalize_uuid(uuid) for uuid in service_uuids}
        if advertised.isdisjoint(self.transport.service_uuids):
            return False
        if not self.transport.name_patterns:
            return True
        return local_name is not None and any(
            re.fullmatch(pattern, local_name) for pattern in self.transport.name_patterns
        )


def default_profile_directory() -> Path:
    """The profiles shipped with VitalGate (the ``firmware_configs`` package)."""
    import firmware_configs

    return Path(firmware_configs.__file__).parent


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shipped = default_profile_directory().resolve()
        if path.resolve().is_relative_to(shipped):
            return f"{shipped.name}/{path.resolve().relative_to(shipped)}"
        return str(path)


def _key(location: tuple[int | str, ...]) -> str:
    # Pydantic puts the discriminator value into the location of a tagged union member
    # (``transport.serial.baud``); the operator wrote ``transport.baud``.
    parts = [str(part) for part in location]
    if len(parts) >= 2 and parts[0] == "transport" and parts[1] in ("ble", "serial"):
        del parts[1]
    return ".".join(parts) if parts else "(file)"


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    return [
        (_key(tuple(detail["loc"])), str(detail["msg"]).removeprefix("Value error, "))
        for detail in error.errors()
    ]


def load_profile(path: Path | str) -> DeviceProfile:
    """Read and validate one profile file.

    Raises:
        ProfileError: the file is missing, not TOML, or breaks the schema; the message
            names the file and every offending key.
    """
    file = Path(path)
    shown = _display(file)
    try:
        document: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(shown, None, [f"cannot read: {exc.strerror}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(shown, None, [f"not valid TOML: {exc}"]) from exc
    for reserved in ("profile_id", "source"):
        if reserved in document:
            raise ProfileError(
                shown, reserved, [f"{reserved}: set from the file name, do not write it"]
            )
    try:
        return DeviceProfile.model_validate({**document, "profile_id": file.stem, "source": shown})
    except ValidationError as exc:
        problems = _problems(exc)
        raise ProfileError(
            shown, problems[0][0], [f"{key}: {message}" for key, message in problems]
        ) from None


def load_profiles(directory: Path | str | None = None) -> list[DeviceProfile]:
    """Every profile in ``directory`` (default: the shipped ``firmware_configs``), by id.

    Every ``*.toml`` is a profile except configuration examples (``*.example.toml``).

    Raises:
        ProfileError: a file is invalid (the first one found, in name order).
    """
    folder = Path(directory) if directory is not None else default_profile_directory()
    return [
        load_profile(path)
        for path in sorted(folder.glob(f"*{PROFILE_SUFFIX}"))
        if not path.name.endswith(CONFIG_EXAMPLE_SUFFIX)
    ]


def find_profile(profile_id: str, directory: Path | str | None = None) -> DeviceProfile:
    """The profile named ``profile_id`` (its file name without ``.toml``).

    Raises:
        ProfileError: no such profile, or it is invalid.
    """
    folder = Path(directory) if directory is not None else default_profile_directory()
    path = folder / f"{profile_id}{PROFILE_SUFFIX}"
    if not path.is_file():
        known = ", ".join(profile.profile_id for profile in load_profiles(folder))
        raise ProfileError(_display(path), None, [f"no such profile; known: {known}"])
    return load_profile(path)
