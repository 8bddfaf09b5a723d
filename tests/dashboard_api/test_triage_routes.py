"""The triage routes: whose patients, buckets and text, mark reviewed and undo, audit rows."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from readings.model import GlucoseValues, new_reading
from readings.units import Unit
from registry.care import PatientCareRepository
from registry.care_models import Condition, PatientStatus
from registry.db import session_scope
from registry.fleet_models import DeviceStatusRow, GatewayStatusRow
from registry.models import AuditRecord, Patient
from registry.teams import ContractRepository
from tests.dashboard_api.conftest import GATEWAY, METER, T0, Deployment
from tests.fakes import ManualClock

TRIAGE = "/api/v1/triage"


def _auth(deployment: Deployment, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployment.login(username)}"}


def _lows(deployment: Deployment) -> None:
    """p-wang: a meter reading of 2.8 mmol/L yesterday (level 2 hypoglycaemia)."""
    at = T0 - timedelta(days=1)
    deployment.store.write(
        [
            new_reading(
                values=GlucoseValues(glucose=2.8),
                source_unit=Unit.MMOL_PER_L,
                measured_at=at,
                received_at=at,
                device_id=METER,
                patient_id="p-wang",
                gateway_id=GATEWAY,
                seq=900,
            )
        ]
    )


def _second_patient(deployment: Deployment) -> None:
    """p-other joins team-a, lives in 一村, has hypertension and never measured."""
    with session_scope(deployment.registry) as session:
        ContractRepository(session, clock=ManualClock(T0 - timedelta(days=5))).sign(
            "p-other", "team-a", service_package="basic", starts_on=(T0 - timedelta(days=5)).date()
        )
        session.get(Patient, "p-other").village = "一村"  # type: ignore[union-attr]
        PatientCareRepository(session).set_conditions("p-other", [Condition.HYPERTENSION])


def _audit_rows(deployment: Deployment, action: str) -> list[AuditRecord]:
    with session_scope(deployment.registry, write=False) as session:
        rows = list(session.scalars(select(AuditRecord).where(AuditRecord.action == action)))
        session.expunge_all()
    return rows


def test_a_doctor_sees_her_teams_patients_only_and_the_view_is_audited(
    deployment: Deployment,
) -> None:
    response = deployment.client.get(TRIAGE, headers=_auth(deployment, "dr.zhang"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["patient_id"] for e in body["prioritised"]] == ["p-wang"]
    assert body["prioritised"][0]["bucket"] == "meeting_targets"
    assert "p-li" not in response.text
    assert "李强" not in response.text
    assert [b["id"] for b in body["buckets"]][:2] == ["cgm_very_low", "meter_very_low"]
    assert body["buckets"][0]["label"]["en"] == "CGM: time < 3.0 mmol/L > 1 %"
    (row,) = _audit_rows(deployment, "GET /api/v1/triage")
    assert (row.actor, row.outcome, json.loads(row.patient_ids)) == ("dr.zhang", "ok", ["p-wang"])
    other = deployment.client.get(TRIAGE, headers=_auth(deployment, "dr.chen")).json()
    assert [e["patient_id"] for e in other["prioritised"]] == ["p-li"]
    admin = deployment.client.get(TRIAGE, headers=_auth(deployment, "admin")).json()
    assert (admin["prioritised"], admin["data_issues"]) == ([], [])
    deployment.client.cookies.clear()  # the logins above left session cookies
    assert deployment.client.get(TRIAGE).status_code == 401


def test_the_list_is_the_teams_work_list_not_everyone_who_may_read(
    deployment: Deployment,
) -> None:
    # The duty doctor (on shift now), the patient herself and a consented daughter may all
    # read p-wang's readings, but she is on none of their triage lists.
    callers = {
        "duty doctor": _auth(deployment, "dr.duty"),
        "patient": {"Authorization": f"Bearer {deployment.sms_login('13800000001')}"},
        "family": {"Authorization": f"Bearer {deployment.sms_login('13800000002')}"},
    }
    for who, headers in callers.items():
        assert deployment.client.get("/api/v1/patients/p-wang", headers=headers).status_code == 200
        body = deployment.client.get(TRIAGE, headers=headers).json()
        assert (body["prioritised"], body["data_issues"]) == ([], []), who
    nurse = deployment.client.get(TRIAGE, headers=_auth(deployment, "nurse.liu")).json()
    assert [e["patient_id"] for e in nurse["prioritised"]] == ["p-wang"]


def test_buckets_reasons_text_and_the_plain_text_copy(deployment: Deployment) -> None:
    _lows(deployment)
    headers = _auth(deployment, "dr.zhang")
    body = deployment.client.get(TRIAGE, headers=headers).json()
    (entry,) = body["prioritised"]
    assert entry["bucket"] == "meter_very_low"
    assert entry["reasons"][0] == {
        "bucket": "meter_very_low",
        "value": 1.0,
        "unit": "events",
        "second": None,
    }
    assert "指尖血糖：任一次 < 3.0 mmol/L (1)" in body["text"]
    assert next(b for b in body["buckets"] if b["id"] == "meter_very_low")["count"] == 1
    text = deployment.client.get(f"{TRIAGE}.txt?lang=en", headers=headers)
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert "Meter: any reading < 3.0 mmol/L (1)" in text.text
    assert "<" not in text.text.replace("< 3", "")  # no markup
    assert len(_audit_rows(deployment, "GET /api/v1/triage.txt")) == 1


def test_filters_and_data_issues(deployment: Deployment) -> None:
    _second_patient(deployment)
    with session_scope(deployment.registry) as session:
        now = deployment.clock.now
        session.add(
            GatewayStatusRow(
                gateway_id=GATEWAY, state="offline", since=now - timedelta(hours=30),
                since_exact=True, last_seen_at=now - timedelta(hours=30), status_at=None,
                queue_depth=None, oldest_unacked_age_seconds=None, outbox_bytes=None,
                outbox_quota_bytes=None, over_quota=False, software_version=None, updated_at=now,
            )
        )  # fmt: skip
        session.add(
            DeviceStatusRow(
                device_id=METER, gateway_id=GATEWAY, state="connected", last_contact=now,
                battery_percent=15, battery_low_at=now, last_error=None, last_error_at=None,
                readings_not_stored=0, readings_lost=0, updated_at=now,
            )
        )  # fmt: skip
    headers = _auth(deployment, "dr.zhang")
    body = deployment.client.get(TRIAGE, headers=headers).json()
    issues = {p["patient_id"]: [i["kind"] for i in p["issues"]] for p in body["data_issues"]}
    assert issues == {
        "p-other": ["not_measured"],
        "p-wang": ["gateway_offline", "battery_low"],
    }
    assert body["choices"] == {
        "teams": ["team-a"],
        "tags": ["一村"],
        "conditions": ["diabetes_type2", "hypertension"],
    }

    def ids(query: str) -> set[str]:
        answer = deployment.client.get(f"{TRIAGE}?{query}", headers=headers).json()
        return {e["patient_id"] for e in answer["data_issues"]} | {
            e["patient_id"] for e in answer["prioritised"]
        }

    assert ids("condition=diabetes_type2") == {"p-wang"}
    assert ids("tag=一村") == {"p-other"}
    assert ids("team=team-b") == set()
    assert ids("team=team-a") == {"p-wang", "p-other"}
    with session_scope(deployment.registry) as session:
        PatientCareRepository(session, clock=deployment.clock).set_status(
            "p-other", PatientStatus.HOSPITALISED, reason="admitted", recorded_by="nurse.liu"
        )
    paused = deployment.client.get(TRIAGE, headers=headers).json()
    assert paused["paused_total"] == 1
    assert ids("team=team-a") == {"p-wang"}  # in hospital: not "not measured"
    assert deployment.client.get(f"{TRIAGE}?period_days=7", headers=headers).status_code == 422


def test_mark_reviewed_sinks_the_patient_undo_the_same_day_not_the_next(
    deployment: Deployment,
) -> None:
    _lows(deployment)
    with session_scope(deployment.registry) as session:
        ContractRepository(session, clock=ManualClock(T0 - timedelta(days=5))).sign(
            "p-other", "team-a", service_package="basic", starts_on=(T0 - timedelta(days=5)).date()
        )
    at = T0 - timedelta(hours=5)
    deployment.store.write(
        [
            new_reading(
                values=GlucoseValues(glucose=6.0),
                source_unit=Unit.MMOL_PER_L,
                measured_at=at,
                received_at=at,
                device_id="Acme-Meter-0002",
                patient_id="p-other",
                gateway_id=GATEWAY,
                seq=1,
            )
        ]
    )
    headers = _auth(deployment, "dr.zhang")

    def order() -> list[str]:
        body = deployment.client.get(TRIAGE, headers=headers).json()
        return [e["patient_id"] for e in body["prioritised"]]

    assert order() == ["p-wang", "p-other"]
    marked = deployment.client.post(f"{TRIAGE}/p-wang/reviewed", headers=headers)
    assert marked.status_code == 201, marked.text
    assert marked.json()["reviewed_by"] == "dr.zhang"
    assert order() == ["p-other", "p-wang"]
    again = deployment.client.post(f"{TRIAGE}/p-wang/reviewed", headers=headers)
    assert again.status_code == 200
    (change,) = _audit_rows(deployment, "triage.reviewed")
    assert (change.actor, change.actor_role, json.loads(change.patient_ids)) == (
        "dr.zhang",
        "team_doctor",
        ["p-wang"],
    )
    undone = deployment.client.delete(f"{TRIAGE}/p-wang/reviewed", headers=headers)
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone_by"] == "dr.zhang"
    assert order() == ["p-wang", "p-other"]
    assert len(_audit_rows(deployment, "triage.review_undone")) == 1
    nothing = deployment.client.delete(f"{TRIAGE}/p-wang/reviewed", headers=headers)
    assert nothing.status_code == 409
    # Reviewed today, and tomorrow the undo is refused and the patient is back on top.
    assert deployment.client.post(f"{TRIAGE}/p-wang/reviewed", headers=headers).status_code == 201
    deployment.clock.advance(days=1)
    headers = _auth(deployment, "dr.zhang")
    late = deployment.client.delete(f"{TRIAGE}/p-wang/reviewed", headers=headers)
    assert late.status_code == 409
    assert late.json() == {"detail": "a review can be undone on the same day only"}
    refused = [r.outcome for r in _audit_rows(deployment, "triage.review_undone")]
    assert refused == ["ok", "denied", "denied"]  # the undo, nothing to undo, too late
    assert order()[0] == "p-wang"


def test_another_teams_patient_is_not_found_and_the_probe_is_audited(
    deployment: Deployment,
) -> None:
    headers = _auth(deployment, "dr.chen")
    for method in ("post", "delete"):
        for patient in ("p-wang", "p-nobody"):
            answer = deployment.client.request(
                method, f"{TRIAGE}/{patient}/reviewed", headers=headers
            )
            assert answer.status_code == 404
            assert answer.json() == {"detail": "patient not found"}
    denied = _audit_rows(deployment, "POST /api/v1/triage/{patient_id}/reviewed")
    assert [(r.outcome, json.loads(r.patient_ids)) for r in denied] == [
        ("denied", ["p-wang"]),
        ("denied", ["p-nobody"]),
    ]
    assert _audit_rows(deployment, "triage.reviewed") == []
