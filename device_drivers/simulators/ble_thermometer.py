"""Simulated body thermometer: Health Thermometer Service.

Each scenario record is one reading (value ``temperature`` in °C; context ``site`` names
the Temperature Type: ``ear``, ``mouth``, ``armpit`` …), indicated on Temperature
Measurement 0x2A1C with its time stamp; readings taken while nobody listens wait in memory
(:mod:`device_drivers.simulators.ble_stored_results`). A °F thermometer sends °F.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.gatt import Characteristic, Service

from device_drivers.gatt import uuids
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.thermometer import (
    TEMPERATURE_TYPE_NAMES,
    TemperatureMeasurementFields,
    encode_temperature,
)
from device_drivers.profiles import DeviceProfile
from device_drivers.simulators.ble_peripheral import bumble_uuid, notifying
from device_drivers.simulators.ble_stored_results import StoredResultPeripheral
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, local_wall_clock
from readings.model import Kind
from readings.units import Unit, from_canonical

TEMPERATURE_DECIMALS: Final = 2
_TYPE_CODES: Final = {name: code for code, name in TEMPERATURE_TYPE_NAMES.items()}


class ThermometerSimulator(StoredResultPeripheral):
    """A thermometer that indicates each reading (see the module docstring)."""

    simulator_kind = "ble_thermometer"
    advertised_service = uuids.HEALTH_THERMOMETER_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.fahrenheit = profile.units.get(Kind.BODY_TEMPERATURE) == Unit.FAHRENHEIT
        self.measurement = notifying(uuids.TEMPERATURE_MEASUREMENT, indicate=True)

    @property
    def result_characteristic(self) -> Characteristic[bytes]:
        """Temperature Measurement 0x2A1C."""
        return self.measurement

    def profile_services(self) -> Sequence[Service]:
        """Health Thermometer Service: temperature measurement."""
        return [Service(bumble_uuid(uuids.HEALTH_THERMOMETER_SERVICE), [self.measurement])]

    def result_value(self, record: ScenarioRecord) -> bytes:
        """The Temperature Measurement value of ``record``."""
        unit = Unit.FAHRENHEIT if self.fahrenheit else Unit.CELSIUS
        temperature = from_canonical(record.values["temperature"], unit)
        return encode_temperature(
            TemperatureMeasurementFields(
                fahrenheit=self.fahrenheit,
                temperature=round(temperature, TEMPERATURE_DECIMALS),
                timestamp=DateTimeFields.from_datetime(self.clock.device_time_of(record)),
                temperature_type=_TYPE_CODES.get(str(record.context.get("site"))),
            )
        )
