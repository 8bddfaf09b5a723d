"""Logging in and staying logged in: second factor, lockout, throttling, rotation, CSRF."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from registry.care import FamilyRepository
from registry.db import session_scope
from registry.models import AuditRecord
from tests.dashboard_api.conftest import PASSWORD, Deployment

LOGIN = "/api/v1/auth/login"


def _login(deployment: Deployment, username: str, password: str = PASSWORD, code: str = ""):  # type: ignore[no-untyped-def]
    return deployment.client.post(
        LOGIN,
        json={
            "username": username,
            "password": password,
            "code": code or deployment.code(username),
        },
    )


def test_staff_need_password_and_the_current_totp_code(deployment: Deployment) -> None:
    assert _login(deployment, "dr.zhang").status_code == 200
    wrong_code = _login(
        deployment,
        "dr.zhang",
        code="000000" if deployment.code("dr.zhang") != "000000" else "111111",
    )
    wrong_password = _login(deployment, "dr.zhang", password="guess")
    unknown = _login(deployment, "nobody", code="123456")
    # One answer for every cause: nothing tells which part was wrong or that an account exists.
    assert {r.status_code for r in (wrong_code, wrong_password, unknown)} == {401}
    assert wrong_code.json() == wrong_password.json() == unknown.json()


def test_five_failures_lock_the_account_even_for_the_right_password(
    deployment: Deployment,
) -> None:
    for _ in range(5):
        assert _login(deployment, "nurse.liu", password="wrong").status_code == 401
    assert _login(deployment, "nurse.liu").status_code == 401
    deployment.clock.advance(minutes=16)
    assert _login(deployment, "nurse.liu").status_code == 200


def test_login_attempts_are_throttled_per_client(deployment: Deployment) -> None:
    deployment.app.state.context.login_limiter._limit = 3  # the production default is 10/min
    statuses = [_login(deployment, "dr.chen", password="x").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    deployment.clock.advance(seconds=61)
    assert _login(deployment, "dr.chen").status_code == 200


def test_refresh_rotates_and_a_reused_token_revokes_the_session(deployment: Deployment) -> None:
    first = _login(deployment, "dr.zhang").json()
    second = deployment.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    third = deployment.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert third.status_code == 200
    # The first token again: someone copied it. The whole family dies, the newest included.
    reuse = deployment.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 401
    after = deployment.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": third.json()["refresh_token"]}
    )
    assert after.status_code == 401


def test_logout_ends_the_refresh_family(deployment: Deployment) -> None:
    session = _login(deployment, "dr.zhang").json()
    assert (
        deployment.client.post(
            "/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]}
        ).status_code
        == 200
    )
    again = deployment.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert again.status_code == 401


def test_disabling_an_account_ends_its_access_tokens_at_once(deployment: Deployment) -> None:
    from registry.care import AccountRepository

    headers = {"Authorization": f"Bearer {deployment.login('dr.zhang')}"}
    assert deployment.client.get("/api/v1/patients/p-wang", headers=headers).status_code == 200
    with session_scope(deployment.registry) as session:
        AccountRepository(session).set_active("dr.zhang", False)
    assert deployment.client.get("/api/v1/patients/p-wang", headers=headers).status_code == 401


def test_cookie_sessions_need_the_csrf_header_for_writes(deployment: Deployment) -> None:
    client = deployment.client
    login = _login(deployment, "dr.zhang")
    assert login.status_code == 200
    csrf = login.json()["csrf_token"]
    cookie = login.headers.get_list("set-cookie")
    assert any("vg_access=" in c and "HttpOnly" in c and "SameSite=strict" in c for c in cookie)
    body = {"metric": "glucose", "low": 4.4, "high": 10.0, "unit": "mmol/L", "reason": "review"}
    url = "/api/v1/patients/p-wang/targets"
    assert client.get("/api/v1/patients/p-wang").status_code == 200  # cookie, safe method
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 401
    assert client.post(url, json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_sms_login_links_are_single_use_and_expire(deployment: Deployment) -> None:
    client = deployment.client
    assert client.post("/api/v1/auth/sms/request", json={"phone": "13800000001"}).status_code == 202
    token = deployment.sms_file.read_text().splitlines()[-1].split("#", 1)[1].split()[0]
    assert client.post("/api/v1/auth/sms/verify", json={"token": token}).status_code == 200
    assert client.post("/api/v1/auth/sms/verify", json={"token": token}).status_code == 401
    client.post("/api/v1/auth/sms/request", json={"phone": "13800000001"})
    late = deployment.sms_file.read_text().splitlines()[-1].split("#", 1)[1].split()[0]
    deployment.clock.advance(minutes=11)
    assert client.post("/api/v1/auth/sms/verify", json={"token": late}).status_code == 401
    # An unknown phone gets the same answer and no message.
    lines = len(deployment.sms_file.read_text().splitlines())
    unknown = client.post("/api/v1/auth/sms/request", json={"phone": "13999999999"})
    assert unknown.status_code == 202
    assert len(deployment.sms_file.read_text().splitlines()) == lines


def test_revoked_consent_closes_the_door_on_the_next_request(deployment: Deployment) -> None:
    headers = {"Authorization": f"Bearer {deployment.sms_login('13800000002')}"}
    url = "/api/v1/patients/p-wang"
    assert deployment.client.get(url, headers=headers).status_code == 200
    with session_scope(deployment.registry) as session:
        FamilyRepository(session, clock=deployment.clock).revoke(
            "p-wang", "wang.daughter", revoked_by="wang.fang"
        )
    deployment.clock.advance(seconds=1)
    refused = deployment.client.get(url, headers=headers)
    assert refused.status_code == 404
    assert "王芳" not in refused.text


def test_unknown_fields_are_refused_not_ignored(deployment: Deployment) -> None:
    headers = {"Authorization": f"Bearer {deployment.login('dr.zhang')}"}
    response = deployment.client.post(
        "/api/v1/patients/p-wang/targets",
        headers=headers,
        json={
            "metric": "glucose",
            "low": 4,
            "high": 9,
            "unit": "mmol/L",
            "reason": "r",
            "set_by": "someone-else",
        },
    )
    assert response.status_code == 422
    assert "set_by" in response.text


def test_security_headers_are_on_every_response(deployment: Deployment) -> None:
    for response in (
        deployment.client.get("/api/v1/patients/p-wang"),  # 401
        deployment.client.get("/api/v1/openapi.json"),
    ):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_every_patient_access_leaves_an_audit_row_listing_the_patients(
    deployment: Deployment,
) -> None:
    headers = {"Authorization": f"Bearer {deployment.login('dr.zhang')}"}
    listing = deployment.client.get("/api/v1/patients", headers=headers)
    assert listing.status_code == 200
    assert [p["id"] for p in listing.json()["data"]] == ["p-wang"]
    deployment.client.get("/api/v1/patients/p-li", headers=headers)
    with session_scope(deployment.registry, write=False) as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(2))
        newest, before = list(rows)
    assert (newest.action, newest.outcome, newest.patient_ids) == (
        "GET /api/v1/patients/{patient_id}",
        "denied",
        '["p-li"]',
    )
    assert (before.action, before.outcome, before.patient_ids) == (
        "GET /api/v1/patients",
        "ok",
        '["p-wang"]',
    )
    assert deployment.clock.now - newest.at < timedelta(seconds=1)
