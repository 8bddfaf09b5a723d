"""Simulated devices for the demo and the tests (``[[simulators]]`` in the configuration).

BLE ones share one virtual radio (:class:`~device_drivers.simulators.ble_home.SimulatedHome`),
serial ones get pseudo-terminals; each keeps the wall clock of its patient's time zone,
as a meter set by its owner does. The runtime pairs them to their patients itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

from device_drivers.profiles import DeviceProfile, ProfileError, load_profiles
from device_drivers.simulators.scenario import (
    GLUCOSE_NEWEST_SECONDS_AGO,
    Scenario,
    ScenarioError,
    ValueSeries,
)
from gateway.config import GatewaySettings, SimulatedDevice
from gateway.errors import ConfigError
from gateway.links import BleBackends
from readings.model import Kind

if TYPE_CHECKING:
    from device_drivers.simulators.ble_home import SimulatedHome
    from device_drivers.simulators.serial_meters import PtyMeterSimulator

DEFAULT_SERIAL_SIMULATION_INTERVAL_SECONDS: Final = 600.0
"""A simulated serial meter takes a new measurement every ten minutes."""


def serial_demo_scenario() -> Scenario:
    """A serial meter's day: a week of history in memory (the newest taken just before the
    start, as the BLE meters'), then a measurement every ten minutes."""
    history = ValueSeries(
        start_offset_seconds=-GLUCOSE_NEWEST_SECONDS_AGO - 20 * 8 * 3600.0,
        interval_seconds=8 * 3600.0,
        count=21,
        values={"glucose": 7.0},
        jitter={"glucose": 2.5},
        kind=Kind.GLUCOSE,
        seed=1,
        context={"meal": "preprandial"},
    )
    live = ValueSeries(
        start_offset_seconds=DEFAULT_SERIAL_SIMULATION_INTERVAL_SECONDS,
        interval_seconds=DEFAULT_SERIAL_SIMULATION_INTERVAL_SECONDS,
        count=144,
        values={"glucose": 7.0},
        jitter={"glucose": 2.5},
        kind=Kind.GLUCOSE,
        seed=2,
    )
    return Scenario(series=(history, live))


class Simulation:
    """The simulated devices of ``[[simulators]]``: BLE ones on one virtual radio, serial
    ones on pseudo-terminals. Each follows its scenario with a clock in its patient's zone.

    Args:
        entries: the simulated devices.
        profiles: every known profile, by id.
        default_zone: the zone of entries without their own.
    """

    def __init__(
        self,
        entries: Sequence[SimulatedDevice],
        profiles: Mapping[str, DeviceProfile],
        default_zone: str,
    ) -> None:
        self._entries = tuple(entries)
        self._profiles = profiles
        self._default_zone = default_zone
        self._home: SimulatedHome | None = None
        self._serial: list[PtyMeterSimulator] = []
        self.addresses: dict[str, str] = {}
        """Address of each simulated device, by profile id."""

    def zone_of(self, entry: SimulatedDevice) -> str:
        """The time zone of a simulated device's patient."""
        return entry.time_zone or self._default_zone

    def profile_of(self, entry: SimulatedDevice) -> DeviceProfile:
        """The profile a simulated device follows.

        Raises:
            ConfigError: unknown profile, or one without a simulator.
        """
        profile = self._profiles.get(entry.profile)
        if profile is None:
            known = ", ".join(sorted(self._profiles))
            raise ConfigError("simulators.profile", f"no profile {entry.profile!r}; known: {known}")
        if profile.simulator is None:
            raise ConfigError(
                "simulators.profile", f"profile {entry.profile!r} has no [simulator] section"
            )
        return profile

    @property
    def ble(self) -> BleBackends | None:
        """The backends that reach the simulated BLE devices, if any were started."""
        if self._home is None:
            return None
        return BleBackends(client=self._home.client_backend, scanner=self._home.scanner_backend)

    async def start(self) -> None:
        """Start every simulated device.

        Raises:
            ConfigError: a profile is unknown or unsimulated, a profile appears twice, or
                BLE devices disagree on the time zone (they share one radio and clock).
        """
        seen: set[str] = set()
        ble_entries: list[tuple[SimulatedDevice, DeviceProfile]] = []
        for entry in self._entries:
            profile = self.profile_of(entry)
            if profile.profile_id in seen:
                raise ConfigError(
                    "simulators.profile",
                    f"{profile.profile_id!r} is simulated twice; one device per model",
                )
            seen.add(profile.profile_id)
            if profile.is_ble:
                ble_entries.append((entry, profile))
            else:
                self._start_serial(entry, profile, self._scenario(entry) or serial_demo_scenario())
        if ble_entries:
            zones = {self.zone_of(entry) for entry, _ in ble_entries}
            if len(zones) > 1:
                raise ConfigError(
                    "simulators.time_zone",
                    "simulated BLE devices share one radio and one clock; give them one zone",
                )
            from device_drivers.simulators.ble_home import SimulatedHome

            scenarios: dict[str, Scenario] = {}
            for entry, profile in ble_entries:
                scenario = self._scenario(entry)
                if scenario is not None:
                    scenarios[profile.profile_id] = scenario
            self._home = SimulatedHome(
                [profile for _, profile in ble_entries],
                scenarios=scenarios,
                now=_wall_clock(zones.pop()),
            )
            await self._home.start()
            for profile_id, device in self._home.devices.items():
                self.addresses[profile_id] = device.address

    def _scenario(self, entry: SimulatedDevice) -> Scenario | None:
        try:
            if entry.scenario_file is not None:
                return Scenario.from_toml(entry.scenario_file)
            if entry.scenario:
                return Scenario.from_dict(entry.scenario)
        except ScenarioError as exc:
            raise ConfigError(
                f"simulators.scenario.{exc.field.removeprefix('$.')}", exc.problem
            ) from exc
        return None

    def _start_serial(
        self, entry: SimulatedDevice, profile: DeviceProfile, scenario: Scenario
    ) -> None:
        from device_drivers.simulators import serial_meters

        assert profile.simulator is not None
        clock = _wall_clock(self.zone_of(entry))
        kind = profile.simulator.kind
        simulator: PtyMeterSimulator
        if kind == "serial_onetouch_ultra2":
            simulator = serial_meters.start_onetouch_ultra2(
                scenario, serial_number=profile.simulator.serial, clock=clock
            )
        elif kind == "serial_contour":
            simulator = serial_meters.start_contour(
                scenario, serial_number=profile.simulator.serial, clock=clock
            )
        else:
            raise ConfigError(
                "simulators.profile", f"{profile.profile_id!r}: unknown simulator kind {kind!r}"
            )
        self._serial.append(simulator)
        self.addresses[profile.profile_id] = simulator.port

    async def stop(self) -> None:
        """Stop every simulated device."""
        for simulator in self._serial:
            await asyncio.to_thread(simulator.close)
        self._serial.clear()
        if self._home is not None:
            await self._home.stop()
            self._home = None


def _wall_clock(zone_name: str) -> Callable[[], datetime]:
    zone = ZoneInfo(zone_name)

    def now() -> datetime:
        return datetime.now(zone).replace(tzinfo=None)

    return now


def simulate_every_device(settings: GatewaySettings, patient_id: str) -> GatewaySettings:
    """``settings`` with a simulated device of every model that has a simulator, all bound
    to ``patient_id`` (the demo), unless ``[[simulators]]`` already lists some.

    Raises:
        ConfigError: the profiles cannot be loaded.
    """
    if settings.simulators:
        return settings
    try:
        profiles = load_profiles(settings.profiles_dir)
    except ProfileError as exc:
        raise ConfigError("profiles_dir", str(exc)) from exc
    entries = tuple(
        SimulatedDevice(profile=profile.profile_id, patient_id=patient_id)
        for profile in profiles
        if profile.simulator is not None
    )
    return settings.model_copy(update={"simulators": entries})
