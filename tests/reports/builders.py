"""Readings for the summary tests: small fixed series, built through the contract."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from readings.model import (
    BloodPressureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import to_canonical

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, tzinfo=SHANGHAI)
"""Local midnight starting the test periods (2026-02-28 16:00 UTC)."""

_counter = iter(range(10**9))


def reading(
    values: Values,
    at: datetime,
    *,
    unit: str,
    patient: str = "p-1",
    context: Mapping[str, Any] | None = None,
    flags: tuple[str, ...] = (),
) -> Reading:
    """One reading built by ``new_reading`` (so it obeys the contract)."""
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=at,
        received_at=at.astimezone(UTC) + timedelta(seconds=5),
        device_id="acme-device-0001",
        patient_id=patient,
        gateway_id="gw-1",
        context=context,
        flags=flags,
        seq=next(_counter),
    )


def cgm(value: float, at: datetime, unit: str = "mmol/L", patient: str = "p-1") -> Reading:
    """A CGM reading of ``value`` given in ``unit`` (stored canonically, as ingest does)."""
    return reading(
        CgmGlucoseValues(glucose=to_canonical(value, unit)), at, unit=unit, patient=patient
    )


def meter(
    value: float,
    at: datetime,
    unit: str = "mmol/L",
    meal: str | None = None,
    flags: tuple[str, ...] = (),
    patient: str = "p-1",
) -> Reading:
    """A meter reading of ``value`` given in ``unit``, with an optional meal context."""
    return reading(
        GlucoseValues(glucose=to_canonical(value, unit)),
        at,
        unit=unit,
        context={"meal": meal} if meal else None,
        flags=flags,
        patient=patient,
    )


def bp(systolic: float, diastolic: float, at: datetime) -> Reading:
    return reading(BloodPressureValues(systolic=systolic, diastolic=diastolic), at, unit="mm[Hg]")


def weight(kg: float, at: datetime) -> Reading:
    return reading(WeightValues(weight=kg), at, unit="kg")


def spo2(percent: float, at: datetime) -> Reading:
    return reading(Spo2Values(spo2=percent), at, unit="%")


def heart_rate(per_min: float, at: datetime) -> Reading:
    return reading(HeartRateValues(heart_rate=per_min), at, unit="/min")
