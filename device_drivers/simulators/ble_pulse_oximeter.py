"""Simulated fingertip pulse oximeter: Pulse Oximeter Service.

Records flagged ``spot_check`` are spot-check results: indicated on PLX Spot-Check
Measurement 0x2A5E with a time stamp, kept until a central confirms them
(:mod:`device_drivers.simulators.ble_stored_results`). Every other record is a continuous
measurement, notified on PLX Continuous Measurement 0x2A5F to the centrals listening at
that moment and then gone, as a real oximeter streams once a second (script them with a
scenario ``series``). Values: ``spo2`` (%) and ``pulse`` (/min).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.gatt import Characteristic, Service

from device_drivers.gatt import uuids
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.pulse_oximeter import (
    PlxContinuousFields,
    PlxFeaturesFields,
    PlxSpotCheckFields,
    PlxSupportedFeatures,
    encode_plx_continuous,
    encode_plx_features,
    encode_plx_spot_check,
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

SPOT_CHECK_FLAG: Final = "spot_check"
FEATURES: Final = PlxFeaturesFields(PlxSupportedFeatures.SPOT_CHECK_TIMESTAMP)


class PulseOximeterSimulator(StoredResultPeripheral):
    """An oximeter streaming continuous values and indicating spot checks."""

    simulator_kind = "ble_pulse_oximeter"
    advertised_service = uuids.PULSE_OXIMETER_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.spot_check = notifying(uuids.PLX_SPOT_CHECK_MEASUREMENT, indicate=True)
        self.continuous = notifying(uuids.PLX_CONTINUOUS_MEASUREMENT)
        self.continuous_sent = 0
        """Continuous measurements notified (to any central)."""

    @property
    def result_characteristic(self) -> Characteristic[bytes]:
        """PLX Spot-Check Measurement 0x2A5E."""
        return self.spot_check

    def profile_services(self) -> Sequence[Service]:
        """Pulse Oximeter Service: spot check, continuous, features."""
        return [
            Service(
                bumble_uuid(uuids.PULSE_OXIMETER_SERVICE),
                [
                    self.spot_check,
                    self.continuous,
                    readable(uuids.PLX_FEATURES, encode_plx_features(FEATURES)),
                ],
            )
        ]

    def is_stored_result(self, record: ScenarioRecord) -> bool:
        """Spot checks are stored; continuous values are streamed and gone."""
        return SPOT_CHECK_FLAG in record.flags

    def result_value(self, record: ScenarioRecord) -> bytes:
        """The PLX Spot-Check Measurement value of ``record``."""
        return encode_plx_spot_check(
            PlxSpotCheckFields(
                spo2=round(record.values["spo2"]),
                pulse_rate=round(record.values["pulse"]),
                timestamp=DateTimeFields.from_datetime(self.clock.device_time_of(record)),
            )
        )

    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """Stream continuous values; indicate spot checks."""
        for record in records:
            if self.is_stored_result(record):
                continue
            value = encode_plx_continuous(
                PlxContinuousFields(
                    spo2=round(record.values["spo2"]), pulse_rate=round(record.values["pulse"])
                )
            )
            for connection in list(self.connections):
                if self.is_subscribed(connection, self.continuous) and await self.send(
                    connection, self.continuous, value
                ):
                    self.continuous_sent += 1
        spot_checks = [record for record in records if self.is_stored_result(record)]
        if spot_checks:
            await super().on_records_taken(spot_checks)
