"""The export routes through the API: the visits CSV escapes staff free text and names its
formats in the headers, and its download is audited."""

from __future__ import annotations

import csv
from datetime import timedelta

from sqlalchemy import select

from registry.db import session_scope
from registry.models import AuditRecord
from registry.visit_models import VisitKind
from registry.visits import Reason, VisitRepository
from tests.dashboard_api.conftest import Deployment


def test_the_visits_csv_escapes_staff_text_and_is_audited(deployment: Deployment) -> None:
    now = deployment.clock()
    with session_scope(deployment.registry) as s:
        VisitRepository(s, clock=deployment.clock).open(
            "p-wang",
            Reason.doctor_request(VisitKind.HOME_VISIT, '=HYPERLINK("http://evil.example")'),
            kind=VisitKind.HOME_VISIT,
            priority=2,
            earliest=now,
            latest=now + timedelta(days=14),
            actor="dr.zhang",
            assignee="nurse.liu",
        )
    token = deployment.login("dr.zhang")
    day = now.date().isoformat()
    response = deployment.client.get(
        "/api/v1/patients/p-wang/export.csv",
        params={"what": "visits", "from": day, "to": day},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    [row] = list(csv.DictReader(response.content.decode("utf-8-sig").splitlines()))
    assert row["request_note_text"].startswith("'=")  # a formula no spreadsheet runs
    assert any(name.endswith("_utc") for name in row)  # times say their zone
    with session_scope(deployment.registry, write=False) as s:
        actions = list(s.scalars(select(AuditRecord.action)))
    assert "GET /api/v1/patients/{patient_id}/export.csv" in actions
