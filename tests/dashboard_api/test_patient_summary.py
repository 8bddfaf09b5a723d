"""``GET /patients/{id}/summary``: the patient page's figures, worked out by hand here.

The seeded clock stands at 2026-03-02 10:00 in Shanghai (p-wang's zone), so the default
period is the 14 local days 2026-02-17 … 2026-03-02.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from statistics import fmean
from zoneinfo import ZoneInfo

import pytest

from readings.model import (
    BloodPressureValues,
    CgmGlucoseValues,
    Reading,
    WeightValues,
    new_reading,
)
from readings.units import Unit
from tests.dashboard_api.conftest import GATEWAY, Deployment

SHANGHAI = ZoneInfo("Asia/Shanghai")
CUFF = "Omron-HEM_7600T-20259999"
SCALE = "AND-UC_352BLE-5550001"
CGM = "Dexcom-G7-8880001"


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def _reading(values: object, unit: Unit, at: datetime, device: str, seq: int) -> Reading:
    return new_reading(
        values=values,  # type: ignore[arg-type]
        source_unit=unit,
        measured_at=at,
        received_at=at + timedelta(seconds=30),
        device_id=device,
        patient_id="p-wang",
        gateway_id=GATEWAY,
        seq=seq,
    )


def _get(deployment: Deployment, **params: int) -> dict:  # type: ignore[type-arg]
    token = deployment.login("dr.zhang")
    response = deployment.client.get(
        "/api/v1/patients/p-wang/summary",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()  # type: ignore[type-arg]
    return body


def test_home_bp_mean_drops_the_first_day_and_weight_change_names_its_baseline(
    deployment: Deployment,
) -> None:
    days = [date(2026, 2, 24) + timedelta(days=i) for i in range(7)]  # … 2026-03-02
    bp, seq = [], 0
    for index, day in enumerate(days):
        for hour in (7, 20):
            seq += 1
            # The first day reads high (new to the routine): the mean must not include it.
            systolic = 170.0 if index == 0 else 128.0 + index + (hour == 20)
            values = BloodPressureValues(systolic=systolic, diastolic=82.0, pulse=70.0)
            bp.append(_reading(values, Unit.MMHG, _local(day, hour), CUFF, seq))
    kept = [r.values.systolic for r in bp[2:]]  # type: ignore[union-attr]
    weights = {date(2026, 2, 26): 70.0, date(2026, 2, 27): 70.4, date(2026, 3, 2): 72.1}
    scale = [
        _reading(WeightValues(weight=kg), Unit.KG, _local(day, 7, 5), SCALE, i + 1)
        for i, (day, kg) in enumerate(weights.items())
    ]
    # A second weight later on the latest day: the day's weight is its first (morning) one.
    scale.append(
        _reading(WeightValues(weight=73.0), Unit.KG, _local(date(2026, 3, 2), 9), SCALE, 9)
    )
    deployment.store.write([*bp, *scale])

    body = _get(deployment)

    assert (body["first_day"], body["last_day"]) == ("2026-02-17", "2026-03-02")
    assert body["time_zone"] == "Asia/Shanghai"
    home = body["blood_pressure"]
    assert home["readings"] == 14
    assert home["readings_used"] == 12
    assert home["home_mean_systolic"]["value"] == pytest.approx(fmean(kept))
    assert home["home_mean_diastolic"]["value"] == pytest.approx(82.0)
    weight = body["weight"]
    assert weight["latest_kg"] == pytest.approx(72.1)
    assert weight["baseline_3d_kg"] == pytest.approx(70.4)
    assert weight["change_3d_kg"]["value"] == pytest.approx(72.1 - 70.4)
    # No weight on 2026-02-23 (7 days before the latest): the 7-day change says so.
    assert weight["change_7d_kg"]["value"] is None
    assert "7 days" in weight["change_7d_kg"]["insufficient"]
    # The seeded meter readings (48 over two days) are summarised too.
    assert body["meter"]["readings"] == 48


def test_too_few_bp_readings_give_no_mean_but_say_why(deployment: Deployment) -> None:
    day = date(2026, 3, 1)
    values = BloodPressureValues(systolic=150.0, diastolic=95.0, pulse=70.0)
    deployment.store.write([_reading(values, Unit.MMHG, _local(day, 8), CUFF, 1)])
    home = _get(deployment)["blood_pressure"]
    assert home["home_mean_systolic"]["value"] is None
    assert home["home_mean_systolic"]["need"] == 12
    assert "12" in home["home_mean_systolic"]["insufficient"]


def test_cgm_percentile_bands_per_local_hour(deployment: Deployment) -> None:
    # 14 days of 5-minute CGM readings, the value fixed by the local hour: every percentile
    # of hour h is 5.0 + 0.2 h mmol/L.
    start = _local(date(2026, 2, 17), 0)
    readings = []
    for index in range(14 * 288):
        at = start + timedelta(minutes=5 * index)
        glucose = round(5.0 + 0.2 * at.astimezone(SHANGHAI).hour, 1)
        readings.append(
            _reading(CgmGlucoseValues(glucose=glucose), Unit.MMOL_PER_L, at, CGM, index + 1)
        )
    deployment.clock.advance(hours=13)  # to the end of 2026-03-02 locally
    deployment.store.write(readings)

    cgm = _get(deployment)["cgm"]

    assert cgm["bands_insufficient"] is None
    bands = cgm["bands"]
    assert [band["start_minute"] for band in bands] == [60 * h for h in range(24)]
    for hour, band in enumerate(bands):
        expected = 5.0 + 0.2 * hour
        for key in ("p5", "p25", "p50", "p75", "p95"):
            assert band[key] == pytest.approx(expected), (hour, key)
    assert sum(band["readings"] for band in bands) == cgm["readings"]


def test_two_days_of_cgm_are_too_few_for_bands(deployment: Deployment) -> None:
    start = _local(date(2026, 3, 1), 0)
    deployment.store.write(
        [
            _reading(
                CgmGlucoseValues(glucose=6.0),
                Unit.MMOL_PER_L,
                start + timedelta(minutes=5 * i),
                CGM,
                i + 1,
            )
            for i in range(400)
        ]
    )
    cgm = _get(deployment, days=14)["cgm"]
    assert cgm["bands"] == []
    assert cgm["bands_insufficient"]


@pytest.mark.parametrize("days", [0, 91])
def test_the_period_is_bounded(deployment: Deployment, days: int) -> None:
    token = deployment.login("dr.zhang")
    response = deployment.client.get(
        "/api/v1/patients/p-wang/summary",
        params={"days": days},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
