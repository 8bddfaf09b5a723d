"""Simulated bathroom scale: Weight Scale Service.

Each scenario record is one weighing (values ``weight`` in kg, optional ``bmi`` and
``height`` in m), indicated on Weight Measurement 0x2A9D with its time stamp; weighings
taken while nobody listens wait in memory (:mod:`device_drivers.simulators.ble_stored_results`).
A scale whose profile unit is pounds sends imperial values (lb, in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.gatt import Characteristic, Service

from device_drivers.gatt import uuids
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.weight import (
    WeightMeasurementFields,
    WeightScaleFeature,
    WeightScaleFeatureFields,
    encode_weight,
    encode_weight_scale_feature,
)
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

WEIGHT_RESOLUTION_CODE: Final = 4
"""0.05 kg / 0.1 lb, a typical bathroom scale."""
HEIGHT_RESOLUTION_CODE: Final = 1
"""0.01 m / 1 in: height is typed in by the user."""


class WeightScaleSimulator(StoredResultPeripheral):
    """A scale that indicates each weighing (see the module docstring)."""

    simulator_kind = "ble_weight_scale"
    advertised_service = uuids.WEIGHT_SCALE_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.imperial = profile.units.get(Kind.WEIGHT) == Unit.POUND
        self.measurement = notifying(uuids.WEIGHT_MEASUREMENT, indicate=True)

    @property
    def result_characteristic(self) -> Characteristic[bytes]:
        """Weight Measurement 0x2A9D."""
        return self.measurement

    def profile_services(self) -> Sequence[Service]:
        """Weight Scale Service: measurement, feature."""
        feature = WeightScaleFeatureFields(
            WeightScaleFeature.TIME_STAMP_SUPPORTED | WeightScaleFeature.BMI_SUPPORTED,
            WEIGHT_RESOLUTION_CODE,
            HEIGHT_RESOLUTION_CODE,
        )
        return [
            Service(
                bumble_uuid(uuids.WEIGHT_SCALE_SERVICE),
                [
                    self.measurement,
                    readable(uuids.WEIGHT_SCALE_FEATURE, encode_weight_scale_feature(feature)),
                ],
            )
        ]

    def result_value(self, record: ScenarioRecord) -> bytes:
        """The Weight Measurement value of ``record``."""
        values = record.values
        weight_unit, height_unit = (
            (Unit.POUND, Unit.INCH) if self.imperial else (Unit.KG, Unit.METRE)
        )
        height = values.get("height")
        return encode_weight(
            WeightMeasurementFields(
                imperial=self.imperial,
                weight=from_canonical(values["weight"], weight_unit),
                timestamp=DateTimeFields.from_datetime(self.clock.device_time_of(record)),
                bmi=values.get("bmi") if height is not None else None,
                height=from_canonical(height, height_unit) if height is not None else None,
            )
        )
