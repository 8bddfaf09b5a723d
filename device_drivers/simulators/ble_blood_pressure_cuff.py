"""Simulated upper-arm blood-pressure cuff: Blood Pressure Service.

Each scenario record is one measurement. While a central listens, the cuff first notifies
its cuff pressure as it inflates (Intermediate Cuff Pressure 0x2A36, never a reading),
then indicates the result on Blood Pressure Measurement 0x2A35 with its time stamp;
results taken while nobody listens wait in memory and are indicated at the next
connection (:mod:`device_drivers.simulators.ble_stored_results`).

Scenario values: ``systolic``, ``diastolic``, optional ``mean_arterial`` and ``pulse``, in
mmHg and /min; the cuff sends its profile's unit (mmHg as whole numbers, kPa to 0.1).
Flags named after the Measurement Status bits (``irregular_pulse``, ``body_movement``,
``cuff_too_loose``, ``improper_position`` …) are set in the status field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.device import Connection
from bumble.gatt import Characteristic, Service

from device_drivers.gatt import uuids
from device_drivers.gatt.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurementFields,
    BloodPressureStatus,
    IntermediateCuffPressureFields,
    encode_blood_pressure_feature,
    encode_blood_pressure_measurement,
    encode_intermediate_cuff_pressure,
)
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.profiles import DeviceProfile
from device_drivers.simulators.ble_peripheral import (
    bumble_uuid,
    notifying,
    readable,
)
from device_drivers.simulators.ble_stored_results import StoredResultPeripheral
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, local_wall_clock
from readings.model import Kind
from readings.units import Unit, from_canonical

INFLATION_STEP_MMHG: Final = 40.0
"""Cuff pressure between two intermediate notifications while inflating."""
INFLATION_OVERSHOOT_MMHG: Final = 30.0
"""Oscillometric cuffs inflate to about 30 mmHg above systolic before deflating."""
KPA_DECIMALS: Final = 1

FEATURES: Final = (
    BloodPressureFeature.BODY_MOVEMENT_DETECTION
    | BloodPressureFeature.CUFF_FIT_DETECTION
    | BloodPressureFeature.IRREGULAR_PULSE_DETECTION
    | BloodPressureFeature.MEASUREMENT_POSITION_DETECTION
)


class BloodPressureCuffSimulator(StoredResultPeripheral):
    """A cuff that indicates results and notifies its inflation (see the module docstring)."""

    simulator_kind = "ble_blood_pressure_cuff"
    advertised_service = uuids.BLOOD_PRESSURE_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.unit_kpa = profile.units.get(Kind.BLOOD_PRESSURE) == Unit.KPA
        self.measurement = notifying(uuids.BLOOD_PRESSURE_MEASUREMENT, indicate=True)
        self.intermediate = notifying(uuids.INTERMEDIATE_CUFF_PRESSURE)

    @property
    def result_characteristic(self) -> Characteristic[bytes]:
        """Blood Pressure Measurement 0x2A35."""
        return self.measurement

    def profile_services(self) -> Sequence[Service]:
        """Blood Pressure Service: measurement, intermediate cuff pressure, feature."""
        feature = readable(uuids.BLOOD_PRESSURE_FEATURE, encode_blood_pressure_feature(FEATURES))
        return [
            Service(
                bumble_uuid(uuids.BLOOD_PRESSURE_SERVICE),
                [self.measurement, self.intermediate, feature],
            )
        ]

    def _pressure(self, mmhg: float) -> float:
        if self.unit_kpa:
            return round(from_canonical(mmhg, Unit.KPA), KPA_DECIMALS)
        return round(mmhg)

    def result_value(self, record: ScenarioRecord) -> bytes:
        """The Blood Pressure Measurement value of ``record``."""
        values = record.values
        systolic, diastolic = values["systolic"], values["diastolic"]
        # Cuffs that do not say compute MAP ≈ diastolic + (systolic − diastolic) / 3.
        mean_arterial = values.get("mean_arterial", diastolic + (systolic - diastolic) / 3)
        status = BloodPressureStatus(0)
        for flag in record.flags:
            if flag.upper() in BloodPressureStatus.__members__:
                status |= BloodPressureStatus[flag.upper()]
        pulse = values.get("pulse")
        return encode_blood_pressure_measurement(
            BloodPressureMeasurementFields(
                unit_kpa=self.unit_kpa,
                systolic=self._pressure(systolic),
                diastolic=self._pressure(diastolic),
                mean_arterial=self._pressure(mean_arterial),
                timestamp=DateTimeFields.from_datetime(self.clock.device_time_of(record)),
                pulse=round(pulse) if pulse is not None else None,
                status=status,
            )
        )

    async def before_result(self, connection: Connection, record: ScenarioRecord) -> bool:
        """Notify the cuff pressure while it inflates to just above systolic."""
        if not self.is_subscribed(connection, self.intermediate):
            return True
        target = record.values["systolic"] + INFLATION_OVERSHOOT_MMHG
        pressure = 0.0
        while pressure < target:
            pressure = min(pressure + INFLATION_STEP_MMHG, target)
            value = encode_intermediate_cuff_pressure(
                IntermediateCuffPressureFields(
                    unit_kpa=self.unit_kpa, cuff_pressure=self._pressure(pressure)
                )
            )
            if not await self.send(connection, self.intermediate, value):
                return False
        return True
