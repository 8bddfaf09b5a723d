"""Devices and consents through the API: what the patient decides takes effect at once."""

from __future__ import annotations

from tests.dashboard_api.conftest import METER, Deployment


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_patient_sees_who_can_see_what(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    consents = deployment.client.get("/api/v1/patients/p-wang/consents", headers=patient).json()
    state = {c["username"]: c["in_force"] for c in consents}
    assert state == {"wang.daughter": True, "wang.son": False, "wang.niece": False}


def test_a_consent_revoked_by_the_patient_closes_the_family_members_door(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    daughter = _bearer(deployment.sms_login("13800000002"))
    url = "/api/v1/patients/p-wang/readings"
    params = {
        "kind": "glucose",
        "start": "2026-02-27T00:00:00+00:00",
        "end": "2026-03-02T00:00:00+00:00",
    }
    assert deployment.client.get(url, headers=daughter, params=params).status_code == 200
    revoked = deployment.client.delete(
        "/api/v1/patients/p-wang/consents/wang.daughter", headers=patient
    )
    assert revoked.json() == {"revoked": 1}
    deployment.clock.advance(seconds=1)
    assert deployment.client.get(url, headers=daughter, params=params).status_code == 404
    granted = deployment.client.post(
        "/api/v1/patients/p-wang/consents",
        headers=patient,
        json={"username": "wang.daughter", "scopes": ["receive_alerts"]},
    )
    assert granted.status_code == 201
    assert granted.json()["scopes"] == ["receive_alerts"]
    # Alerts only: the patient is visible, the readings are not.
    assert deployment.client.get("/api/v1/patients/p-wang", headers=daughter).status_code == 200
    assert deployment.client.get(url, headers=daughter, params=params).status_code == 403


def test_consent_to_someone_not_linked_is_refused(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    response = deployment.client.post(
        "/api/v1/patients/p-wang/consents",
        headers=patient,
        json={"username": "dr.chen", "scopes": ["view_readings"]},
    )
    assert response.status_code == 404


def test_devices_list_the_pairings_with_the_identity_read_from_the_device(
    deployment: Deployment,
) -> None:
    nurse = _bearer(deployment.login("nurse.liu"))
    devices = deployment.client.get("/api/v1/patients/p-wang/devices", headers=nurse).json()
    assert [(d["device_id"], d["manufacturer"], d["serial"], d["current"]) for d in devices] == [
        (METER, "Roche", "92310000123", True)
    ]
