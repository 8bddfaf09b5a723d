"""The alert routes end to end: a firing alert listed, acknowledged by the doctor only."""

from __future__ import annotations

from sqlalchemy import select

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from registry.alert_models import EscalationStep
from registry.alerts_repo import AlertRepository
from registry.audit import AuditRecord
from registry.db import session_scope
from tests.dashboard_api.conftest import Deployment


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fire(deployment: Deployment) -> int:
    now = deployment.clock()
    finding = Finding(
        "p-wang", "G1", 1, Metric.GLUCOSE, Severity.P1, FindingStatus.FIRING, now,
        ("r-1", "r-2"), {"low_mmol_l": 3.0}, Explanation("glucose.low"),
    )  # fmt: skip
    with session_scope(deployment.registry) as s:
        [alert_id] = AlertRepository(s).record(decide("p-wang", [finding], [], now=now))
    return alert_id


def test_doctor_lists_and_acknowledges_family_and_patient_may_not(deployment: Deployment) -> None:
    alert_id = _fire(deployment)
    url = "/api/v1/patients/p-wang/alerts"
    doctor = _bearer(deployment.login("dr.zhang"))
    patient = _bearer(deployment.sms_login("13800000001"))
    [listed] = deployment.client.get(url, headers=doctor, params={"state": "firing"}).json()
    assert (listed["id"], listed["rule_id"], listed["reading_ids"]) == (
        alert_id,
        "G1",
        ["r-1", "r-2"],
    )
    assert deployment.client.get(url, headers=doctor, params={"state": "resolved"}).json() == []
    assert deployment.client.get(url, headers=patient).status_code == 200
    ack = f"{url}/{alert_id}/acknowledge"
    assert deployment.client.post(ack, headers=patient, json={"note": "ok"}).status_code == 403
    done = deployment.client.post(ack, headers=doctor, json={"note": "电话确认已进食"})
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["acknowledged_by"]) == ("acknowledged", "dr.zhang")
    again = deployment.client.post(ack, headers=doctor, json={"note": "again"})
    assert again.status_code == 409
    with session_scope(deployment.registry, write=False) as s:
        assert "due" not in set(s.scalars(select(EscalationStep.status)))
        actions = set(
            s.scalars(select(AuditRecord.action).where(AuditRecord.target == f"alert:{alert_id}"))
        )
    assert "alert.acknowledge" in actions
