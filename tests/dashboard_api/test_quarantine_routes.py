"""The IT operator's quarantine through the API: list, inspect (audited as health data),
release once the cause is fixed, security events.

Entries are quarantined the way the ingest worker does it: the real examination against
the real registry's ownership check, into the real quarantine table.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from ingest.examine import examine_message
from ingest.validate import DEFAULT_LIMITS
from readings.codec import encode_envelope
from readings.model import GlucoseValues, Kind, Reading, new_reading
from readings.topics import readings_topic
from readings.units import Unit
from registry.db import session_scope
from registry.models import AuditRecord
from registry.ownership import OwnershipChecker
from registry.quarantine import QuarantineStore
from registry.repositories import DeviceRepository
from tests.dashboard_api.conftest import GATEWAY, Deployment

NEW_METER = "Acme-Meter-0009"
"""A meter the family bought and used before anyone bound it to 王芳."""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _reading(deployment: Deployment, glucose: float = 6.2, seq: int = 1) -> Reading:
    now = deployment.clock.now
    return new_reading(
        values=GlucoseValues(glucose=glucose),
        source_unit=Unit.MMOL_PER_L,
        measured_at=now - timedelta(minutes=5),
        received_at=now,
        device_id=NEW_METER,
        patient_id="p-wang",
        gateway_id=GATEWAY,
        seq=seq,
    )


def _ingest(deployment: Deployment, readings: list[Reading]) -> None:
    """What the ingest worker does with a message: examine it, quarantine the refusals."""
    examination = examine_message(
        readings_topic(GATEWAY),
        encode_envelope(GATEWAY, deployment.clock.now, readings),
        ownership=OwnershipChecker(deployment.registry, cache_ttl_seconds=0),
        limits=DEFAULT_LIMITS,
        now=deployment.clock.now,
    )
    entries = [d.entry for d in examination.refused if d.entry is not None]
    assert entries, "nothing was quarantined"
    QuarantineStore(deployment.registry).add_many(entries)


def _rows(deployment: Deployment, action: str) -> list[AuditRecord]:
    with session_scope(deployment.registry, write=False) as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
        ).all()
        session.expunge_all()
        return list(rows)


def _copies(deployment: Deployment, reading_id: str) -> int:
    now = deployment.clock.now
    stored = deployment.store.readings(
        "p-wang", Kind.GLUCOSE, now - timedelta(days=1), now + timedelta(days=1)
    )
    return sum(1 for reading in stored if reading.id == reading_id)


def test_a_reading_of_an_unbound_meter_is_released_once_the_meter_is_bound(
    deployment: Deployment,
) -> None:
    reading = _reading(deployment)
    _ingest(deployment, [reading])
    it = _bearer(deployment.login("it.ops"))
    client = deployment.client

    listed = client.get("/api/v1/quarantine", headers=it, params={"reason": "ownership"}).json()
    (entry,) = listed["data"]
    assert (entry["reason"], entry["detail"], entry["gateway_id"]) == (
        "ownership",
        "unknown_device",
        GATEWAY,
    )
    assert "raw" not in entry
    url = f"/api/v1/quarantine/{entry['id']}/release"

    # Not fixed yet: still refused, with the reason; nothing stored.
    first = client.post(url, headers=it, json={"reason": "trying before the binding"})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "id": entry["id"],
        "released": False,
        "already_released": False,
        "stored_ids": [],
        "still_refused": ["ownership: unknown_device"],
    }
    assert _copies(deployment, reading.id) == 0

    with session_scope(deployment.registry) as session:
        DeviceRepository(session, clock=deployment.clock).bind(
            NEW_METER, GATEWAY, "p-wang", at=deployment.clock.now - timedelta(days=1)
        )
    released = client.post(url, headers=it, json={"reason": "meter bound to its patient"})
    assert released.json() == {
        "id": entry["id"],
        "released": True,
        "already_released": False,
        "stored_ids": [reading.id],
        "still_refused": [],
    }
    assert _copies(deployment, reading.id) == 1

    again = client.post(url, headers=it, json={"reason": "clicked twice"})
    assert again.json()["already_released"] is True
    assert again.json()["stored_ids"] == []
    assert _copies(deployment, reading.id) == 1

    assert client.get("/api/v1/quarantine", headers=it).json()["data"] == []
    kept = client.get("/api/v1/quarantine", headers=it, params={"include_released": True})
    (entry_after,) = kept.json()["data"]
    assert entry_after["released_by"] == "it.ops"
    assert entry_after["release_reason"] == "meter bound to its patient"

    # The doctor now sees it, once, through the readings route.
    doctor = _bearer(deployment.login("dr.zhang"))
    series = client.get(
        "/api/v1/patients/p-wang/readings",
        headers=doctor,
        params={
            "kind": "glucose",
            "start": (deployment.clock.now - timedelta(hours=1)).isoformat(),
            "end": (deployment.clock.now + timedelta(hours=1)).isoformat(),
        },
    ).json()
    assert [point["id"] for point in series["points"]].count(reading.id) == 1

    audit = _rows(deployment, "POST /api/v1/quarantine/{quarantine_id}/release")
    assert [(row.outcome, json.loads(row.patient_ids)) for row in audit] == [
        ("rejected", ["p-wang"]),
        ("ok", ["p-wang"]),
        ("rejected", ["p-wang"]),
    ]
    assert [json.loads(row.detail)["already_released"] for row in audit] == [False, False, True]
    ingest_rows = _rows(deployment, "quarantine.release")
    assert [(row.actor, row.outcome) for row in ingest_rows] == [
        ("it.ops", "rejected"),
        ("it.ops", "ok"),
    ]


def test_inspecting_the_raw_payload_is_audited_as_health_data(deployment: Deployment) -> None:
    reading = _reading(deployment, glucose=7.7)
    _ingest(deployment, [reading])
    it = _bearer(deployment.login("it.ops"))
    (entry,) = deployment.client.get("/api/v1/quarantine", headers=it).json()["data"]
    shown = deployment.client.get(f"/api/v1/quarantine/{entry['id']}", headers=it)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert json.loads(body["raw"])["id"] == reading.id
    assert body["raw_base64"]
    assert body["full_detail"] == "unknown_device"
    (row,) = _rows(deployment, "GET /api/v1/quarantine/{quarantine_id}")
    assert json.loads(row.patient_ids) == ["p-wang"]
    assert json.loads(row.detail)["health_data"] is True
    assert row.actor_role == "it_operator"

    missing = deployment.client.get("/api/v1/quarantine/999999", headers=it)
    assert missing.status_code == 404


def test_the_list_does_not_quote_the_refused_value(deployment: Deployment) -> None:
    # Bind the meter so that only plausibility can refuse: 99.9 mmol/L is beyond any meter.
    with session_scope(deployment.registry) as session:
        DeviceRepository(session, clock=deployment.clock).bind(
            NEW_METER, GATEWAY, "p-wang", at=deployment.clock.now - timedelta(days=1)
        )
    _ingest(deployment, [_reading(deployment, glucose=99.9)])
    it = _bearer(deployment.login("it.ops"))
    (entry,) = deployment.client.get(
        "/api/v1/quarantine", headers=it, params={"reason": "plausibility"}
    ).json()["data"]
    assert entry["detail"] == "$.readings[0].values.glucose: glucose_out_of_meter_range"
    assert "99.9" not in json.dumps(entry)
    full = deployment.client.get(f"/api/v1/quarantine/{entry['id']}", headers=it).json()
    assert "99.9" in full["full_detail"]


def test_filters_pages_and_security_events(deployment: Deployment) -> None:
    _ingest(deployment, [_reading(deployment, seq=seq) for seq in (1, 2, 3)])
    it = _bearer(deployment.login("it.ops"))
    client = deployment.client
    first = client.get("/api/v1/quarantine", headers=it, params={"limit": 2}).json()
    assert (len(first["data"]), first["next_offset"]) == (2, 2)
    rest = client.get("/api/v1/quarantine", headers=it, params={"limit": 2, "offset": 2}).json()
    assert (len(rest["data"]), rest["next_offset"]) == (1, None)
    ids = {e["id"] for e in first["data"]} | {e["id"] for e in rest["data"]}
    assert len(ids) == 3
    other = client.get("/api/v1/quarantine", headers=it, params={"gateway": "gw-0002"}).json()
    assert other["data"] == []
    later = (deployment.clock.now + timedelta(minutes=1)).isoformat()
    assert (
        client.get("/api/v1/quarantine", headers=it, params={"since": later}).json()["data"] == []
    )
    naive = client.get("/api/v1/quarantine", headers=it, params={"since": "2026-03-02T00:00"})
    assert naive.status_code == 422
    assert client.get("/api/v1/quarantine", headers=it, params={"limit": 10_000}).status_code == 422

    events = client.get("/api/v1/security-events", headers=it).json()["data"]
    assert len(events) == 3
    assert {(e["device_id"], e["claimed_patient_id"], e["reason"]) for e in events} == {
        (NEW_METER, "p-wang", "unknown_device")
    }


def test_only_it_operators_see_the_quarantine(deployment: Deployment) -> None:
    _ingest(deployment, [_reading(deployment)])
    client = deployment.client
    it = _bearer(deployment.login("it.ops"))
    (entry,) = client.get("/api/v1/quarantine", headers=it).json()["data"]
    for username in ("admin", "dr.zhang", "nurse.liu"):
        headers = _bearer(deployment.login(username))
        for method, url in (
            ("get", "/api/v1/quarantine"),
            ("get", f"/api/v1/quarantine/{entry['id']}"),
            ("get", "/api/v1/quarantine/999999"),  # the same answer: ids cannot be probed
            ("get", "/api/v1/security-events"),
        ):
            answer = client.request(method, url, headers=headers)
            assert answer.status_code == 403, (username, url)
        refused = client.post(
            f"/api/v1/quarantine/{entry['id']}/release",
            headers=headers,
            json={"reason": "not mine to release"},
        )
        assert refused.status_code == 403
    assert QuarantineStore(deployment.registry).get(entry["id"]).released_at is None


def test_release_refuses_unknown_fields_and_needs_a_reason(deployment: Deployment) -> None:
    _ingest(deployment, [_reading(deployment)])
    it = _bearer(deployment.login("it.ops"))
    (entry,) = deployment.client.get("/api/v1/quarantine", headers=it).json()["data"]
    url = f"/api/v1/quarantine/{entry['id']}/release"
    for body in (
        {"reason": "x", "released_by": "someone.else"},
        {"reason": ""},
        {},
    ):
        assert deployment.client.post(url, headers=it, json=body).status_code == 422, body
