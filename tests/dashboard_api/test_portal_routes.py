"""The portal's routes: inviting a relative by SMS, what to do now, reporting a symptom,
notification preferences — each as the patient, and refused to whoever is not hers."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from readings.model import GlucoseValues, new_reading
from readings.units import Unit
from registry.alert_models import AlertRow, EscalationStep
from registry.care_models import FamilyConsent, FamilyLink, UserAccount
from registry.db import session_scope
from registry.models import AuditRecord
from registry.visit_models import VisitKind
from registry.visit_reminder_models import VisitReminder
from registry.visits import Reason, VisitRepository
from tests.dashboard_api.conftest import GATEWAY, METER, Deployment

PATIENT = "/api/v1/patients/p-wang"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sms_lines(deployment: Deployment) -> list[dict[str, str]]:
    if not deployment.sms_file.exists():
        return []
    return [json.loads(line) for line in deployment.sms_file.read_text().splitlines()]


def test_an_invitation_creates_the_account_links_it_records_the_consent_and_sends_the_link(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    before = len(_sms_lines(deployment))
    answer = deployment.client.post(
        f"{PATIENT}/family/invitations",
        headers=patient,
        json={"phone": "139 1234 5678", "relationship": "儿子", "scopes": ["receive_alerts"]},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["phone_hint"] == "5678"
    assert body["sms_sent"] is True
    assert body["scopes"] == ["receive_alerts"]
    assert body["relationship"] == "儿子"
    assert "username" not in body
    assert "created" not in json.dumps(body)
    sms = _sms_lines(deployment)[before:]
    assert [m["phone"] for m in sms] == ["13912345678"]
    assert "/login/sms#" in sms[0]["text"]
    assert "王芳" not in sms[0]["text"]
    # The relative logs in with the link and sees the patient, in the consented scope only.
    token = sms[0]["text"].split("#", 1)[1].split()[0]
    verified = deployment.client.post("/api/v1/auth/sms/verify", json={"token": token})
    relative = _bearer(verified.json()["access_token"])
    assert deployment.client.get(PATIENT, headers=relative).status_code == 200
    assert deployment.client.get(f"{PATIENT}/devices", headers=relative).status_code == 403
    consents = deployment.client.get(f"{PATIENT}/consents", headers=patient).json()
    mine = [c for c in consents if c["phone_hint"] == "5678"]
    assert [(c["relationship"], c["scopes"], c["in_force"]) for c in mine] == [
        ("儿子", ["receive_alerts"], True)
    ]
    with session_scope(deployment.registry, write=False) as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "family.invite")
        ).all()
        assert len(rows) == 1
        assert "13912345678" not in rows[0].detail  # the phone is not in the audit


def test_inviting_an_existing_family_account_answers_the_same_and_replaces_the_scopes(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    answer = deployment.client.post(
        f"{PATIENT}/family/invitations",
        headers=patient,
        json={
            "phone": "13800000002",
            "relationship": "女儿",
            "scopes": ["view_readings", "receive_alerts"],
        },
    )
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) == {"phone_hint", "relationship", "scopes", "granted_at", "sms_sent"}
    with session_scope(deployment.registry, write=False) as session:
        accounts = session.scalars(
            select(UserAccount.username).where(UserAccount.phone == "13800000002")
        ).all()
        assert accounts == ["wang.daughter"]  # found, not duplicated
        links = session.scalars(
            select(FamilyLink.id)
            .join(UserAccount, UserAccount.id == FamilyLink.user_id)
            .where(UserAccount.username == "wang.daughter", FamilyLink.patient_id == "p-wang")
        ).all()
        assert len(links) == 1
        in_force = session.scalars(
            select(FamilyConsent.scopes).where(
                FamilyConsent.link_id == links[0], FamilyConsent.revoked_at.is_(None)
            )
        ).all()
        assert in_force == ["receive_alerts,view_readings"]


def test_invitation_phone_numbers_are_checked_in_words(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    for phone in ("12345678901", "1380000000", "+1 415 555 0100x"):
        answer = deployment.client.post(
            f"{PATIENT}/family/invitations",
            headers=patient,
            json={"phone": phone, "relationship": "女儿", "scopes": ["view_readings"]},
        )
        assert answer.status_code == 422, (phone, answer.text)
        if isinstance(answer.json()["detail"], str):
            assert answer.json()["detail"].startswith("phone: a mainland mobile number")
    # The patient's own phone cannot become a relative's login.
    own = deployment.client.post(
        f"{PATIENT}/family/invitations",
        headers=patient,
        json={"phone": "13800000001", "relationship": "本人", "scopes": ["view_readings"]},
    )
    assert own.status_code == 422
    assert own.json()["detail"].startswith("phone: this number cannot be invited")


def test_only_the_patient_invites(deployment: Deployment) -> None:
    body = {"phone": "13912345678", "relationship": "儿子", "scopes": ["view_readings"]}
    doctor = _bearer(deployment.login("dr.zhang"))
    daughter = _bearer(deployment.sms_login("13800000002"))
    other = _bearer(deployment.login("dr.chen"))
    url = f"{PATIENT}/family/invitations"
    assert deployment.client.post(url, headers=doctor, json=body).status_code == 403
    assert deployment.client.post(url, headers=daughter, json=body).status_code == 403
    assert deployment.client.post(url, headers=other, json=body).status_code == 404


def test_a_reported_symptom_reaches_the_doctors_inbox_with_the_patients_words(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    answer = deployment.client.post(
        f"{PATIENT}/symptoms",
        headers=patient,
        json={"symptom": "chest_tightness", "note": "爬楼后"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["rule_id"], body["severity"], body["alert_opened"]) == ("SYM1", "P1", True)
    assert "120" in body["advice"]["zh-CN"]
    assert "120" in body["emergency"]["zh-CN"]
    doctor = _bearer(deployment.login("dr.zhang"))
    inbox = deployment.client.get("/api/v1/alerts", headers=doctor).json()
    mine = [a for a in inbox if a["rule_id"] == "SYM1"]
    assert len(mine) == 1
    assert mine[0]["patient_id"] == "p-wang"
    assert mine[0]["state"] == "firing"
    assert mine[0]["explanation"]["zh-CN"] == "患者报告症状：胸闷（“爬楼后”）"
    assert "chest tightness" in mine[0]["explanation"]["en"]
    # Another team's doctor never sees it.
    other = _bearer(deployment.login("dr.chen"))
    assert not [
        a
        for a in deployment.client.get("/api/v1/alerts", headers=other).json()
        if a["rule_id"] == "SYM1"
    ]
    # A second report of the same rule joins the open alert.
    again = deployment.client.post(
        f"{PATIENT}/symptoms", headers=patient, json={"symptom": "chest_tightness"}
    )
    assert again.json()["alert_opened"] is False
    dizzy = deployment.client.post(
        f"{PATIENT}/symptoms", headers=patient, json={"symptom": "dizziness"}
    )
    assert (dizzy.json()["rule_id"], dizzy.json()["severity"]) == ("SYM3", "P3")
    with session_scope(deployment.registry, write=False) as session:
        audit = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "symptom.report")
        ).all()
        assert len(audit) == 3
        assert all("爬楼后" not in row.detail for row in audit)


def test_symptom_reports_are_checked_and_rate_limited(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    url = f"{PATIENT}/symptoms"
    assert (
        deployment.client.post(url, headers=patient, json={"symptom": "other"}).status_code == 422
    )
    assert (
        deployment.client.post(url, headers=patient, json={"symptom": "fever"}).status_code == 422
    )
    for _ in range(6):
        ok = deployment.client.post(url, headers=patient, json={"symptom": "dizziness"})
        assert ok.status_code == 201, ok.text
    assert (
        deployment.client.post(url, headers=patient, json={"symptom": "dizziness"}).status_code
        == 429
    )
    deployment.clock.advance(hours=1, seconds=1)
    patient = _bearer(deployment.sms_login("13800000001"))
    assert (
        deployment.client.post(url, headers=patient, json={"symptom": "dizziness"}).status_code
        == 201
    )
    # Staff and a relative who only views readings do not report for her.
    doctor = _bearer(deployment.login("dr.zhang"))
    daughter = _bearer(deployment.sms_login("13800000002"))
    assert (
        deployment.client.post(url, headers=doctor, json={"symptom": "dizziness"}).status_code
        == 403
    )
    assert (
        deployment.client.post(url, headers=daughter, json={"symptom": "dizziness"}).status_code
        == 403
    )


def _low_glucose(deployment: Deployment, value: float, minutes_ago: int, seq: int) -> None:
    at = deployment.clock.now - timedelta(minutes=minutes_ago)
    deployment.store.write(
        [
            new_reading(
                values=GlucoseValues(glucose=value),
                source_unit=Unit.MMOL_PER_L,
                measured_at=at,
                received_at=at,
                device_id=METER,
                patient_id="p-wang",
                gateway_id=GATEWAY,
                seq=seq,
            )
        ]
    )


def test_what_to_do_now_for_a_low_gives_the_sms_words_and_says_the_doctor_was_told(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    url = f"{PATIENT}/what-to-do"
    assert deployment.client.get(url, headers=patient).json() == {"items": []}
    _low_glucose(deployment, 2.8, 5, 900)
    (item,) = deployment.client.get(url, headers=patient).json()["items"]
    assert (item["source"], item["rule_id"], item["severity"]) == ("reading", "G1", "P1")
    assert "15 克快速升糖食物" in item["advice"]["zh-CN"]
    assert "15 分钟后复测血糖" in item["advice"]["zh-CN"]
    assert "120" in item["emergency"]["zh-CN"]
    assert item["doctor_notified"] is False
    # The same low as the alert worker records it: an open alert whose doctor step ran.
    chest = deployment.client.post(
        f"{PATIENT}/symptoms", headers=patient, json={"symptom": "palpitations"}
    )
    alert_id = next(
        a["id"]
        for a in deployment.client.get(f"{PATIENT}/alerts", headers=patient).json()
        if a["rule_id"] == chest.json()["rule_id"]
    )
    with session_scope(deployment.registry) as session:
        session.execute(
            update(EscalationStep)
            .where(EscalationStep.alert_id == alert_id, EscalationStep.step_no == 0)
            .values(status="done")
        )
    items = deployment.client.get(url, headers=patient).json()["items"]
    assert [(i["rule_id"], i["source"], i["doctor_notified"]) for i in items] == [
        ("G1", "reading", False),
        ("SYM2", "alert", True),
    ]
    assert "心慌" in items[1]["advice"]["zh-CN"]
    # No internal fields: no note, no assignee, no events.
    assert set(items[1]) == {
        "source",
        "rule_id",
        "severity",
        "metric",
        "advice_key",
        "advice",
        "emergency",
        "doctor_notified",
        "at",
    }


def test_what_to_do_is_the_patients_own(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    deployment.client.post(
        f"{PATIENT}/symptoms", headers=patient, json={"symptom": "chest_tightness"}
    )
    # Another patient's family member (wang.son's consent was revoked) and another team's
    # doctor: not found, the same answer as for a patient who does not exist.
    son = _bearer(deployment.sms_login("13800000003"))
    other = _bearer(deployment.login("dr.chen"))
    for headers in (son, other):
        answer = deployment.client.get(f"{PATIENT}/what-to-do", headers=headers)
        assert (answer.status_code, answer.json()) == (404, {"detail": "patient not found"})
    # A relative whose consent covers readings only: what her readings call for, never the
    # alerts (the SYM1 alert is not in her answer).
    daughter = _bearer(deployment.sms_login("13800000002"))
    answer = deployment.client.get(f"{PATIENT}/what-to-do", headers=daughter)
    assert answer.json() == {"items": []}
    _low_glucose(deployment, 2.7, 3, 901)
    answer = deployment.client.get(f"{PATIENT}/what-to-do", headers=daughter)
    assert [(i["source"], i["rule_id"]) for i in answer.json()["items"]] == [("reading", "G1")]
    with session_scope(deployment.registry, write=False) as session:
        assert session.scalars(select(AlertRow.rule_id)).all() == ["SYM1"]


def test_notification_preferences_round_trip(deployment: Deployment) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    url = f"{PATIENT}/notification-preferences"
    first = deployment.client.get(url, headers=patient).json()
    assert (first["channel"], first["quiet_start"], first["urgent_always"]) == ("sms", None, True)
    saved = deployment.client.put(
        url,
        headers=patient,
        json={"channel": "wechat", "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert saved.status_code == 200, saved.text
    again = deployment.client.get(url, headers=patient).json()
    assert (again["channel"], again["quiet_start"], again["quiet_end"], again["updated_by"]) == (
        "wechat",
        "22:00:00",
        "07:00:00",
        "wang.fang",
    )
    half = deployment.client.put(
        url, headers=patient, json={"channel": "sms", "quiet_start": "22:00"}
    )
    assert half.status_code == 422
    assert half.json()["detail"].startswith("quiet_hours")
    doctor = _bearer(deployment.login("dr.zhang"))
    other = _bearer(deployment.login("dr.chen"))
    assert deployment.client.get(url, headers=doctor).status_code == 403
    assert deployment.client.get(url, headers=other).status_code == 404


def test_the_patient_opts_in_to_the_visit_sms_and_her_scheduled_visit_gets_one(
    deployment: Deployment,
) -> None:
    now = deployment.clock()
    with session_scope(deployment.registry) as s:
        repo = VisitRepository(s, clock=deployment.clock)
        opened = repo.open(
            "p-wang",
            Reason.routine("routine:hypertension", note=""),
            kind=VisitKind.HOME_VISIT,
            priority=3,
            earliest=now,
            latest=now + timedelta(days=14),
            actor="dr.zhang",
            assignee="nurse.liu",
        )
        repo.schedule(opened.task.id, now + timedelta(days=3), actor="nurse.liu", reason="")

    def patient_sms() -> list[str]:
        with session_scope(deployment.registry, write=False) as s:
            return list(
                s.scalars(
                    select(VisitReminder.status).where(
                        VisitReminder.task_id == opened.task.id,
                        VisitReminder.audience == "patient",
                    )
                )
            )

    assert patient_sms() == []  # off until she chooses it
    patient = _bearer(deployment.sms_login("13800000001"))
    url = f"{PATIENT}/notification-preferences"
    assert deployment.client.get(url, headers=patient).json()["visit_reminder_sms"] is False
    saved = deployment.client.put(
        url, headers=patient, json={"channel": "sms", "visit_reminder_sms": True}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["visit_reminder_sms"] is True
    assert patient_sms() == ["due"]  # her open visit is re-planned at once
    # Saving other settings without the field leaves the choice as it is.
    kept = deployment.client.put(url, headers=patient, json={"channel": "wechat"})
    assert kept.json()["visit_reminder_sms"] is True
