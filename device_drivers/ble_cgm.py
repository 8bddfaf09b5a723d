"""Continuous glucose monitors on the Bluetooth SIG CGM Service (CGMS 1.0.1).

Supported: identity (Device Information), session start time (0x2AAA, gives each record its
device time), download of stored records through RACP (key: minutes since session start;
:mod:`device_drivers.ble_racp`), live records notified on CGM Measurement (0x2AA7).
Transport: BLE (:class:`~device_drivers.base.GattTransport`).

One notification carries several records, each with its own E2E-CRC. A record whose CRC
fails is discarded, never repaired, and counted: :attr:`CgmDriver.crc_failures` over the
driver's life, :attr:`CgmFetchResult.crc_failures` per download. The good records of the
same notification are kept. Parsing is :mod:`device_drivers.gatt.cgm`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from device_drivers.base import FetchResult, RecordCursor
from device_drivers.ble_racp import RacpDriver
from device_drivers.errors import InvalidFrame
from device_drivers.gatt import uuids
from device_drivers.gatt.cgm import (
    parse_cgm_feature,
    parse_cgm_notification,
    parse_session_start_time,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CgmFetchResult(FetchResult):
    """A CGM download, with the records it had to discard."""

    crc_failures: int = 0
    """Records discarded because their E2E-CRC did not match."""


class CgmDriver(RacpDriver):
    """A CGMS sensor: RACP download plus live records (see the module docstring).

    Args:
        transport: the GATT link.
        profile: the sensor model; ``quirks.cgm_e2e_crc`` says whether records carry CRCs.
    """

    crc_failures = 0
    """Records discarded for a bad E2E-CRC since this driver was made."""

    _session_start: datetime | None = None

    async def _enable_records(self) -> None:
        if uuids.CGM_MEASUREMENT in self._enabled:
            return
        self._session_start = None
        if self._transport.has_characteristic(uuids.CGM_SESSION_START_TIME):
            value = await self._transport.read(uuids.CGM_SESSION_START_TIME)
            self._session_start = parse_session_start_time(value).to_datetime()
        if self._transport.has_characteristic(uuids.CGM_FEATURE):
            feature = parse_cgm_feature(await self._transport.read(uuids.CGM_FEATURE))
            if feature.e2e_crc_supported != self.profile.quirks.cgm_e2e_crc:
                logger.warning(
                    "%s: sensor says E2E-CRC %s, profile %s says %s",
                    self.profile.model,
                    "supported" if feature.e2e_crc_supported else "absent",
                    self.profile.source,
                    "supported" if self.profile.quirks.cgm_e2e_crc else "absent",
                )
        await self._enable(uuids.CGM_MEASUREMENT, self._on_measurement)

    def _on_measurement(self, data: bytes) -> None:
        try:
            result = parse_cgm_notification(data, session_start=self._session_start)
        except InvalidFrame as exc:
            self.invalid_notifications += 1
            logger.warning("%s: undecodable CGM notification skipped: %s", self.profile.model, exc)
            return
        if result.crc_failures:
            self.crc_failures += result.crc_failures
            logger.warning(
                "%s: %d CGM record(s) failed their E2E-CRC and were discarded",
                self.profile.model,
                result.crc_failures,
            )
        for measurement in result.measurements:
            self._received(measurement)

    async def fetch_records(self, cursor: RecordCursor | None) -> CgmFetchResult:
        """Download the records after ``cursor``; see :meth:`RacpDriver.fetch_records`."""
        failures_before = self.crc_failures
        result: FetchResult = await super().fetch_records(cursor)
        return CgmFetchResult(
            measurements=result.measurements,
            cursor=result.cursor,
            full_download=result.full_download,
            crc_failures=self.crc_failures - failures_before,
        )
