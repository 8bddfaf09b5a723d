"""Administration through the API: accounts, teams, contracts, the rota, family links.

The seeded deployment of ``conftest``; the admin is ``admin``. Every change is checked both
in its answer and in what it changes for others (a disabled account's token stops working,
an ended contract closes the team's door), and in the audit log.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from registry.db import session_scope
from registry.models import AuditRecord
from tests.dashboard_api.conftest import PASSWORD, T0, Deployment


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit(deployment: Deployment, action: str) -> list[AuditRecord]:
    with session_scope(deployment.registry, write=False) as session:
        rows = list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
            )
        )
        session.expunge_all()
        return rows


def _all_audit_text(deployment: Deployment) -> str:
    with session_scope(deployment.registry, write=False) as session:
        return "\n".join(
            f"{row.target} {row.patient_ids} {row.detail}"
            for row in session.scalars(select(AuditRecord))
        )


@pytest.fixture
def admin(deployment: Deployment) -> dict[str, str]:
    return _bearer(deployment.login("admin"))


def test_accounts_are_created_listed_without_secrets_and_names_of_patients(
    deployment: Deployment, admin: dict[str, str]
) -> None:
    client = deployment.client
    staff = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={
            "username": "nurse.sun",
            "display_name": "孙护士",
            "kind": "staff",
            "roles": ["nurse"],
        },
    )
    assert staff.status_code == 201, staff.text
    assert staff.json()["roles"] == ["nurse"]
    assert staff.json()["has_password"] is False
    custodial = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={
            "username": "zhao.liu",
            "display_name": "赵六",
            "kind": "patient",
            "patient_id": "p-other",
            "phone": "13900000009",
            "custodial": True,
        },
    )
    assert custodial.status_code == 201, custodial.text
    assert custodial.json()["display_name"] is None
    assert custodial.json()["custodial"] is True
    family = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={"username": "zhao.son", "display_name": "赵小", "kind": "family"},
    )
    assert family.status_code == 201

    taken = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={"username": "nurse.sun", "display_name": "x", "kind": "staff", "roles": ["nurse"]},
    )
    assert taken.status_code == 409
    no_roles = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={"username": "nobody.x", "display_name": "x", "kind": "staff"},
    )
    assert no_roles.status_code == 422

    listed = client.get("/api/v1/admin/users", headers=admin, params={"kind": "patient"}).json()
    by_name = {a["username"]: a for a in listed["data"]}
    assert set(by_name) == {"wang.fang", "zhao.liu"}
    text = json.dumps(listed, ensure_ascii=False)
    for secret in ("王芳", "赵六", "13800000001", "13900000009", "password_hash", "totp_secret"):
        assert secret not in text
    nurses = client.get("/api/v1/admin/users", headers=admin, params={"role": "nurse"}).json()
    assert {a["username"] for a in nurses["data"]} == {"nurse.liu", "nurse.sun"}
    page = client.get("/api/v1/admin/users", headers=admin, params={"limit": 2}).json()
    assert (len(page["data"]), page["next_offset"]) == (2, 2)

    (row,) = _audit(deployment, "GET /api/v1/admin/users")[:1]
    assert json.loads(row.patient_ids) == ["p-other", "p-wang"]
    assert "赵六" not in _all_audit_text(deployment)
    assert "13900000009" not in _all_audit_text(deployment)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (
            "/api/v1/admin/users",
            {
                "username": "dr.new",
                "display_name": "x",
                "kind": "staff",
                "roles": ["nurse"],
                "password_hash": "$argon2id$v=19$...",
            },
        ),
        (
            "/api/v1/admin/users",
            {"username": "dr.new", "display_name": "x", "kind": "staff", "roles": ["superuser"]},
        ),
        (
            "/api/v1/admin/users",
            {"username": "fam.new", "display_name": "x", "kind": "family", "active": False},
        ),
        ("/api/v1/admin/teams", {"code": "t", "name": "n", "organisation": "o", "id": 1}),
        (
            "/api/v1/admin/contracts",
            {
                "patient_id": "p-other",
                "team_code": "team-a",
                "service_package": "basic",
                "starts_on": "2026-03-01",
                "ends_on": "2027-03-01",
            },
        ),
        (
            "/api/v1/admin/rota",
            {
                "team_code": "team-a",
                "doctor": "dr.chen",
                "starts_at": "2026-03-02T10:00:00+00:00",
                "ends_at": "2026-03-02T18:00:00+00:00",
                "id": 7,
            },
        ),
        (
            "/api/v1/admin/teams/team-a/members",
            {"username": "dr.glass", "position": "doctor", "valid_to": None},
        ),
    ],
)
def test_unknown_fields_are_refused(
    deployment: Deployment, admin: dict[str, str], url: str, body: dict[str, Any]
) -> None:
    answer = deployment.client.post(url, headers=admin, json=body)
    assert answer.status_code == 422, answer.text


def test_only_admins_administer(deployment: Deployment) -> None:
    client = deployment.client
    for username in ("dr.zhang", "lead.zhou", "it.ops"):
        headers = _bearer(deployment.login(username))
        for method, url in (
            ("get", "/api/v1/admin/users"),
            ("get", "/api/v1/admin/teams"),
            ("get", "/api/v1/admin/contracts"),
            ("get", "/api/v1/admin/rota"),
            ("get", "/api/v1/admin/family-links"),
            ("get", "/api/v1/audit"),
        ):
            assert client.request(method, url, headers=headers).status_code == 403, (username, url)
        created = client.post(
            "/api/v1/admin/users",
            headers=headers,
            json={"username": "x.admin", "display_name": "x", "kind": "staff", "roles": ["admin"]},
        )
        assert created.status_code == 403
    patient = _bearer(deployment.sms_login("13800000001"))
    assert client.get("/api/v1/admin/users", headers=patient).status_code == 403
    denied = _audit(deployment, "POST /api/v1/admin/users")
    assert [row.outcome for row in denied] == ["denied"] * 3


def test_a_password_reset_is_shown_once_and_ends_the_old_sessions(
    deployment: Deployment, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    client = deployment.client
    old = _bearer(deployment.login("dr.chen"))
    reset = client.post("/api/v1/admin/users/dr.chen/password-reset", headers=admin)
    assert reset.status_code == 200, reset.text
    password = reset.json()["password"]
    assert len(password) >= 12
    assert client.get("/api/v1/auth/me", headers=old).status_code == 401
    stale = client.post(
        "/api/v1/auth/login",
        json={"username": "dr.chen", "password": PASSWORD, "code": deployment.code("dr.chen")},
    )
    assert stale.status_code == 401
    fresh = client.post(
        "/api/v1/auth/login",
        json={"username": "dr.chen", "password": password, "code": deployment.code("dr.chen")},
    )
    assert fresh.status_code == 200
    assert password not in _all_audit_text(deployment)
    assert password not in caplog.text
    family = client.post("/api/v1/admin/users/wang.son/password-reset", headers=admin)
    assert family.status_code == 422  # patients and family log in without a password
    unknown = client.post("/api/v1/admin/users/no.one/password-reset", headers=admin)
    assert unknown.status_code == 404
    assert [
        r.outcome for r in _audit(deployment, "POST /api/v1/admin/users/{username}/password-reset")
    ] == [
        "ok",
        "rejected",
        "rejected",
    ]


def test_a_disabled_account_is_locked_out_at_once(
    deployment: Deployment, admin: dict[str, str]
) -> None:
    client = deployment.client
    nurse = _bearer(deployment.login("nurse.liu"))
    assert client.get("/api/v1/patients/p-wang", headers=nurse).status_code == 200
    disabled = client.post("/api/v1/admin/users/nurse.liu/disable", headers=admin)
    assert disabled.json()["active"] is False
    assert client.get("/api/v1/patients/p-wang", headers=nurse).status_code == 401
    client.post("/api/v1/admin/users/nurse.liu/enable", headers=admin)
    assert client.get("/api/v1/patients/p-wang", headers=nurse).status_code == 401  # stays ended
    assert client.post("/api/v1/admin/users/admin/disable", headers=admin).status_code == 422


def test_teams_members_with_dates_and_history(
    deployment: Deployment, admin: dict[str, str]
) -> None:
    client = deployment.client
    team = client.post(
        "/api/v1/admin/teams",
        headers=admin,
        json={"code": "team-c", "name": "三团队", "organisation": "东城社区卫生服务中心"},
    )
    assert team.status_code == 201, team.text
    assert (
        client.post(
            "/api/v1/admin/teams",
            headers=admin,
            json={"code": "team-c", "name": "x", "organisation": "y"},
        ).status_code
        == 409
    )
    codes = [t["code"] for t in client.get("/api/v1/admin/teams", headers=admin).json()["data"]]
    assert codes == ["team-a", "team-b", "team-c"]

    since = (T0 + timedelta(hours=1)).isoformat()
    added = client.post(
        "/api/v1/admin/teams/team-c/members",
        headers=admin,
        json={"username": "dr.glass", "position": "doctor", "since": since},
    )
    assert added.status_code == 201, added.text
    assert added.json()["valid_from"].startswith("2026-03-02T01:00")
    wrong_role = client.post(
        "/api/v1/admin/teams/team-c/members",
        headers=admin,
        json={"username": "nurse.liu", "position": "doctor"},
    )
    assert wrong_role.status_code == 422
    missing = client.post(
        "/api/v1/admin/teams/team-x/members",
        headers=admin,
        json={"username": "dr.glass", "position": "doctor"},
    )
    assert missing.status_code == 404

    ended = client.delete("/api/v1/admin/teams/team-c/members/dr.glass", headers=admin)
    assert ended.json() == {"ended": 1}
    url = "/api/v1/admin/teams/team-c/members"
    assert client.get(url, headers=admin).json() == []
    (past,) = client.get(url, headers=admin, params={"include_past": True}).json()
    assert (past["username"], past["valid_to"] is not None) == ("dr.glass", True)
    assert client.get("/api/v1/admin/teams/team-x/members", headers=admin).status_code == 404


def test_contracts_open_and_end_with_history_and_audit_every_patient(
    deployment: Deployment, admin: dict[str, str]
) -> None:
    client = deployment.client
    body = {
        "patient_id": "p-other",
        "team_code": "team-a",
        "service_package": "hypertension",
        "starts_on": "2026-03-01",
    }
    signed = client.post("/api/v1/admin/contracts", headers=admin, json=body)
    assert signed.status_code == 201, signed.text
    contract_id = signed.json()["id"]
    assert client.post("/api/v1/admin/contracts", headers=admin, json=body).status_code == 409
    doctor = _bearer(deployment.login("dr.zhang"))
    assert client.get("/api/v1/patients/p-other", headers=doctor).status_code == 200

    end = {"ends_on": "2026-03-02", "reason": "moved to another district"}
    ended = client.post(f"/api/v1/admin/contracts/{contract_id}/end", headers=admin, json=end)
    assert ended.status_code == 200, ended.text
    assert ended.json()["end_reason"] == "moved to another district"
    again = client.post(f"/api/v1/admin/contracts/{contract_id}/end", headers=admin, json=end)
    assert again.status_code == 409
    assert (
        client.post("/api/v1/admin/contracts/999999/end", headers=admin, json=end).status_code
        == 404
    )
    deployment.clock.advance(days=1)
    doctor = _bearer(deployment.login("dr.zhang"))
    assert client.get("/api/v1/patients/p-other", headers=doctor).status_code == 404
    admin = _bearer(deployment.login("admin"))  # a day later: a new session

    history = client.get(
        "/api/v1/admin/contracts", headers=admin, params={"patient_id": "p-other"}
    ).json()["data"]
    assert [(c["team_code"], c["ends_on"]) for c in history] == [("team-a", "2026-03-02")]
    everyone = client.get("/api/v1/admin/contracts", headers=admin).json()["data"]
    assert {c["patient_id"] for c in everyone} == {"p-wang", "p-li", "p-other"}
    open_a = client.get(
        "/api/v1/admin/contracts", headers=admin, params={"team_code": "team-a", "open_only": True}
    ).json()["data"]
    assert [c["patient_id"] for c in open_a] == ["p-wang"]

    listings = _audit(deployment, "GET /api/v1/admin/contracts")
    assert [json.loads(row.patient_ids) for row in listings] == [
        ["p-other"],
        ["p-li", "p-other", "p-wang"],
        ["p-wang"],
    ]
    changes = _audit(deployment, "POST /api/v1/admin/contracts")
    assert [(r.outcome, json.loads(r.patient_ids)) for r in changes] == [
        ("ok", ["p-other"]),
        ("rejected", ["p-other"]),
    ]


def test_the_rota_with_cover(deployment: Deployment, admin: dict[str, str]) -> None:
    client = deployment.client
    shift = {
        "team_code": "team-a",
        "doctor": "dr.glass",
        "starts_at": "2026-03-03T10:00:00+08:00",
        "ends_at": "2026-03-03T18:00:00+08:00",
        "covers": "dr.zhang",
    }
    added = client.post("/api/v1/admin/rota", headers=admin, json=shift)
    assert added.status_code == 201, added.text
    assert added.json()["covers"] == "dr.zhang"
    nurse_on_duty = {**shift, "doctor": "nurse.liu", "covers": None}
    assert client.post("/api/v1/admin/rota", headers=admin, json=nurse_on_duty).status_code == 422
    backwards = {**shift, "ends_at": "2026-03-03T09:00:00+08:00"}
    assert client.post("/api/v1/admin/rota", headers=admin, json=backwards).status_code == 422

    rota = client.get("/api/v1/admin/rota", headers=admin, params={"team_code": "team-a"}).json()
    assert [(s["doctor"], s["covers"]) for s in rota["data"]] == [
        ("dr.duty", None),
        ("dr.glass", "dr.zhang"),
    ]
    window = client.get(
        "/api/v1/admin/rota",
        headers=admin,
        params={"since": "2026-03-03T00:00:00+00:00", "until": "2026-03-04T00:00:00+00:00"},
    ).json()
    assert [s["doctor"] for s in window["data"]] == ["dr.glass"]


def test_family_links_and_consents_for_the_admin(
    deployment: Deployment, admin: dict[str, str]
) -> None:
    links = deployment.client.get(
        "/api/v1/admin/family-links", headers=admin, params={"patient_id": "p-wang"}
    ).json()["data"]
    state = {link["username"]: [c["in_force"] for c in link["consents"]] for link in links}
    assert state == {"wang.daughter": [True], "wang.niece": [False], "wang.son": [False]}
    (row,) = _audit(deployment, "GET /api/v1/admin/family-links")
    assert json.loads(row.patient_ids) == ["p-wang"]
    assert row.actor_role == "admin"


def test_a_totp_enrolment_is_shown_once_replaces_the_old_factor_and_is_never_audited(
    deployment: Deployment, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    client = deployment.client
    old = _bearer(deployment.login("dr.chen"))
    enrolled = client.post("/api/v1/admin/users/dr.chen/totp", headers=admin)
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    secret = body["secret"]
    assert body["username"] == "dr.chen"
    assert body["otpauth_uri"].startswith("otpauth://totp/VitalGate:dr.chen?secret=" + secret)
    assert client.get("/api/v1/auth/me", headers=old).status_code == 401
    at = deployment.clock.now

    def login(code: str) -> int:
        answer = client.post(
            "/api/v1/auth/login", json={"username": "dr.chen", "password": PASSWORD, "code": code}
        )
        return answer.status_code

    assert login(pyotp.TOTP(deployment.totp["dr.chen"]).at(at)) == 401  # the old factor
    assert login(pyotp.TOTP(secret).at(at)) == 200
    assert secret not in _all_audit_text(deployment)
    assert secret not in caplog.text
    family = client.post("/api/v1/admin/users/wang.son/totp", headers=admin)
    assert family.status_code == 422  # patients and family log in by SMS link
    assert client.post("/api/v1/admin/users/no.one/totp", headers=admin).status_code == 404
    nurse = _bearer(deployment.login("nurse.liu"))
    assert client.post("/api/v1/admin/users/dr.zhang/totp", headers=nurse).status_code == 403
    assert [r.outcome for r in _audit(deployment, "POST /api/v1/admin/users/{username}/totp")] == [
        "ok",
        "rejected",
        "rejected",
        "denied",
    ]
