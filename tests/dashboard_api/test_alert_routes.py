"""The alert routes end to end: a firing alert listed, acknowledged by the doctor only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from readings.model import Kind
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


def _fire_one(
    deployment: Deployment,
    patient_id: str,
    rule_id: str = "G2",
    severity: Severity = Severity.P2,
) -> int:
    """A firing alert with an explanation that has parameters (rule G2: lows counted)."""
    now = deployment.clock()
    finding = Finding(
        patient_id, rule_id, 3, Metric.GLUCOSE, severity, FindingStatus.FIRING, now,
        ("r-7", "r-8", "r-9"), {"low_mmol_l": 3.9},
        Explanation("glucose.low_count", {"count": 3, "threshold_mmol_l": 3.9, "days": 7}),
    )  # fmt: skip
    with session_scope(deployment.registry) as s:
        repo = AlertRepository(s)
        [alert_id] = repo.record(
            decide(patient_id, [finding], repo.open_alerts(patient_id), now=now)
        )
    return alert_id


def test_detail_carries_readings_rule_thresholds_explanation_and_events(
    deployment: Deployment,
) -> None:
    mine = _fire_one(deployment, "p-wang")
    theirs = _fire_one(deployment, "p-li")
    doctor = _bearer(deployment.login("dr.zhang"))
    got = deployment.client.get(f"/api/v1/patients/p-wang/alerts/{mine}", headers=doctor)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["rule_id"], body["rule_version"], body["reading_ids"]) == (
        "G2",
        3,
        ["r-7", "r-8", "r-9"],
    )
    assert body["thresholds"] == {"low_mmol_l": 3.9}
    assert (body["explanation_key"], body["explanation_params"]) == (
        "glucose.low_count",
        {"count": 3, "threshold_mmol_l": 3.9, "days": 7},
    )
    assert [(e["kind"], e["to_state"]) for e in body["events"]] == [("fire", "firing")]
    # Another patient's alert under my patient's path: the gate's 404, and it is audited.
    probe = deployment.client.get(f"/api/v1/patients/p-wang/alerts/{theirs}", headers=doctor)
    assert (probe.status_code, probe.json()) == (404, {"detail": "patient not found"})
    with session_scope(deployment.registry, write=False) as s:
        denied = s.scalars(
            select(AuditRecord.outcome).where(AuditRecord.target == f"alert:{theirs}")
        ).all()
    assert "denied" in denied


def test_resolve_snooze_assign_need_act_on_alert_and_leave_events(deployment: Deployment) -> None:
    alert_id = _fire_one(deployment, "p-wang", "G1", Severity.P1)
    base = f"/api/v1/patients/p-wang/alerts/{alert_id}"
    nurse = _bearer(deployment.login("nurse.liu"))
    patient = _bearer(deployment.sms_login("13800000001"))
    snooze = {"reason": "家访中", "minutes": 60}
    assert deployment.client.post(f"{base}/snooze", headers=patient, json=snooze).status_code == 403
    # P1: the lifecycle caps a silence at 2 h; longer is refused and records nothing.
    too_long = deployment.client.post(
        f"{base}/snooze", headers=nurse, json={"reason": "away", "minutes": 180}
    )
    assert too_long.status_code == 422, too_long.text
    snoozed = deployment.client.post(f"{base}/snooze", headers=nurse, json=snooze)
    assert snoozed.status_code == 200, snoozed.text
    assert [e["kind"] for e in snoozed.json()["events"]] == ["fire", "snooze"]
    with session_scope(deployment.registry, write=False) as s:
        [silence] = AlertRepository(s).silences("p-wang", deployment.clock())
    assert (silence.author, silence.reason, silence.severity) == (
        "nurse.liu",
        "家访中",
        Severity.P1,
    )
    assert silence.ends_at - silence.starts_at == timedelta(minutes=60)
    unknown = deployment.client.post(f"{base}/assign", headers=nurse, json={"username": "nobody"})
    assert unknown.status_code == 422
    assigned = deployment.client.post(
        f"{base}/assign", headers=nurse, json={"username": "dr.zhang"}
    )
    assert assigned.json()["assignee"] == "dr.zhang"
    note = {"note": "上门复测 6.1 mmol/L"}
    assert deployment.client.post(f"{base}/resolve", headers=patient, json=note).status_code == 403
    resolved = deployment.client.post(f"{base}/resolve", headers=nurse, json=note)
    assert (resolved.status_code, resolved.json()["state"]) == (200, "resolved")
    assert deployment.client.post(f"{base}/resolve", headers=nurse, json=note).status_code == 409
    with session_scope(deployment.registry, write=False) as s:
        events = AlertRepository(s).events(alert_id)
        assert "due" not in set(
            s.scalars(select(EscalationStep.status).where(EscalationStep.alert_id == alert_id))
        )
    assert [(e.kind, e.actor) for e in events][-2:] == [
        ("assign", "nurse.liu"),
        ("resolve", "nurse.liu"),
    ]
    assert events[-1].reason == note["note"]


def test_inbox_lists_only_patients_one_may_read_alerts_of_and_tracks_read(
    deployment: Deployment,
) -> None:
    first = _fire_one(deployment, "p-wang", "G2")
    second = _fire_one(deployment, "p-wang", "G1", Severity.P1)
    other = _fire_one(deployment, "p-li", "G2")
    zhang = _bearer(deployment.login("dr.zhang"))
    chen = _bearer(deployment.login("dr.chen"))
    daughter = _bearer(deployment.sms_login("13800000002"))  # consent: readings only

    def ids(headers: dict[str, str], **params: str) -> list[int]:
        got = deployment.client.get("/api/v1/alerts", headers=headers, params=params)
        assert got.status_code == 200, got.text
        return [item["id"] for item in got.json()]

    assert ids(zhang) == [second, first]
    assert ids(chen) == [other]
    assert ids(daughter) == []
    assert ids(zhang, severity="P1") == [second]
    [item] = deployment.client.get(
        "/api/v1/alerts", headers=zhang, params={"severity": "P1"}
    ).json()
    assert (item["patient_id"], item["patient_name"], item["read"]) == ("p-wang", "王芳", False)
    read = deployment.client.post(f"/api/v1/patients/p-wang/alerts/{first}/read", headers=zhang)
    assert read.status_code == 204
    again = deployment.client.post(f"/api/v1/patients/p-wang/alerts/{first}/read", headers=zhang)
    assert again.status_code == 204
    assert ids(zhang, unread="true") == [second]
    assert ids(zhang, unread="false") == [first]
    # Read is per reader: the nurse of the team still has both unread.
    nurse = _bearer(deployment.login("nurse.liu"))
    assert ids(nurse, unread="true") == [second, first]
    marked = deployment.client.post("/api/v1/alerts/mark-all-read", headers=zhang)
    assert marked.json() == {"marked": 1}
    assert ids(zhang, unread="true") == []
    assert ids(chen, unread="true") == [other]
    with session_scope(deployment.registry, write=False) as s:
        seen = s.scalars(select(AuditRecord.actor).where(AuditRecord.action == "alert.seen")).all()
        inbox_rows = s.scalars(
            select(AuditRecord.id).where(AuditRecord.action == "GET /api/v1/alerts")
        ).all()
    assert sorted(seen) == ["dr.zhang", "dr.zhang"]
    assert len(inbox_rows) == 10  # every inbox answer audited


def test_detail_carries_the_alerts_visit_task_and_its_outcome_to_staff_only(
    deployment: Deployment,
) -> None:
    alert_id = _fire_one(deployment, "p-wang")
    url = f"/api/v1/patients/p-wang/alerts/{alert_id}"
    visits = "/api/v1/patients/p-wang/visits"
    doctor = _bearer(deployment.login("dr.zhang"))
    nurse = _bearer(deployment.login("nurse.liu"))
    patient = _bearer(deployment.sms_login("13800000001"))
    assert deployment.client.get(url, headers=doctor).json()["visits"] == []
    body = {"alert_id": alert_id, "kind": "home_visit", "assignee": "nurse.liu"}
    first = deployment.client.post(visits, headers=doctor, json=body).json()["task"]
    at = (deployment.clock() + timedelta(hours=3)).isoformat()
    post = deployment.client.post
    assert post(f"{visits}/{first['id']}/schedule", headers=nurse, json={"at": at}).is_success
    missed = post(f"{visits}/{first['id']}/missed", headers=nurse, json={"reason": "家中无人"})
    assert missed.status_code == 200, missed.text
    [shown] = deployment.client.get(url, headers=doctor).json()["visits"]
    assert (shown["id"], shown["status"], shown["closing_reason"]) == (
        first["id"],
        "missed",
        "家中无人",
    )
    # The patient reads the alert, not the staff's reason for the missed visit.
    assert deployment.client.get(url, headers=patient).json()["visits"] == []

    second = post(visits, headers=doctor, json=body).json()["task"]
    assert post(f"{visits}/{second['id']}/schedule", headers=nurse, json={"at": at}).is_success
    # The nurse's queue names the patient (it spans her team's patients) and the reason.
    [queued] = deployment.client.get("/api/v1/visits/queue", headers=nurse).json()["data"]
    assert (queued["id"], queued["patient_id"], queued["patient_name"], queued["reason_key"]) == (
        second["id"],
        "p-wang",
        "王芳",
        "rule:G2",
    )
    form = {
        "check_in_at": at,
        "check_out_at": at,
        "consent": True,
        "assessment": "空腹血糖已正常",
        "vitals": {"glucose_mmol_l": 6.1, "glucose_meal": "fasting", "temperature_c": 36.8},
        "programme": "diabetes_type2",
        "classification": "controlled",
        "resolve_alert": True,
        "resolve_note": "上门复测已好转",
    }
    done = post(f"{visits}/{second['id']}/complete", headers=nurse, json=form)
    assert done.status_code == 200, done.text
    assert done.json()["alert_resolved"] is True
    stored = {
        r.kind: r for r in deployment.store.last_readings("p-wang").values()
        if r.id in done.json()["reading_ids"]
    }  # fmt: skip
    assert set(stored) == {Kind.GLUCOSE, Kind.BODY_TEMPERATURE}
    assert stored[Kind.GLUCOSE].context["meal"] == "fasting"
    assert "meal" not in stored[Kind.BODY_TEMPERATURE].context
    resolved = deployment.client.get(url, headers=doctor).json()
    assert [e["reason"] for e in resolved["events"] if e["kind"] == "resolve"] == ["上门复测已好转"]
    following = done.json()["next_task"]
    listed = deployment.client.get(url, headers=doctor).json()["visits"]
    assert [(v["id"], v["status"]) for v in listed] == [
        (first["id"], "missed"),
        (second["id"], "completed"),
    ]
    assert listed[1]["classification"] == "controlled"
    assert listed[1]["closing_reason"] is None
    assert listed[1]["next_task"] == {
        k: following[k] for k in ("id", "code", "kind", "status", "earliest", "latest")
    }
