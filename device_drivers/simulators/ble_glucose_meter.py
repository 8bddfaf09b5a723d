"""Simulated blood glucose meter: Glucose Service with stored records and RACP.

The meter keeps the scenario's glucose records in memory, numbered 1, 2, 3 … in the order
it took them (numbering restarts after the scenario's memory clear, keeps counting when
the memory capacity overwrites the oldest), and sends them when a client asks through
RACP: each as a Glucose Measurement notification, followed by a Measurement Context
notification when the record has a meal/tester/health context. It sends the value in the
unit of its profile (mol/L for mmol/L meters, kg/L for mg/dL meters) at display
resolution, so a mmol/L meter rounds to 0.1 mmol/L and a mg/dL meter to 1 mg/dL.

Scenario flags it understands: ``control_solution`` (sample type 10, location 4),
``result_high``/``result_low`` (HI/LO status bits, the value is the meter's range limit)
and ``battery_low``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.device import Connection
from bumble.gatt import Service

from device_drivers.gatt import uuids
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.glucose import (
    HEALTH_NAMES,
    MEAL_NAMES,
    SAMPLE_LOCATION_CONTROL_SOLUTION,
    SAMPLE_TYPE_CONTROL_SOLUTION,
    TESTER_NAMES,
    GlucoseContextFields,
    GlucoseFeature,
    GlucoseMeasurementFields,
    GlucoseSensorStatus,
    encode_glucose_context,
    encode_glucose_feature,
    encode_glucose_measurement,
)
from device_drivers.gatt.racp import (
    GLS_ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED,
    GLS_ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS,
)
from device_drivers.profiles import DeviceProfile, RacpOperator
from device_drivers.simulators.ble_peripheral import (
    NumberedRecord,
    SimulatedPeripheral,
    TransferBudget,
    bumble_uuid,
    notifying,
    readable,
)
from device_drivers.simulators.ble_racp import RacpServer
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, local_wall_clock
from readings.model import Kind
from readings.units import Unit, from_canonical

SAMPLE_TYPE_CAPILLARY_PLASMA: Final = 2
"""Home meters are calibrated to plasma-equivalent capillary values."""
SAMPLE_LOCATION_FINGER: Final = 1

MOL_PER_L_DECIMALS: Final = 4
"""0.1 mmol/L, the resolution a mmol/L meter displays, expressed in mol/L."""
KG_PER_L_DECIMALS: Final = 5
"""1 mg/dL, the resolution a mg/dL meter displays, expressed in kg/L."""

FEATURES: Final = (
    GlucoseFeature.LOW_BATTERY_DETECTION
    | GlucoseFeature.RESULT_HIGH_LOW_DETECTION
    | GlucoseFeature.SAMPLE_SIZE_DETECTION
    | GlucoseFeature.STRIP_INSERTION_ERROR_DETECTION
)

_STATUS_OF_FLAG: Final = {
    "result_high": GlucoseSensorStatus.RESULT_HIGH,
    "result_low": GlucoseSensorStatus.RESULT_LOW,
    "battery_low": GlucoseSensorStatus.BATTERY_LOW,
}


def _codes(names: dict[int, str]) -> dict[str, int]:
    return {name: code for code, name in names.items()}


_MEAL_CODES: Final = _codes(MEAL_NAMES)
_TESTER_CODES: Final = _codes(TESTER_NAMES)
_HEALTH_CODES: Final = _codes(HEALTH_NAMES)


class GlucoseMeterSimulator(SimulatedPeripheral):
    """A glucose meter that stores records and answers RACP.

    Args:
        racp_operators: the operators the meter implements, when it should differ from
            what its profile claims (to test a driver against a meter that refuses
            "greater or equal"); default: the profile's.
    """

    simulator_kind = "ble_glucose_meter"
    advertised_service = uuids.GLUCOSE_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
        racp_operators: frozenset[RacpOperator] | None = None,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        operators = racp_operators or profile.quirks.racp_operators or frozenset(RacpOperator)
        self.unit = profile.units.get(Kind.GLUCOSE, Unit.MMOL_PER_L)
        self.measurement = notifying(uuids.GLUCOSE_MEASUREMENT)
        self.context = notifying(uuids.GLUCOSE_MEASUREMENT_CONTEXT)
        self.racp = RacpServer(
            self,
            operators=operators,
            records=self.stored_records,
            send_records=self._send_records,
            record_characteristics=[self.measurement],
            busy_error=GLS_ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS,
            cccd_error=GLS_ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED,
        )

    def profile_services(self) -> Sequence[Service]:
        """Glucose Service: measurement, context, feature, RACP."""
        feature = readable(uuids.GLUCOSE_FEATURE, encode_glucose_feature(FEATURES))
        return [
            Service(
                bumble_uuid(uuids.GLUCOSE_SERVICE),
                [self.measurement, self.context, feature, self.racp.characteristic],
            )
        ]

    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """A meter only stores a new result; the gateway fetches it through RACP."""

    def stored_records(self) -> list[NumberedRecord]:
        """The records in memory now, oldest first, with their sequence numbers."""
        numbered = [
            NumberedRecord(index, record, self.clock.device_time_of(record))
            for index, record in enumerate(self.taken_records(), start=1)
        ]
        capacity = self.memory_capacity
        return numbered[-capacity:] if capacity else numbered

    def measurement_value(self, record: NumberedRecord) -> bytes:
        """The Glucose Measurement value the meter sends for ``record``."""
        flags = record.record.flags
        control = "control_solution" in flags
        status = GlucoseSensorStatus(0)
        for flag, bit in _STATUS_OF_FLAG.items():
            if flag in flags:
                status |= bit
        return encode_glucose_measurement(
            GlucoseMeasurementFields(
                sequence_number=record.key,
                base_time=DateTimeFields.from_datetime(record.device_time),
                concentration=self._concentration(record.record),
                unit_mol_per_l=self.unit != Unit.MG_PER_DL,
                sample_type=SAMPLE_TYPE_CONTROL_SOLUTION
                if control
                else SAMPLE_TYPE_CAPILLARY_PLASMA,
                sample_location=(
                    SAMPLE_LOCATION_CONTROL_SOLUTION if control else SAMPLE_LOCATION_FINGER
                ),
                sensor_status=status or None,
                context_follows=self.context_value(record) is not None,
            )
        )

    def _concentration(self, record: ScenarioRecord) -> float:
        glucose = record.values["glucose"]
        if self.unit == Unit.MG_PER_DL:
            return round(from_canonical(glucose, Unit.KG_PER_L), KG_PER_L_DECIMALS)
        return round(from_canonical(glucose, Unit.MOL_PER_L), MOL_PER_L_DECIMALS)

    def context_value(self, record: NumberedRecord) -> bytes | None:
        """The Measurement Context value for ``record``, if it has a context."""
        context = record.record.context
        meal = _MEAL_CODES.get(str(context.get("meal")))
        tester = _TESTER_CODES.get(str(context.get("tester")))
        health = _HEALTH_CODES.get(str(context.get("health")))
        if meal is None and tester is None and health is None:
            return None
        both = tester is not None or health is not None
        return encode_glucose_context(
            GlucoseContextFields(
                sequence_number=record.key,
                meal=meal,
                tester=(tester or 0xF) if both else None,
                health=(health or 0xF) if both else None,
            )
        )

    async def _send_records(
        self,
        connection: Connection,
        records: Sequence[NumberedRecord],
        budget: TransferBudget,
        aborted: Callable[[], bool],
    ) -> bool:
        for record in records:
            if aborted():
                return False
            frames = [(self.measurement, self.measurement_value(record))]
            if (context := self.context_value(record)) is not None:
                frames.append((self.context, context))
            for characteristic, value in frames:
                if not await self.send(connection, characteristic, value, budget=budget):
                    return False
        return True
