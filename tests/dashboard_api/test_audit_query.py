"""``GET /api/v1/audit``: the admin finds who did what to whom; the query is audited too."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, select, text

from registry.db import session_scope
from registry.models import AuditRecord
from tests.dashboard_api.conftest import Deployment

ROUTE = "GET /api/v1/patients/{patient_id}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_filters_by_actor_patient_action_outcome_and_time(deployment: Deployment) -> None:
    client = deployment.client
    doctor = _bearer(deployment.login("dr.zhang"))
    stranger = _bearer(deployment.login("dr.chen"))
    client.get("/api/v1/patients/p-wang", headers=doctor)
    client.get("/api/v1/patients/p-li", headers=doctor)  # not his patient: denied
    client.get("/api/v1/patients/p-wang", headers=stranger)  # not his patient: denied
    admin = _bearer(deployment.login("admin"))

    def rows(**params: object) -> list[dict[str, object]]:
        answer = client.get("/api/v1/audit", headers=admin, params=params)
        assert answer.status_code == 200, answer.text
        data: list[dict[str, object]] = answer.json()["data"]
        return data

    mine = rows(actor="dr.zhang", action=ROUTE)
    assert [(r["patient_ids"], r["outcome"]) for r in mine] == [
        (["p-li"], "denied"),
        (["p-wang"], "ok"),
    ]
    about_wang = rows(patient_id="p-wang", action=ROUTE)
    assert [(r["actor"], r["outcome"]) for r in about_wang] == [
        ("dr.chen", "denied"),
        ("dr.zhang", "ok"),
    ]
    # "p-wan" is no patient: a quoted, exact element match, not a substring of p-wang.
    assert rows(patient_id="p-wan") == []
    assert rows(patient_id="p-%") == []
    denied = rows(outcome="denied", action=ROUTE)
    assert {r["actor"] for r in denied} == {"dr.zhang", "dr.chen"}
    now = deployment.clock.now
    assert rows(since=(now).isoformat(), action=ROUTE) != []
    assert rows(until=(now).isoformat(), action=ROUTE) == []
    naive = client.get("/api/v1/audit", headers=admin, params={"since": "2026-03-02T00:00"})
    assert naive.status_code == 422

    first = client.get("/api/v1/audit", headers=admin, params={"limit": 2}).json()
    cursor = first["next_before_seq"]
    assert cursor == first["data"][1]["seq"]
    second = client.get("/api/v1/audit", headers=admin, params={"limit": 2, "before_seq": cursor})
    assert second.json()["data"][0]["seq"] == cursor - 1
    assert client.get("/api/v1/audit", headers=admin, params={"limit": 100_000}).status_code == 422


def test_querying_the_audit_log_is_itself_audited(deployment: Deployment) -> None:
    admin = _bearer(deployment.login("admin"))
    answer = deployment.client.get(
        "/api/v1/audit", headers=admin, params={"patient_id": "p-wang", "actor": "dr.zhang"}
    )
    assert answer.status_code == 200
    with session_scope(deployment.registry, write=False) as session:
        (row,) = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "GET /api/v1/audit")
        ).all()
        assert row.actor == "admin"
        assert row.actor_role == "admin"
        assert json.loads(row.patient_ids) == ["p-wang"]
        assert json.loads(row.detail)["actor"] == "dr.zhang"
    nurse = _bearer(deployment.login("nurse.liu"))
    assert deployment.client.get("/api/v1/audit", headers=nurse).status_code == 403
    assert deployment.client.get("/api/v1/audit/verify", headers=nurse).status_code == 403
    verified = deployment.client.get("/api/v1/audit/verify", headers=admin).json()
    assert verified["intact"] is True


def test_verify_names_the_first_broken_seq_when_a_row_was_changed(
    deployment: Deployment,
) -> None:
    admin = _bearer(deployment.login("admin"))
    intact = deployment.client.get("/api/v1/audit/verify", headers=admin).json()
    assert intact["intact"] is True
    assert intact["first_broken_seq"] is None
    plain = create_engine(deployment.registry.url)
    try:
        with plain.begin() as connection:  # the attacker's engine: append-only triggers off
            if plain.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            else:
                connection.execute(text("DROP TRIGGER audit_log_append_only_update"))
            connection.execute(text("UPDATE audit_log SET outcome = 'denied' WHERE seq = 2"))
            if plain.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
    finally:
        plain.dispose()
    broken = deployment.client.get("/api/v1/audit/verify", headers=admin).json()
    assert broken["intact"] is False
    assert broken["first_broken_seq"] == 2
    assert any("seq=2: content_changed" in problem for problem in broken["problems"])
