"""The visit routes end to end: a doctor turns an alert into a visit, the nurse schedules it,
her phone's calendar shows it without PHI, and the visit form closes it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from readings.codec import decode_envelope
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.db import session_scope
from registry.models import Patient
from tests.dashboard_api.conftest import Deployment

URL = "/api/v1/patients/p-wang/visits"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fire_b2(deployment: Deployment) -> int:
    now = deployment.clock()
    finding = Finding(
        "p-wang", "B2", 1, Metric.BLOOD_PRESSURE, Severity.P3, FindingStatus.FIRING, now,
        ("r-1",), {"sys_mmhg": 135.0}, Explanation("bp.mean_high"),
    )  # fmt: skip
    with session_scope(deployment.registry) as s:
        [alert_id] = AlertRepository(s).record(decide("p-wang", [finding], [], now=now))
        patient = s.get_one(Patient, "p-wang")
        patient.address, patient.community = "幸福路 12 号 3 单元", "和平社区"
    return alert_id


def test_alert_to_visit_to_calendar_to_record(deployment: Deployment) -> None:
    alert_id = _fire_b2(deployment)
    doctor = _bearer(deployment.login("dr.zhang"))
    nurse = _bearer(deployment.login("nurse.liu"))
    patient = _bearer(deployment.sms_login("13800000001"))
    body = {"alert_id": alert_id, "note": "王芳 家中血压偏高", "assignee": "nurse.liu"}
    made = deployment.client.post(URL, headers=doctor, json=body)
    assert made.status_code == 201, made.text
    task = made.json()["task"]
    assert made.json()["created"] is True
    assert (task["kind"], task["rule_id"], task["status"]) == ("home_visit", "B2", "requested")
    again = deployment.client.post(URL, headers=doctor, json=body).json()
    assert (again["created"], again["task"]["id"]) == (False, task["id"])
    # The patient sees the visit, not the staff's note or the rule.
    [mine] = deployment.client.get(URL, headers=patient).json()
    assert (mine["note"], mine["rule_id"], mine["status"]) == (None, None, "requested")

    queue = deployment.client.get("/api/v1/visits/queue", headers=nurse).json()
    assert [t["id"] for t in queue["data"]] == [task["id"]]
    assert queue["data"][0]["time_zone"] == "Asia/Shanghai"  # the page shows times in it
    at = deployment.clock() + timedelta(days=2)
    scheduled = deployment.client.post(
        f"{URL}/{task['id']}/schedule", headers=nurse, json={"at": at.isoformat()}
    )
    assert scheduled.json()["status"] == "scheduled", scheduled.text

    issued = deployment.client.post("/api/v1/calendar/token", headers=nurse)
    assert issued.status_code == 201
    assert deployment.client.post("/api/v1/calendar/token", headers=doctor).status_code == 403
    feed = deployment.client.get(issued.json()["path"])
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    [event] = Calendar.from_ical(feed.content).walk("VEVENT")
    assert task["code"] in str(event["summary"])
    assert str(event["location"]) == "和平社区"
    assert event.decoded("dtstart") == at
    text = feed.content.decode("utf-8")
    for secret in ("王芳", "幸福路", "p-wang", "血压偏高", "B2", "13800000001"):
        assert secret not in text
    # A reschedule (with its reason) moves the event: same UID, new DTSTART.
    later = at + timedelta(days=1, hours=3)
    moved = deployment.client.post(
        f"{URL}/{task['id']}/schedule",
        headers=nurse,
        json={"at": later.isoformat(), "reason": "患者周四才在家"},
    )
    assert moved.status_code == 200, moved.text
    [event] = Calendar.from_ical(deployment.client.get(issued.json()["path"]).content).walk(
        "VEVENT"
    )
    assert (str(event["uid"]), event.decoded("dtstart")) == (f"{task['code']}@vitalgate", later)
    assert "周四" not in deployment.client.get(issued.json()["path"]).text
    at = later
    token_path = issued.json()["path"]
    assert deployment.client.delete("/api/v1/calendar/token", headers=nurse).status_code == 204
    assert deployment.client.get(token_path).status_code == 404

    form = {
        "check_in_at": at.isoformat(),
        "check_out_at": (at + timedelta(minutes=40)).isoformat(),
        "consent": True,
        "assessment": "复测血压仍高，已调整用药",
        "vitals": {
            "systolic_mmhg": 152,
            "diastolic_mmhg": 94,
            "pulse_per_min": 78,
            "weight_kg": 70,
        },
        "programme": "hypertension",
        "classification": "not_controlled",
        "resolve_alert": True,
    }
    assert (
        deployment.client.post(
            f"{URL}/{task['id']}/complete", headers=patient, json=form
        ).status_code
        == 403
    )
    done = deployment.client.post(f"{URL}/{task['id']}/complete", headers=nurse, json=form)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["task"]["status"] == "completed"
    assert result["alert_resolved"] is True
    assert result["next_task"]["latest"] is not None
    assert len(result["reading_ids"]) == 2
    stored = deployment.store.last_readings("p-wang")
    manual = [r for r in stored.values() if r.id in result["reading_ids"]]
    assert len(manual) == 2
    assert all("manual_entry" in r.flags for r in manual)
    # Read back as the report and the alert window do, the id re-derived from what the store
    # keeps (no received_at): the vitals' record key must survive that.
    day = at.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    readings_csv = deployment.client.get(
        "/api/v1/patients/p-wang/export.csv", params={"from": day, "to": day}, headers=doctor
    )
    assert readings_csv.status_code == 200, readings_csv.text
    # Announced to the alert worker as ingest announces what it stored.
    announced = [
        r.id
        for topic, payload in deployment.commands.sent
        if topic.startswith("vitalgate/v1/accepted/")
        for r in decode_envelope(payload).readings
    ]
    assert sorted(announced) == sorted(result["reading_ids"])
    assert sum("manual_entry" in line for line in readings_csv.text.splitlines()) == 2, (
        readings_csv.text[:3000]
    )
    with session_scope(deployment.registry, write=False) as s:
        assert s.get_one(AlertRow, alert_id).resolved_at is not None
    # A closed task cannot be closed again.
    closed = deployment.client.post(
        f"{URL}/{task['id']}/cancel", headers=nurse, json={"reason": "x"}
    )
    assert closed.status_code == 409
