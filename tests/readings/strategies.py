"""Hypothesis strategies that build valid readings of every kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

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
from readings.units import Unit

positive = st.floats(min_value=0.01, max_value=1000, allow_nan=False, allow_infinity=False)
non_negative = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)
slug = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._]{0,12}", fullmatch=True)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
utc_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
device_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


def _optional(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | strategy


values_and_units: st.SearchStrategy[tuple[Values, Unit]] = st.one_of(
    st.tuples(
        st.builds(GlucoseValues, glucose=positive),
        st.sampled_from([Unit.MMOL_PER_L, Unit.MG_PER_DL, Unit.MOL_PER_L, Unit.KG_PER_L]),
    ),
    st.tuples(
        st.builds(
            CgmGlucoseValues,
            glucose=positive,
            trend=_optional(st.floats(-5, 5, allow_nan=False)),
            quality=_optional(st.floats(0, 100, allow_nan=False)),
        ),
        st.sampled_from([Unit.MMOL_PER_L, Unit.MG_PER_DL]),
    ),
    st.tuples(
        st.builds(
            BloodPressureValues,
            systolic=positive,
            diastolic=positive,
            mean_arterial=_optional(positive),
            pulse=_optional(positive),
        ),
        st.sampled_from([Unit.MMHG, Unit.KPA]),
    ),
    st.tuples(
        st.builds(
            HeartRateValues,
            heart_rate=non_negative,
            rr_intervals=st.none()
            | st.lists(st.floats(0.001, 3, allow_nan=False), min_size=1, max_size=9).map(tuple),
            energy_expended=_optional(non_negative),
        ),
        st.just(Unit.PER_MIN),
    ),
    st.tuples(
        st.builds(Spo2Values, spo2=non_negative, pulse=_optional(positive)),
        st.just(Unit.PERCENT),
    ),
    st.tuples(
        st.builds(
            WeightValues, weight=positive, bmi=_optional(positive), height=_optional(positive)
        ),
        st.sampled_from([Unit.KG, Unit.POUND]),
    ),
    st.tuples(
        st.builds(BodyTemperatureValues, temperature=st.floats(-10, 50, allow_nan=False)),
        st.sampled_from([Unit.CELSIUS, Unit.FAHRENHEIT]),
    ),
)


@st.composite
def readings(draw: st.DrawFn, gateway_id: str | None = None) -> Reading:
    """Any valid reading."""
    values, unit = draw(values_and_units)
    received_at = draw(utc_times)
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=received_at - draw(st.integers(0, 10**6).map(lambda s: timedelta(seconds=s))),
        received_at=received_at,
        device_id="-".join(draw(st.tuples(slug, slug, slug))),
        patient_id=draw(ids),
        gateway_id=gateway_id if gateway_id is not None else draw(ids),
        device_time=draw(st.none() | device_times),
        context=draw(
            st.dictionaries(
                names,
                st.text(max_size=20) | st.integers(-1000, 1000) | st.booleans(),
                max_size=4,
            )
        ),
        flags=draw(st.lists(names, max_size=4)),
        seq=draw(st.none() | st.integers(0, 65535)),
    )
