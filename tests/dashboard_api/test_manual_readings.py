"""A reading typed in by hand: stored with manual provenance through ingest's plausibility
rules, shown in the chart series, audited; refused values name the body field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from alerts.evaluator import Evaluator, RegistryPatientDirectory
from alerts.model import Finding, FindingStatus
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from alerts.window import reading_from_stored
from readings.codec import decode_envelope
from readings.model import Kind
from readings.topics import accepted_topic, partition_for
from registry.db import session_scope
from registry.models import AuditRecord
from tests.dashboard_api.conftest import Deployment

URL = "/api/v1/patients/p-wang/readings/manual"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _stored(deployment: Deployment, kind: Kind) -> list[Any]:
    now = deployment.clock()
    return [
        r
        for r in deployment.store.readings(
            "p-wang", kind, now - timedelta(days=2), now + timedelta(minutes=1)
        )
        if "manual_entry" in r.flags
    ]


def test_the_patient_types_in_a_blood_pressure_and_it_is_stored_as_manual(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    at = deployment.clock() - timedelta(minutes=5)
    answer = deployment.client.post(
        URL,
        headers=patient,
        json={
            "kind": "blood_pressure",
            "systolic_mmhg": 142,
            "diastolic_mmhg": 91,
            "pulse_per_min": 70,
            "measured_at": at.isoformat(),
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["values"] == {"systolic": 142.0, "diastolic": 91.0, "pulse": 70.0}
    assert (body["entered_by"], body["flags"], body["source_unit"]) == (
        "wang.fang",
        ["manual_entry"],
        "mm[Hg]",
    )
    [stored] = _stored(deployment, Kind.BLOOD_PRESSURE)
    assert stored.id == body["id"]
    assert stored.device_id == "VitalGate-ManualEntry-wang.fang"
    assert stored.gateway_id == "manual-entry"
    assert stored.context["entered_by"] == "wang.fang"
    assert stored.measured_at == at
    # The alert window and the reports rebuild it from the store, its id checked again.
    assert reading_from_stored(stored).id == stored.id
    # The chart series marks it as typed in, as it does a nurse's visit vitals.
    series = deployment.client.get(
        "/api/v1/patients/p-wang/readings",
        headers=patient,
        params={
            "kind": "blood_pressure",
            "start": (at - timedelta(hours=1)).isoformat(),
            "end": (at + timedelta(hours=1)).isoformat(),
        },
    ).json()
    [point] = [p for p in series["points"] if p["id"] == body["id"]]
    assert point["manual"] is True
    with session_scope(deployment.registry, write=False) as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "reading.manual_entry")
        ).all()
    assert [(r.actor, r.target, r.outcome) for r in rows] == [
        ("wang.fang", f"reading:{body['id']}", "ok")
    ]
    assert "p-wang" in rows[0].patient_ids


def test_glucose_in_mg_per_dl_is_stored_in_mmol_per_l_with_its_meal(
    deployment: Deployment,
) -> None:
    nurse = _bearer(deployment.login("nurse.liu"))
    answer = deployment.client.post(
        URL,
        headers=nurse,
        json={"kind": "glucose", "glucose": 101, "glucose_unit": "mg/dL", "meal": "fasting"},
    )
    assert answer.status_code == 201, answer.text
    [stored] = _stored(deployment, Kind.GLUCOSE)
    assert stored.values["glucose"] == pytest.approx(101 / 18.0156)
    assert (stored.source_unit, stored.context["meal"]) == ("mg/dL", "fasting")
    assert stored.device_id == "VitalGate-ManualEntry-nurse.liu"
    assert stored.measured_at == deployment.clock()  # now, when not given


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "blood_pressure", "systolic_mmhg": 400, "diastolic_mmhg": 90}, "systolic_mmhg"),
        ({"kind": "blood_pressure", "systolic_mmhg": 80, "diastolic_mmhg": 90}, "systolic_mmhg"),
        ({"kind": "blood_pressure", "systolic_mmhg": 120, "diastolic_mmhg": 10}, "diastolic_mmhg"),
        (
            {
                "kind": "blood_pressure",
                "systolic_mmhg": 120,
                "diastolic_mmhg": 80,
                "pulse_per_min": 5,
            },
            "pulse_per_min",
        ),
        ({"kind": "glucose", "glucose": 60}, "glucose"),
        ({"kind": "glucose", "glucose": 700, "glucose_unit": "mg/dL"}, "glucose"),
        ({"kind": "spo2", "spo2_percent": 120}, "spo2_percent"),
        ({"kind": "weight", "weight_kg": 900}, "weight_kg"),
        ({"kind": "body_temperature", "temperature_c": 52}, "temperature_c"),
        (
            {"kind": "weight", "weight_kg": 70, "measured_at": "2026-03-09T08:00:00+08:00"},
            "measured_at",
        ),
        (
            {"kind": "weight", "weight_kg": 70, "measured_at": "9999-12-31T23:00:00-12:00"},
            "measured_at",
        ),
        ({"kind": "weight", "weight_kg": 70, "measured_at": "2026-03-01T08:00:00"}, "measured_at"),
        ({"kind": "weight", "weight_kg": -1}, "weight_kg"),
    ],
)
def test_an_implausible_value_is_refused_naming_its_field(
    deployment: Deployment, body: dict[str, Any], field: str
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    answer = deployment.client.post(URL, headers=patient, json=body)
    assert answer.status_code == 422, answer.text
    named = [issue["loc"][-1] for issue in answer.json()["detail"]]
    assert field in named, answer.json()
    for kind in Kind:
        assert _stored(deployment, kind) == []


def test_who_may_type_in_a_reading(deployment: Deployment) -> None:
    body = {"kind": "weight", "weight_kg": 68.4}
    for token, expected in (
        (deployment.login("dr.zhang"), 201),
        (deployment.sms_login("13800000002"), 403),  # consent to view readings only
        (deployment.login("dr.chen"), 404),  # another team's doctor
        (deployment.login("admin"), 404),
    ):
        answer = deployment.client.post(URL, headers=_bearer(token), json=body)
        assert answer.status_code == expected, answer.text
    assert len(_stored(deployment, Kind.WEIGHT)) == 1


def test_a_low_typed_in_by_hand_reaches_the_alert_worker_and_pages_g1(
    deployment: Deployment,
) -> None:
    patient = _bearer(deployment.sms_login("13800000001"))
    answer = deployment.client.post(URL, headers=patient, json={"kind": "glucose", "glucose": 2.5})
    assert answer.status_code == 201, answer.text
    # Announced where ingest announces what it stored: the patient's accepted/ partition.
    partition = partition_for("p-wang")
    [(topic, payload)] = [
        (t, p) for t, p in deployment.commands.sent if t.startswith("vitalgate/v1/accepted/")
    ]
    assert topic == accepted_topic(partition)
    assert [r.id for r in decode_envelope(payload).readings] == [answer.json()["id"]]
    # The alert worker judges it as it judges a measured one.
    findings: list[Finding] = []
    evaluator = Evaluator(
        engine=deployment.registry,
        store=deployment.store,
        directory=RegistryPatientDirectory(deployment.registry),
        rules=default_rules(),
        evaluate=evaluate,
        sink=lambda _patient, found: findings.extend(found),
        clock=deployment.clock,
        holder="test-worker",
    )
    evaluator.refresh_leases()
    evaluator.handle_accepted(partition, payload)
    fired = [f.rule_id for f in findings if f.status is FindingStatus.FIRING]
    assert "G1" in fired, findings
