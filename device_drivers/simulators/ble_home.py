"""A simulated patient home: several BLE devices on one virtual link, for the demo and tests.

::

    async with SimulatedHome(load_profiles()) as home:
        for advertisement in await home.scan(1.0):
            ...
        driver = home.driver("roche_accu_chek_guide")
        await driver.connect()

Each BLE profile with a ``simulator`` section gets its simulator; the gateway reaches them
through bleak's public classes (``home.client_backend`` / ``home.scanner_backend``), so the
code path is the one used for real devices. Without an explicit scenario a device follows
:func:`demo_scenario`: some history in memory and a new measurement now and then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

from device_drivers import load_driver
from device_drivers.base import Driver
from device_drivers.profiles import DeviceProfile
from device_drivers.simulators.ble_blood_pressure_cuff import BloodPressureCuffSimulator
from device_drivers.simulators.ble_cgm import CgmSimulator
from device_drivers.simulators.ble_glucose_meter import GlucoseMeterSimulator
from device_drivers.simulators.ble_heart_rate_strap import HeartRateStrapSimulator
from device_drivers.simulators.ble_peripheral import (
    SimulatedPeripheral,
    SimulatorError,
)
from device_drivers.simulators.ble_pulse_oximeter import SPOT_CHECK_FLAG, PulseOximeterSimulator
from device_drivers.simulators.ble_thermometer import ThermometerSimulator
from device_drivers.simulators.ble_weight_scale import WeightScaleSimulator
from device_drivers.simulators.bleak_backend import BumbleClientBackend, BumbleScannerBackend
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import (
    GLUCOSE_NEWEST_SECONDS_AGO,
    Scenario,
    ScenarioRecord,
    ValueSeries,
    local_wall_clock,
)
from device_drivers.transports.ble import Advertisement, BleakTransport, scan
from readings.model import Kind

SIMULATORS: Final[Mapping[str, type[SimulatedPeripheral]]] = {
    simulator.simulator_kind: simulator
    for simulator in (
        GlucoseMeterSimulator,
        CgmSimulator,
        BloodPressureCuffSimulator,
        HeartRateStrapSimulator,
        WeightScaleSimulator,
        ThermometerSimulator,
        PulseOximeterSimulator,
    )
}
"""BLE simulator classes by the ``simulator.kind`` profiles name."""

DEMO_SECONDS: Final = 24 * 3600
"""How long a demo scenario keeps producing measurements."""
_HOUR_SECONDS: Final = 3600.0


def _history(
    kind: Kind,
    values: dict[str, float],
    jitter: dict[str, float],
    *,
    count: int,
    interval_seconds: float,
    newest_seconds_ago: float | None = None,
    **extra: Any,
) -> ValueSeries:
    """``count`` measurements already in memory, the newest ``newest_seconds_ago`` ago
    (default ``interval_seconds``)."""
    newest = interval_seconds if newest_seconds_ago is None else newest_seconds_ago
    return ValueSeries(
        start_offset_seconds=-newest - (count - 1) * interval_seconds,
        interval_seconds=interval_seconds,
        count=count,
        values=values,
        kind=kind,
        jitter=jitter,
        seed=1,
        **extra,
    )


def _live(
    kind: Kind,
    values: dict[str, float],
    jitter: dict[str, float],
    *,
    interval_seconds: float,
    **extra: Any,
) -> ValueSeries:
    """A new measurement every ``interval_seconds`` for the length of the demo."""
    return ValueSeries(
        start_offset_seconds=interval_seconds,
        interval_seconds=interval_seconds,
        count=int(DEMO_SECONDS // interval_seconds),
        values=values,
        kind=kind,
        jitter=jitter,
        seed=2,
        **extra,
    )


DEMO_HYPO_OFFSET_SECONDS: Final = 40.0
"""When the demo's glucose meter measures 2.8 mmol/L: soon enough to see the alert fire."""


def demo_scenario(profile: DeviceProfile) -> Scenario:
    """A day of plausible measurements for the demo: history in memory, then a new
    measurement every few minutes (every second for streaming devices).

    Raises:
        SimulatorError: the profile has no BLE simulator.
    """
    kind = profile.simulator.kind if profile.simulator is not None else ""
    series: tuple[ValueSeries, ...]
    records: tuple[ScenarioRecord, ...] = ()
    match kind:
        case "ble_glucose_meter":
            glucose = ({"glucose": 7.0}, {"glucose": 2.5})
            meal = {"meal": "preprandial"}
            series = (
                _history(
                    Kind.GLUCOSE,
                    *glucose,
                    count=30,
                    interval_seconds=8 * _HOUR_SECONDS,
                    newest_seconds_ago=GLUCOSE_NEWEST_SECONDS_AGO,
                    context=meal,
                ),
                _live(Kind.GLUCOSE, *glucose, interval_seconds=180.0, context=meal),
            )
            # The demo's clinical moment: a hypo shortly after the start (G1: < 3.0 mmol/L);
            # the re-test the alert's advice asks for is the meter's next ordinary reading.
            records = (
                ScenarioRecord(
                    at_offset_seconds=DEMO_HYPO_OFFSET_SECONDS,
                    values={"glucose": 2.8},
                    kind=Kind.GLUCOSE,
                    context=dict(meal),
                ),
            )
        case "ble_cgm":
            cgm = (
                {"glucose": 7.0, "trend": 0.0, "quality": 95.0},
                {"glucose": 2.0, "trend": 0.05, "quality": 3.0},
            )
            series = (
                _history(Kind.CGM_GLUCOSE, *cgm, count=288, interval_seconds=300.0),
                _live(Kind.CGM_GLUCOSE, *cgm, interval_seconds=60.0),
            )
        case "ble_blood_pressure_cuff":
            pressure = (
                {"systolic": 138.0, "diastolic": 86.0, "pulse": 72.0},
                {"systolic": 15.0, "diastolic": 8.0, "pulse": 8.0},
            )
            series = (
                _history(
                    Kind.BLOOD_PRESSURE,
                    *pressure,
                    count=6,
                    interval_seconds=12 * _HOUR_SECONDS,
                    decimals=0,
                ),
                _live(Kind.BLOOD_PRESSURE, *pressure, interval_seconds=120.0, decimals=0),
            )
        case "ble_weight_scale":
            weight = ({"weight": 72.5}, {"weight": 0.6})
            series = (
                _history(Kind.WEIGHT, *weight, count=7, interval_seconds=24 * _HOUR_SECONDS),
                _live(Kind.WEIGHT, *weight, interval_seconds=600.0),
            )
        case "ble_thermometer":
            temperature = ({"temperature": 36.8}, {"temperature": 0.4})
            series = (
                _history(
                    Kind.BODY_TEMPERATURE, *temperature, count=3, interval_seconds=8 * _HOUR_SECONDS
                ),
                _live(Kind.BODY_TEMPERATURE, *temperature, interval_seconds=600.0),
            )
        case "ble_pulse_oximeter":
            oxygen = ({"spo2": 96.0, "pulse": 74.0}, {"spo2": 2.0, "pulse": 6.0})
            spot_check = frozenset({SPOT_CHECK_FLAG})
            series = (
                _history(
                    Kind.SPO2,
                    *oxygen,
                    count=2,
                    interval_seconds=8 * _HOUR_SECONDS,
                    decimals=0,
                    flags=spot_check,
                ),
                _live(Kind.SPO2, *oxygen, interval_seconds=1.0, decimals=0),
            )
        case "ble_heart_rate_strap":
            series = (
                _live(
                    Kind.HEART_RATE,
                    {"heart_rate": 72.0},
                    {"heart_rate": 6.0},
                    interval_seconds=1.0,
                    decimals=0,
                ),
            )
        case _:
            raise SimulatorError(f"{profile.source}: no BLE simulator of kind {kind!r}")
    return Scenario(records=records, series=series)


def simulator_for(
    link: BumbleLink,
    profile: DeviceProfile,
    scenario: Scenario | None = None,
    *,
    now: Callable[[], datetime] = local_wall_clock,
) -> SimulatedPeripheral:
    """The simulator that stands in for ``profile`` on ``link`` (not started).

    Raises:
        SimulatorError: the profile has no BLE simulator.
    """
    kind = profile.simulator.kind if profile.simulator is not None else None
    simulator = SIMULATORS.get(kind or "")
    if simulator is None:
        raise SimulatorError(
            f"{profile.source}: simulator.kind {kind!r} is not a BLE simulator "
            f"(known: {', '.join(sorted(SIMULATORS))})"
        )
    chosen = scenario if scenario is not None else demo_scenario(profile)
    return simulator(link, profile, chosen, now=now)


class SimulatedHome:
    """Simulated BLE devices on one virtual link (see the module docstring).

    Args:
        profiles: device models; those without a BLE simulator (serial meters) are skipped.
        scenarios: scenario per profile id, instead of :func:`demo_scenario`.
        now: the real local wall-clock time (naive), injected so tests control time.
    """

    def __init__(
        self,
        profiles: Iterable[DeviceProfile],
        *,
        scenarios: Mapping[str, Scenario] | None = None,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        self.link = BumbleLink()
        chosen = scenarios or {}
        self.devices: dict[str, SimulatedPeripheral] = {
            profile.profile_id: simulator_for(
                self.link, profile, chosen.get(profile.profile_id), now=now
            )
            for profile in profiles
            if profile.simulator is not None and profile.simulator.kind in SIMULATORS
        }

    @property
    def client_backend(self) -> type[BumbleClientBackend]:
        """``backend=`` for ``BleakClient``: connects through this home's link."""
        return self.link.client_backend

    @property
    def scanner_backend(self) -> type[BumbleScannerBackend]:
        """``backend=`` for ``BleakScanner``: listens on this home's link."""
        return self.link.scanner_backend

    async def start(self) -> None:
        """Power the link and every device on."""
        await self.link.start()
        for device in self.devices.values():
            await device.start()

    async def stop(self) -> None:
        """Stop every device and the link."""
        for device in self.devices.values():
            await device.stop()
        await self.link.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def scan(self, timeout_seconds: float) -> list[Advertisement]:
        """What a gateway scanning in this home hears (the real scan code path)."""
        return await scan(timeout_seconds, backend=self.scanner_backend)

    def transport(self, profile_id: str) -> BleakTransport:
        """A bleak transport to the simulated device of ``profile_id``."""
        return BleakTransport(self.devices[profile_id].address, backend=self.client_backend)

    def driver(self, profile_id: str) -> Driver:
        """The profile's driver on a transport to its simulated device."""
        device = self.devices[profile_id]
        driver: Driver = load_driver(device.profile.driver)(
            self.transport(profile_id), profile=device.profile
        )
        return driver
