"""Readings and profiles for the rule tests, built through the real contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from readings.files import PatientProfile
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit, to_canonical

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
"""A Monday, 08:00 in Shanghai."""
PATIENT = "p-1"
_seq = count()


def reading(
    values: Values,
    unit: str,
    at: datetime,
    *,
    flags: tuple[str, ...] = (),
    patient: str = PATIENT,
    gateway: str = "gw-1",
) -> Reading:
    """A reading measured and received at ``at``, with a unique record number."""
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=at,
        received_at=at,
        device_id="acme-meter-0001",
        patient_id=patient,
        gateway_id=gateway,
        seq=next(_seq),
        flags=flags,
    )


def glucose(value: float, unit: str = Unit.MMOL_PER_L, at: datetime = T0, **kw: Any) -> Reading:
    """A meter glucose shown as ``value`` in ``unit`` (stored canonical, as ingest does)."""
    return reading(GlucoseValues(glucose=to_canonical(value, unit)), unit, at, **kw)


def cgm(value: float, at: datetime, unit: str = Unit.MMOL_PER_L) -> Reading:
    return reading(CgmGlucoseValues(glucose=to_canonical(value, unit)), unit, at)


def bp(
    systolic: float,
    diastolic: float,
    unit: str = Unit.MMHG,
    at: datetime = T0,
    pulse: float | None = None,
) -> Reading:
    return reading(
        BloodPressureValues(
            systolic=to_canonical(systolic, unit),
            diastolic=to_canonical(diastolic, unit),
            pulse=pulse,
        ),
        unit,
        at,
    )


def spo2(value: float, at: datetime = T0) -> Reading:
    return reading(Spo2Values(spo2=value), Unit.PERCENT, at)


def heart_rate(value: float, at: datetime = T0) -> Reading:
    return reading(HeartRateValues(heart_rate=value), Unit.PER_MIN, at)


def temperature(value: float, at: datetime = T0, unit: str = Unit.CELSIUS) -> Reading:
    return reading(BodyTemperatureValues(temperature=to_canonical(value, unit)), unit, at)


def weight(value: float, at: datetime, unit: str = Unit.KG) -> Reading:
    return reading(WeightValues(weight=to_canonical(value, unit)), unit, at)


def profile(*conditions: str, **overrides: Any) -> PatientProfile:
    return PatientProfile(PATIENT, frozenset(conditions), overrides=dict(overrides))


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
