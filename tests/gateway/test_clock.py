"""Clock correction: skewed, reset and zone-less device clocks become trustworthy UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import (
    FLAG_CLOCK_CORRECTED,
    FLAG_CLOCK_RESET,
    FLAG_TIME_IN_FUTURE,
    FLAG_TIME_UNTRUSTED,
    ClockObservation,
    local_to_utc,
    resolve_measured_at,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
GATEWAY_NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai


def test_meter_three_hours_fast_is_corrected_and_flagged() -> None:
    observation = ClockObservation(
        device_now=datetime(2026, 11, 23, 19, 0), gateway_now=GATEWAY_NOW
    )
    resolved = resolve_measured_at(
        device_time=datetime(2026, 11, 23, 18, 30),  # really 15:30 Shanghai = 07:30 UTC
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=observation,
    )
    assert resolved.measured_at == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert resolved.flags == {FLAG_CLOCK_CORRECTED}


def test_small_drift_is_left_alone() -> None:
    observation = ClockObservation(
        device_now=datetime(2026, 11, 23, 16, 1, 30), gateway_now=GATEWAY_NOW
    )
    resolved = resolve_measured_at(
        device_time=datetime(2026, 11, 23, 15, 0),
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=observation,
    )
    assert resolved.measured_at == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert resolved.flags == frozenset()


def test_meter_reset_to_2000_corrects_only_records_made_since_the_reset() -> None:
    # Battery changed two days ago: the clock restarted at 2000-01-01 00:00 and now
    # reads 2000-01-03 00:00 while it is really 2026-11-23 16:00 in Shanghai.
    observation = ClockObservation(device_now=datetime(2000, 1, 3, 0, 0), gateway_now=GATEWAY_NOW)
    since_reset = resolve_measured_at(
        device_time=datetime(2000, 1, 2, 12, 0),  # 36 h after reset = 12 h ago
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=observation,
    )
    assert since_reset.measured_at == GATEWAY_NOW - timedelta(hours=12)
    assert since_reset.flags == {FLAG_CLOCK_CORRECTED, FLAG_CLOCK_RESET}
    before_reset = resolve_measured_at(
        device_time=datetime(2026, 11, 20, 7, 0),
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=observation,
    )
    assert before_reset.measured_at == datetime(2026, 11, 19, 23, 0, tzinfo=UTC)
    assert before_reset.flags == {FLAG_CLOCK_RESET}


def test_reset_clock_without_a_clock_reading_falls_back_to_receipt_time() -> None:
    resolved = resolve_measured_at(
        device_time=datetime(2000, 1, 1, 0, 5),
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=None,
    )
    assert resolved.measured_at == GATEWAY_NOW
    assert resolved.flags == {FLAG_TIME_UNTRUSTED}


def test_no_device_time_means_receipt_time() -> None:
    resolved = resolve_measured_at(
        device_time=None, received_at=GATEWAY_NOW, time_zone=SHANGHAI, observation=None
    )
    assert resolved == type(resolved)(GATEWAY_NOW, frozenset())


def test_record_in_the_future_is_flagged() -> None:
    resolved = resolve_measured_at(
        device_time=datetime(2026, 11, 23, 17, 0),  # an hour ahead, no clock reading
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=None,
    )
    assert FLAG_TIME_IN_FUTURE in resolved.flags


@pytest.mark.parametrize(
    ("wall_clock", "expected_utc"),
    [
        # Berlin, 2026-03-29: 02:00 → 03:00. 02:30 does not exist; read as before the jump.
        (datetime(2026, 3, 29, 2, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # Berlin, 2026-10-25: 03:00 → 02:00. 02:30 happens twice; the first is UTC 00:30.
        (datetime(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2026, 7, 1, 12, 0), datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        (datetime(2026, 12, 1, 12, 0), datetime(2026, 12, 1, 11, 0, tzinfo=UTC)),
    ],
)
def test_local_time_to_utc_across_daylight_saving(
    wall_clock: datetime, expected_utc: datetime
) -> None:
    assert local_to_utc(wall_clock, BERLIN) == expected_utc


def test_correction_uses_the_patients_zone_not_the_gateways() -> None:
    observation = ClockObservation(
        device_now=datetime(2026, 7, 1, 12, 0), gateway_now=datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    )
    resolved = resolve_measured_at(
        device_time=datetime(2026, 7, 1, 11, 0),
        received_at=datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
        time_zone=BERLIN,
        observation=observation,
    )
    assert resolved.measured_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert resolved.flags == frozenset()


def test_the_bound_is_configurable() -> None:
    observation = ClockObservation(
        device_now=datetime(2026, 11, 23, 16, 1, 30), gateway_now=GATEWAY_NOW
    )
    strict = resolve_measured_at(
        device_time=datetime(2026, 11, 23, 15, 0),
        received_at=GATEWAY_NOW,
        time_zone=SHANGHAI,
        observation=observation,
        max_offset_seconds=60,
    )
    assert strict.measured_at == datetime(2026, 11, 23, 6, 58, 30, tzinfo=UTC)
    assert strict.flags == {FLAG_CLOCK_CORRECTED}
