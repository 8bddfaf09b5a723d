"""Blood glucose meters on the Bluetooth SIG Glucose Profile (GLS), e.g. Accu-Chek Guide.

Supported: identity (Device Information), clock read/set (Current Time, set only when the
profile allows), download of stored records through the Record Access Control Point
(:mod:`device_drivers.ble_racp`), measurements the meter sends unasked while connected.
Transport: BLE (:class:`~device_drivers.base.GattTransport`).

Each record is a Glucose Measurement notification (0x2A18), followed by a Measurement
Context notification (0x2A34) when the meter has one; contexts are joined to measurements
by sequence number. Parsing is :mod:`device_drivers.gatt.glucose`'s.
"""

from __future__ import annotations

import logging

from device_drivers.ble_racp import RacpDriver, RacpProcedure
from device_drivers.errors import InvalidFrame
from device_drivers.gatt import uuids
from device_drivers.gatt.glucose import (
    GlucoseContextFields,
    join_glucose_context,
    parse_glucose_context_fields,
    parse_glucose_measurement,
)
from device_drivers.measurement import Measurement

logger = logging.getLogger(__name__)


class GlucoseMeterDriver(RacpDriver):
    """A GLS meter: RACP download plus live measurements.

    Args:
        transport: the GATT link.
        profile: the meter model; ``quirks.racp_operators`` says which requests it takes.
    """

    _contexts: list[GlucoseContextFields]

    async def _enable_records(self) -> None:
        self._contexts = []
        await self._enable(uuids.GLUCOSE_MEASUREMENT, self._decoding(parse_glucose_measurement))
        if self._transport.has_characteristic(uuids.GLUCOSE_MEASUREMENT_CONTEXT):
            await self._enable(uuids.GLUCOSE_MEASUREMENT_CONTEXT, self._on_context)

    def _on_context(self, data: bytes) -> None:
        try:
            context = parse_glucose_context_fields(data)
        except InvalidFrame as exc:
            self.invalid_notifications += 1
            logger.warning("%s: undecodable glucose context skipped: %s", self.profile.model, exc)
            return
        if self._procedure is not None:
            self._contexts.append(context)

    def _finish(self, procedure: RacpProcedure) -> list[Measurement]:
        contexts, self._contexts = self._contexts, []
        return join_glucose_context(super()._finish(procedure), contexts)
