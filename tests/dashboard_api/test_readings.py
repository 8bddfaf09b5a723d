"""Chart data: raw when it fits, downsampled per window otherwise, units and provenance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.dashboard_api.conftest import T0, Deployment

URL = "/api/v1/patients/p-wang/readings"
RANGE = {"start": (T0 - timedelta(days=3)).isoformat(), "end": T0.isoformat()}


@pytest.fixture
def doctor(deployment: Deployment) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployment.login('dr.zhang')}"}


def test_raw_readings_carry_their_provenance(
    deployment: Deployment, doctor: dict[str, str]
) -> None:
    body = deployment.client.get(URL, headers=doctor, params={"kind": "glucose", **RANGE}).json()
    assert (body["downsampled"], body["total"], len(body["points"])) == (False, 48, 48)
    assert body["units"]["glucose"] == "mmol/L"
    first, fourth = body["points"][0], body["points"][3]
    assert first["values"] == {"glucose": 4.0}
    assert first["device_id"] == "Roche-Accu_Chek_Guide-92310000123"
    assert (first["clock_corrected"], fourth["clock_corrected"]) == (False, True)


def test_many_readings_are_summarised_per_window(
    deployment: Deployment, doctor: dict[str, str]
) -> None:
    params = {"kind": "glucose", "points": 12, **RANGE}
    body = deployment.client.get(URL, headers=doctor, params=params).json()
    assert body["downsampled"] is True
    assert body["window_seconds"] == 3 * 86400 / 12
    assert sum(point["count"] for point in body["points"]) == 48
    for point in body["points"]:
        values = point["values"]
        assert values["glucose_min"] <= values["glucose"] <= values["glucose_max"]


def test_glucose_in_mg_per_dl_on_request(deployment: Deployment, doctor: dict[str, str]) -> None:
    params = {"kind": "glucose", "glucose_unit": "mg/dL", **RANGE}
    body = deployment.client.get(URL, headers=doctor, params=params).json()
    assert body["units"]["glucose"] == "mg/dL"
    assert body["points"][0]["values"]["glucose"] == pytest.approx(72.06, abs=0.01)


def test_bad_ranges_are_refused_with_the_reason(
    deployment: Deployment, doctor: dict[str, str]
) -> None:
    backwards = {"kind": "glucose", "start": RANGE["end"], "end": RANGE["start"]}
    too_long = {
        "kind": "glucose",
        "start": (T0 - timedelta(days=500)).isoformat(),
        "end": T0.isoformat(),
    }
    naive = {"kind": "glucose", "start": "2026-03-01T00:00:00", "end": RANGE["end"]}
    for params in (backwards, too_long, naive):
        response = deployment.client.get(URL, headers=doctor, params=params)
        assert response.status_code == 422, params
    points = deployment.client.get(
        URL, headers=doctor, params={"kind": "glucose", "points": 10**6, **RANGE}
    )
    assert points.status_code == 422
