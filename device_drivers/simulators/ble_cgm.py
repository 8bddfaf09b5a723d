"""Simulated continuous glucose monitor: CGM Service with E2E-CRC, live records and RACP.

The sensor's session starts at the scenario's first record (or at power-on, whichever is
earlier); each record's key is its time offset in minutes since then, as CGMS defines. A
record is notified on CGM Measurement (0x2AA7) when the scenario takes it, to every central
that enabled notifications; records that pile up (several due at once, or a RACP report)
are packed several to a notification, as many as the ATT MTU allows, each with its own
Size and E2E-CRC. Stored records are also served through RACP (filter: time offset).

Scenario conventions: values are ``glucose`` (mmol/L), optionally ``trend`` (mmol/L/min)
and ``quality`` (%); flags ``result_high``/``result_low`` set the device-range warnings.
``corrupt_frame_numbers`` counts the notifications of a transfer (the live stream of one
connection, or one RACP report): such a notification goes out ``corruptions_per_frame``
times with its first record's CRC damaged, then once intact. The Specific Ops Control
Point (start/stop session, calibration) is not simulated: the session runs from start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from bumble.device import Connection
from bumble.gatt import Service

from device_drivers.gatt import uuids
from device_drivers.gatt.cgm import (
    CgmFeature,
    CgmRecordFields,
    CgmSensorStatus,
    SessionStartTimeFields,
    encode_cgm_feature,
    encode_cgm_record,
    encode_session_start_time,
)
from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.racp import (
    ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED,
    ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS,
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
from readings.units import Unit, from_canonical

ATT_HEADER_BYTES: Final = 3
"""Opcode and handle in front of a notified value: a value carries at most MTU - 3 bytes."""

TREND_DECIMALS: Final = 1
"""Trend resolution, mg/dL/min, as the CGMS examples send it."""

_WARNING_OF_FLAG: Final = {
    "result_high": CgmSensorStatus.RESULT_HIGH,
    "result_low": CgmSensorStatus.RESULT_LOW,
}
_CRC_BYTE_FLIP: Final = 0xFF


class CgmSimulator(SimulatedPeripheral):
    """A CGM sensor (see the module docstring)."""

    simulator_kind = "ble_cgm"
    advertised_service = uuids.CONTINUOUS_GLUCOSE_MONITORING_SERVICE

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self.e2e_crc = profile.quirks.cgm_e2e_crc
        first_taken = [self.clock.device_time_of(record) for record in self._timeline[:1]]
        start = min([*first_taken, self.clock.device_now()])
        self.session_start = start.replace(second=0, microsecond=0)
        self.measurement = notifying(uuids.CGM_MEASUREMENT)
        self.racp = RacpServer(
            self,
            operators=profile.quirks.racp_operators or frozenset(RacpOperator),
            records=self.stored_records,
            send_records=self._send_records,
            record_characteristics=[self.measurement],
            busy_error=ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS,
            cccd_error=ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED,
        )
        self._live_transfers: dict[Connection, TransferBudget] = {}
        self.corrupted_notifications = 0
        """Notifications sent with a damaged CRC (what a test expects the driver to count)."""

    def profile_services(self) -> Sequence[Service]:
        """CGM Service: measurement, feature, session start time, RACP."""
        features = CgmFeature.TREND_INFORMATION | CgmFeature.QUALITY
        if self.e2e_crc:
            features |= CgmFeature.E2E_CRC
        session_start = SessionStartTimeFields(DateTimeFields.from_datetime(self.session_start))
        return [
            Service(
                bumble_uuid(uuids.CONTINUOUS_GLUCOSE_MONITORING_SERVICE),
                [
                    self.measurement,
                    readable(uuids.CGM_FEATURE, encode_cgm_feature(features)),
                    readable(
                        uuids.CGM_SESSION_START_TIME, encode_session_start_time(session_start)
                    ),
                    self.racp.characteristic,
                ],
            )
        ]

    def _numbered(self, record: ScenarioRecord) -> NumberedRecord:
        device_time = self.clock.device_time_of(record)
        offset = (device_time - self.session_start) // timedelta(minutes=1)
        return NumberedRecord(offset, record, device_time)

    def stored_records(self) -> list[NumberedRecord]:
        """The records in memory now, oldest first, keyed by time offset."""
        numbered = [self._numbered(record) for record in self.taken_records()]
        capacity = self.memory_capacity
        return numbered[-capacity:] if capacity else numbered

    def record_value(self, record: NumberedRecord) -> bytes:
        """One CGM record as sent (Size … E2E-CRC)."""
        values = record.record.values
        warning = CgmSensorStatus(0)
        for flag, bit in _WARNING_OF_FLAG.items():
            if flag in record.record.flags:
                warning |= bit
        trend = values.get("trend")
        return encode_cgm_record(
            CgmRecordFields(
                glucose=round(from_canonical(values["glucose"], Unit.MG_PER_DL)),
                time_offset_minutes=record.key,
                warning=warning or None,
                trend=(
                    round(from_canonical(trend, Unit.MG_PER_DL_PER_MIN), TREND_DECIMALS)
                    if trend is not None
                    else None
                ),
                quality=values.get("quality"),
                e2e_crc=self.e2e_crc,
            )
        )

    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """Notify the new records to every central listening."""
        numbered = [self._numbered(record) for record in records]
        self._live_transfers = {
            connection: budget
            for connection, budget in self._live_transfers.items()
            if connection in self.connections
        }
        for connection in list(self.connections):
            if not self.is_subscribed(connection, self.measurement):
                continue
            budget = self._live_transfers.get(connection)
            if budget is None:
                budget = self._live_transfers[connection] = self.new_transfer()
            await self._send_records(connection, numbered, budget, lambda: False)

    def _packed(self, connection: Connection, records: Sequence[NumberedRecord]) -> list[bytes]:
        room = connection.att_mtu - ATT_HEADER_BYTES
        notifications: list[bytes] = []
        current = b""
        for record in records:
            value = self.record_value(record)
            if current and len(current) + len(value) > room:
                notifications.append(current)
                current = b""
            current += value
        if current:
            notifications.append(current)
        return notifications

    async def _send_records(
        self,
        connection: Connection,
        records: Sequence[NumberedRecord],
        budget: TransferBudget,
        aborted: Callable[[], bool],
    ) -> bool:
        for value in self._packed(connection, records):
            if aborted():
                return False
            frame = budget.next_frame()
            damaged = 0
            while self.scenario.is_corrupted(frame, damaged + 1):
                damaged += 1
            self.corrupted_notifications += damaged
            for copy in [_damaged(value)] * damaged + [value]:
                if not await self.send(connection, self.measurement, copy, budget=budget):
                    return False
        return True


def _damaged(value: bytes) -> bytes:
    """``value`` with the E2E-CRC of its first record broken (the CRC's high byte)."""
    size = value[0]
    return value[: size - 1] + bytes([value[size - 1] ^ _CRC_BYTE_FLIP]) + value[size:]
