"""Simulated chest-strap heart-rate sensor: Heart Rate Service.

Every scenario record (value ``heart_rate`` in /min; script a ``series`` at 1 s) is
notified on Heart Rate Measurement 0x2A37 with sensor contact and one RR interval to the
centrals listening at that moment, then gone: a strap stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from bumble.gatt import Service

from device_drivers.gatt import uuids
from device_drivers.gatt.heart_rate import (
    SENSOR_CONTACT_CONTACT,
    HeartRateMeasurementFields,
    encode_heart_rate,
)
from device_drivers.profiles import DeviceProfile
from device_drivers.simulators.ble_peripheral import (
    SimulatedPeripheral,
    bumble_uuid,
    notifying,
)
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, local_wall_clock

RR_UNITS_PER_SECOND: Final = 1024
"""RR intervals travel in 1/1024 s."""
SECONDS_PER_MINUTE: Final = 60.0


class HeartRateStrapSimulator(SimulatedPeripheral):
    """A strap that streams heart rate (see the module docstring)."""

    simulator_kind = "ble_heart_rate_strap"
    advertised_service = uuids.HEART_RATE_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.measurement = notifying(uuids.HEART_RATE_MEASUREMENT)

    def profile_services(self) -> Sequence[Service]:
        """Heart Rate Service: measurement."""
        return [Service(bumble_uuid(uuids.HEART_RATE_SERVICE), [self.measurement])]

    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """Notify each beat window to the centrals listening."""
        for record in records:
            rate = record.values["heart_rate"]
            rr = round(SECONDS_PER_MINUTE / rate * RR_UNITS_PER_SECOND)
            value = encode_heart_rate(
                HeartRateMeasurementFields(
                    heart_rate=round(rate),
                    sensor_contact=SENSOR_CONTACT_CONTACT,
                    rr_intervals_1024=(rr,),
                )
            )
            for connection in list(self.connections):
                if self.is_subscribed(connection, self.measurement):
                    await self.send(connection, self.measurement, value)
