"""Every route with a path parameter, called as every kind of caller (the API's BOLA test).

The routes come from the OpenAPI document, so a new route cannot escape: it fails here until
it has a sample request and an expected answer for every caller. The expectations are
written out below by hand, from the authorization matrix in ``docs/authorization.md`` —
not computed from the code under test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

from dashboard_api.deps import PATIENT_ROUTE_MARKER
from ingest.examine import examine_message
from ingest.validate import DEFAULT_LIMITS
from readings.codec import encode_envelope
from readings.model import GlucoseValues, new_reading
from readings.topics import readings_topic
from readings.units import Unit
from registry.care_queries import list_contracts
from registry.db import session_scope
from registry.models import AuditRecord
from registry.ownership import OwnershipChecker
from registry.quarantine import QuarantineFilter, QuarantineStore
from tests.dashboard_api.conftest import GATEWAY, METER, T0, Deployment

PATIENT = "p-wang"

SAMPLE_QUERY = {
    "kind": "glucose",
    "start": (T0 - timedelta(days=3)).isoformat(),
    "end": (T0 + timedelta(days=1)).isoformat(),
}
SAMPLE_BODY = {
    ("post", "/api/v1/patients/{patient_id}/targets"): {
        "metric": "glucose",
        "low": 4.4,
        "high": 10.0,
        "unit": "mmol/L",
        "reason": "individual target after review",
    },
    ("post", "/api/v1/patients/{patient_id}/break-glass"): {
        "reason": "unconscious at home, family called",
        "minutes": 30,
    },
    ("post", "/api/v1/patients/{patient_id}/consents"): {
        "username": "wang.niece",
        "scopes": ["view_readings"],
    },
    ("post", "/api/v1/admin/teams/{team_code}/members"): {
        "username": "dr.glass",
        "position": "doctor",
        "since": (T0 + timedelta(hours=1)).isoformat(),  # before the clock: it can end now
    },
    ("post", "/api/v1/admin/contracts/{contract_id}/end"): {
        "ends_on": (T0 + timedelta(days=1)).date().isoformat(),
        "reason": "moved to another district",
    },
    ("post", "/api/v1/quarantine/{quarantine_id}/release"): {"reason": "device bound"},
    ("post", "/api/v1/patients/{patient_id}/devices/pair"): {
        "gateway_id": GATEWAY,
        "window_seconds": 60,
    },
}
SAMPLE_PATH = {
    "patient_id": PATIENT,
    "username": "wang.son",
    "device_id": METER,
    "gateway_id": GATEWAY,
    "team_code": "team-a",
}
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/acknowledge")] = {
    "note": "called the patient"
}
SAMPLE_PATH["alert_id"] = "999999"
"""No alert 999999 exists: a caller the gate lets through gets the route's own 404."""
SAMPLE_PATH["task_id"] = "999999"
"""No visit task 999999 exists either."""
SAMPLE_PATH["token"] = "not-a-calendar-token"
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/visits")] = {
    "kind": "phone",
    "note": "请电话随访",
}
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/visits/{task_id}/schedule")] = {
    "at": (T0 + timedelta(days=1)).isoformat()
}
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/visits/{task_id}/complete")] = {
    "check_in_at": T0.isoformat(),
    "check_out_at": (T0 + timedelta(minutes=30)).isoformat(),
    "consent": True,
}
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/visits/{task_id}/cancel")] = {"reason": "x"}
SAMPLE_BODY[("post", "/api/v1/patients/{patient_id}/visits/{task_id}/missed")] = {"reason": "x"}

R_PATIENT = ("get", "/api/v1/patients/{patient_id}")
R_READINGS = ("get", "/api/v1/patients/{patient_id}/readings")
R_SUMMARY = ("get", "/api/v1/patients/{patient_id}/summary")
R_TARGETS = ("get", "/api/v1/patients/{patient_id}/targets")
R_SET_TARGET = ("post", "/api/v1/patients/{patient_id}/targets")
R_BREAK_GLASS = ("post", "/api/v1/patients/{patient_id}/break-glass")
R_DEVICES = ("get", "/api/v1/patients/{patient_id}/devices")
R_CONSENTS = ("get", "/api/v1/patients/{patient_id}/consents")
R_GRANT = ("post", "/api/v1/patients/{patient_id}/consents")
R_REVOKE = ("delete", "/api/v1/patients/{patient_id}/consents/{username}")
R_DISABLE = ("post", "/api/v1/admin/users/{username}/disable")
R_ENABLE = ("post", "/api/v1/admin/users/{username}/enable")
R_PASSWORD = ("post", "/api/v1/admin/users/{username}/password-reset")
R_TOTP = ("post", "/api/v1/admin/users/{username}/totp")
R_MEMBERS = ("get", "/api/v1/admin/teams/{team_code}/members")
R_ADD_MEMBER = ("post", "/api/v1/admin/teams/{team_code}/members")
R_END_MEMBER = ("delete", "/api/v1/admin/teams/{team_code}/members/{username}")
R_END_CONTRACT = ("post", "/api/v1/admin/contracts/{contract_id}/end")
R_INSPECT = ("get", "/api/v1/quarantine/{quarantine_id}")
R_RELEASE = ("post", "/api/v1/quarantine/{quarantine_id}/release")

PATH_FOR_ROUTE = {
    R_DISABLE: {"username": "dr.chen"},
    R_ENABLE: {"username": "dr.chen"},
    R_PASSWORD: {"username": "dr.chen"},
    R_TOTP: {"username": "dr.chen"},
    R_END_MEMBER: {"username": "dr.glass"},
}
"""Where one route needs another sample than SAMPLE_PATH (ids known only once seeded, such
as ``contract_id`` and ``quarantine_id``, are looked up by the test)."""

ADMIN_ROUTES = (
    R_DISABLE,
    R_ENABLE,
    R_PASSWORD,
    R_TOTP,
    R_MEMBERS,
    R_ADD_MEMBER,
    R_END_MEMBER,
    R_END_CONTRACT,
)
IT_ROUTES = (R_INSPECT, R_RELEASE)
R_PAIR = ("post", "/api/v1/patients/{patient_id}/devices/pair")
R_PAIRINGS = ("get", "/api/v1/patients/{patient_id}/devices/pairing-requests")
R_UNPAIR = ("post", "/api/v1/patients/{patient_id}/devices/{device_id}/unpair")
R_GATEWAY = ("get", "/api/v1/gateways/{gateway_id}")
R_ALERTS = ("get", "/api/v1/patients/{patient_id}/alerts")
R_ACK = ("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/acknowledge")
R_ALERT = ("get", "/api/v1/patients/{patient_id}/alerts/{alert_id}")
R_RESOLVE = ("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/resolve")
R_SNOOZE = ("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/snooze")
R_ASSIGN = ("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/assign")
R_READ = ("post", "/api/v1/patients/{patient_id}/alerts/{alert_id}/read")
ALERT_READ_ROUTES = (R_ALERT, R_READ)
"""Alert routes needing ``read_alerts``; the sample alert does not exist past the gate."""
ALERT_ACT_ROUTES = (R_ACK, R_RESOLVE, R_SNOOZE, R_ASSIGN)
"""Alert routes needing ``act_on_alert``."""
SAMPLE_BODY[R_RESOLVE] = {"note": "seen at home visit"}
SAMPLE_BODY[R_SNOOZE] = {"reason": "meter being replaced", "minutes": 60}
SAMPLE_BODY[R_ASSIGN] = {"username": "nurse.liu"}
R_REPORT_PDF = ("get", "/api/v1/patients/{patient_id}/report.pdf")
R_EXPORT_CSV = ("get", "/api/v1/patients/{patient_id}/export.csv")
R_EXPORT_FHIR = ("get", "/api/v1/patients/{patient_id}/export/fhir")
R_VISITS = ("get", "/api/v1/patients/{patient_id}/visits")
R_VISIT_NEW = ("post", "/api/v1/patients/{patient_id}/visits")
R_VISIT_TASK = tuple(
    ("post", f"/api/v1/patients/{{patient_id}}/visits/{{task_id}}/{verb}")
    for verb in ("schedule", "complete", "cancel", "missed")
)
R_CALENDAR = ("get", "/api/v1/calendar/{token}.ics")
R_REVIEWED = ("post", "/api/v1/triage/{patient_id}/reviewed")
R_UNREVIEW = ("delete", "/api/v1/triage/{patient_id}/reviewed")
R_INVITE = ("post", "/api/v1/patients/{patient_id}/family/invitations")
R_WHAT_TO_DO = ("get", "/api/v1/patients/{patient_id}/what-to-do")
R_SYMPTOM = ("post", "/api/v1/patients/{patient_id}/symptoms")
R_PREFS = ("get", "/api/v1/patients/{patient_id}/notification-preferences")
R_SET_PREFS = ("put", "/api/v1/patients/{patient_id}/notification-preferences")
PORTAL_ROUTES = (R_INVITE, R_WHAT_TO_DO, R_SYMPTOM, R_PREFS, R_SET_PREFS)
SAMPLE_BODY[R_INVITE] = {
    "phone": "13912345678",
    "relationship": "儿子",
    "scopes": ["view_readings"],
}
SAMPLE_BODY[R_SYMPTOM] = {"symptom": "dizziness", "note": "早上起床时"}
SAMPLE_BODY[R_SET_PREFS] = {"channel": "wechat", "quiet_start": "22:00", "quiet_end": "07:00"}
R_MANUAL = ("post", "/api/v1/patients/{patient_id}/readings/manual")
SAMPLE_BODY[R_MANUAL] = {"kind": "weight", "weight_kg": 68.4}

ROUTES_WITH_PATIENT_GATE = {
    R_PATIENT,
    R_SUMMARY,
    R_REPORT_PDF,
    R_EXPORT_CSV,
    R_EXPORT_FHIR,
    R_READINGS,
    R_TARGETS,
    R_SET_TARGET,
    R_DEVICES,
    R_CONSENTS,
    R_GRANT,
    R_REVOKE,
    R_PAIR,
    R_PAIRINGS,
    R_UNPAIR,
    R_ALERTS,
    *ALERT_READ_ROUTES,
    *ALERT_ACT_ROUTES,
    R_VISITS,
    R_VISIT_NEW,
    *R_VISIT_TASK,
    R_REVIEWED,
    R_UNREVIEW,
    *PORTAL_ROUTES,
    R_MANUAL,
}
"""Routes decided by the one gate; break-glass (any doctor) and the gateway route (fleet
roles, or a gateway of one's patients) are the documented exceptions."""

ALL = (
    R_PATIENT,
    R_READINGS,
    R_SUMMARY,
    R_TARGETS,
    R_SET_TARGET,
    R_DEVICES,
    R_CONSENTS,
    R_GRANT,
    R_REVOKE,
    R_PAIRINGS,
    R_GATEWAY,
    R_PAIR,
    R_UNPAIR,  # after the other device routes: the device is the patient's no more
    *ADMIN_ROUTES,
    *IT_ROUTES,
    R_ALERTS,
    *ALERT_READ_ROUTES,
    *ALERT_ACT_ROUTES,
    R_REPORT_PDF,
    R_EXPORT_CSV,
    R_EXPORT_FHIR,
    R_VISITS,
    R_VISIT_NEW,
    *R_VISIT_TASK,
    *PORTAL_ROUTES,
    R_MANUAL,
    R_CALENDAR,
    R_REVIEWED,
    R_UNREVIEW,  # after marking: undoes the review just made
    R_BREAK_GLASS,  # last: the access it opens would change the answers after it
)
NOT_FOUND_DETAIL = {R_GATEWAY: "gateway not found", R_CALENDAR: "calendar not found"}

_SUCCESS = {R_ADD_MEMBER: 201}


def _expect(
    read: int,
    set_target: int,
    consents: int,
    break_glass: int,
    pair: int,
    gateway: int,
    admin: int = 403,
    it: int = 403,
) -> dict[tuple[str, str], int]:
    granted = 201 if consents == 200 else consents
    system = {route: _SUCCESS.get(route, 200) if admin == 200 else admin for route in ADMIN_ROUTES}
    system |= dict.fromkeys(IT_ROUTES, it)
    return system | {
        R_PAIRINGS: read,
        R_PAIR: 202 if pair == 200 else pair,
        R_UNPAIR: pair,
        R_GATEWAY: gateway,
        R_PATIENT: read,
        R_READINGS: read,
        R_SUMMARY: read,
        R_TARGETS: read,
        R_DEVICES: read,
        R_SET_TARGET: set_target,
        R_CONSENTS: consents,
        R_GRANT: granted,
        R_REVOKE: consents,
        R_BREAK_GLASS: break_glass,
    }


# Columns: reading routes, setting a target, the consent routes, break-glass, pairing and
# unpairing, the patient's gateway; then the admin routes and the IT operator's quarantine
# routes (403 unless given).
EXPECTED: dict[str, dict[tuple[str, str], int]] = {
    "own doctor": _expect(200, 201, 403, 201, 200, 200),
    "team lead": _expect(200, 201, 403, 201, 200, 200),
    "doctor of another team": _expect(404, 404, 404, 201, 404, 404),
    "nurse of the team": _expect(200, 403, 403, 403, 200, 200),
    "the patient": _expect(200, 403, 200, 403, 200, 200),
    "consented family member": _expect(200, 403, 403, 403, 403, 200),
    "family, consent revoked": _expect(404, 404, 404, 403, 404, 404),
    "family, consent expired": _expect(404, 404, 404, 403, 404, 404),
    "admin": _expect(404, 404, 404, 403, 404, 200, admin=200),
    "IT operator": _expect(404, 404, 404, 403, 404, 200, it=200),
    "duty doctor during duty": _expect(200, 403, 403, 201, 403, 200),
    "duty doctor after duty": _expect(404, 404, 404, 201, 404, 404),
    "doctor after break-glass": _expect(200, 403, 403, 201, 403, 200),
    "no token": _expect(*[401] * 8),
    "expired token": _expect(*[401] * 8),
    "forged token": _expect(*[401] * 8),
    "alg=none token": _expect(*[401] * 8),
}

# Alerts: reading them (read_alerts), acknowledging (act_on_alert; 404 past the gate: the
# sample alert does not exist). A family member who may only view readings: 403 on both.
_ALERTS: dict[str, tuple[int, int]] = {
    "own doctor": (200, 404),
    "team lead": (200, 404),
    "doctor of another team": (404, 404),
    "nurse of the team": (200, 404),
    "the patient": (200, 403),
    "consented family member": (403, 403),
    "family, consent revoked": (404, 404),
    "family, consent expired": (404, 404),
    "admin": (404, 404),
    "IT operator": (404, 404),
    "duty doctor during duty": (200, 404),
    "duty doctor after duty": (404, 404),
    "doctor after break-glass": (200, 403),
    "no token": (401, 401),
    "expired token": (401, 401),
    "forged token": (401, 401),
    "alg=none token": (401, 401),
}
for _persona, (_read, _ack) in _ALERTS.items():
    EXPECTED[_persona] |= {R_ALERTS: _read}
    # Past the gate the sample alert is unknown: the route's own 404, like the gate's.
    EXPECTED[_persona] |= dict.fromkeys(ALERT_READ_ROUTES, 404 if _read == 200 else _read)
    EXPECTED[_persona] |= dict.fromkeys(ALERT_ACT_ROUTES, _ack)

# Reports and exports (the export action): the patient and the team's doctors; not the
# nurse, the duty doctor or a break-glass reader (403); a family member has no consent
# scope that grants it (403).
_EXPORTS: dict[str, int] = {
    "own doctor": 200,
    "team lead": 200,
    "doctor of another team": 404,
    "nurse of the team": 403,
    "the patient": 200,
    "consented family member": 403,
    "family, consent revoked": 404,
    "family, consent expired": 404,
    "admin": 404,
    "IT operator": 404,
    "duty doctor during duty": 403,
    "duty doctor after duty": 404,
    "doctor after break-glass": 403,
    "no token": 401,
    "expired token": 401,
    "forged token": 401,
    "alg=none token": 401,
}
for _persona, _export in _EXPORTS.items():
    EXPECTED[_persona] |= {R_REPORT_PDF: _export, R_EXPORT_CSV: _export, R_EXPORT_FHIR: _export}


# Visits: listing (read_visits), requesting one (manage_visits), and the four task routes
# (manage_visits; 404 past the gate: the sample task does not exist). The calendar feed
# takes no login, only its secret token: an unknown token is 404 for everyone.
_VISITS: dict[str, tuple[int, int, int]] = {
    "own doctor": (200, 201, 404),
    "team lead": (200, 201, 404),
    "doctor of another team": (404, 404, 404),
    "nurse of the team": (200, 201, 404),
    "the patient": (200, 403, 403),
    "consented family member": (403, 403, 403),
    "family, consent revoked": (404, 404, 404),
    "family, consent expired": (404, 404, 404),
    "admin": (404, 404, 404),
    "IT operator": (404, 404, 404),
    "duty doctor during duty": (200, 403, 403),
    "duty doctor after duty": (404, 404, 404),
    "doctor after break-glass": (403, 403, 403),
    "no token": (401, 401, 401),
    "expired token": (401, 401, 401),
    "forged token": (401, 401, 401),
    "alg=none token": (401, 401, 401),
}
for _persona, (_list, _new, _task) in _VISITS.items():
    EXPECTED[_persona] |= {R_VISITS: _list, R_VISIT_NEW: _new, R_CALENDAR: 404}
    EXPECTED[_persona] |= dict.fromkeys(R_VISIT_TASK, _task)


# Triage: marking a patient reviewed and undoing it (review_triage: the team's doctor, nurse
# and lead only). The undo follows the mark in the same run, so it finds a review to undo.
_TRIAGE: dict[str, int] = {
    "own doctor": 201,
    "team lead": 201,
    "doctor of another team": 404,
    "nurse of the team": 201,
    "the patient": 403,
    "consented family member": 403,
    "family, consent revoked": 404,
    "family, consent expired": 404,
    "admin": 404,
    "IT operator": 404,
    "duty doctor during duty": 403,
    "duty doctor after duty": 404,
    "doctor after break-glass": 403,
    "no token": 401,
    "expired token": 401,
    "forged token": 401,
    "alg=none token": 401,
}
for _persona, _mark in _TRIAGE.items():
    EXPECTED[_persona] |= {R_REVIEWED: _mark, R_UNREVIEW: 200 if _mark == 201 else _mark}
# The portal's routes: inviting a relative (manage_consents: the patient alone), what to do
# now (read_patient; its alert part only with read_alerts), reporting a symptom and the
# notification preferences (the patient, or a relative who acts for her: the seeded
# daughter only views readings, 403).
_PORTAL: dict[str, tuple[int, int, int, int]] = {
    "own doctor": (403, 200, 403, 403),
    "team lead": (403, 200, 403, 403),
    "doctor of another team": (404, 404, 404, 404),
    "nurse of the team": (403, 200, 403, 403),
    "the patient": (201, 200, 201, 200),
    "consented family member": (403, 200, 403, 403),
    "family, consent revoked": (404, 404, 404, 404),
    "family, consent expired": (404, 404, 404, 404),
    "admin": (404, 404, 404, 404),
    "IT operator": (404, 404, 404, 404),
    "duty doctor during duty": (403, 200, 403, 403),
    "duty doctor after duty": (404, 404, 404, 404),
    "doctor after break-glass": (403, 200, 403, 403),
    "no token": (401, 401, 401, 401),
    "expired token": (401, 401, 401, 401),
    "forged token": (401, 401, 401, 401),
    "alg=none token": (401, 401, 401, 401),
}
for _persona, (_invite, _todo, _symptom, _prefs) in _PORTAL.items():
    EXPECTED[_persona] |= {
        R_INVITE: _invite,
        R_WHAT_TO_DO: _todo,
        R_SYMPTOM: _symptom,
        R_PREFS: _prefs if _prefs != 201 else 200,
        R_SET_PREFS: _prefs if _prefs != 201 else 200,
    }
# Typing in a reading (enter_reading): the patient and the team; a family member whose
# consent is to view readings only may not (403), nor the duty doctor or a break-glass reader.
_MANUAL: dict[str, int] = {
    "own doctor": 201,
    "team lead": 201,
    "doctor of another team": 404,
    "nurse of the team": 201,
    "the patient": 201,
    "consented family member": 403,
    "family, consent revoked": 404,
    "family, consent expired": 404,
    "admin": 404,
    "IT operator": 404,
    "duty doctor during duty": 403,
    "duty doctor after duty": 404,
    "doctor after break-glass": 403,
    "no token": 401,
    "expired token": 401,
    "forged token": 401,
    "alg=none token": 401,
}
for _persona, _manual in _MANUAL.items():
    EXPECTED[_persona] |= {R_MANUAL: _manual}


def _forge(token: str, *, alg_none: bool = False) -> str:
    _header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if alg_none:
        head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        body = base64.urlsafe_b64encode(json.dumps(claims).encode())
        return f"{head.decode().rstrip('=')}.{body.decode().rstrip('=')}."
    return jwt.encode(claims, "not-the-key-" + "x" * 40, algorithm="HS256")


def _headers(deployment: Deployment, persona: str) -> dict[str, str]:
    login: Callable[[str], str] = deployment.login
    match persona:
        case "own doctor":
            token = login("dr.zhang")
        case "team lead":
            token = login("lead.zhou")
        case "doctor of another team":
            token = login("dr.chen")
        case "nurse of the team":
            token = login("nurse.liu")
        case "the patient":
            token = deployment.sms_login("13800000001")
        case "consented family member":
            token = deployment.sms_login("13800000002")
        case "family, consent revoked":
            token = deployment.sms_login("13800000003")
        case "family, consent expired":
            token = deployment.sms_login("13800000004")
        case "admin":
            token = login("admin")
        case "IT operator":
            token = login("it.ops")
        case "duty doctor during duty":
            token = login("dr.duty")
        case "duty doctor after duty":
            deployment.clock.advance(hours=8)  # the shift ends at T0 + 9 h
            token = login("dr.duty")
        case "doctor after break-glass":
            token = login("dr.glass")
            opened = deployment.client.post(
                f"/api/v1/patients/{PATIENT}/break-glass",
                json=SAMPLE_BODY[R_BREAK_GLASS],
                headers={"Authorization": f"Bearer {token}"},
            )
            assert opened.status_code == 201, opened.text
        case "no token":
            return {}
        case "expired token":
            token = login("dr.zhang")
            deployment.clock.advance(minutes=11)
        case "forged token":
            token = _forge(login("dr.zhang"))
        case "alg=none token":
            token = _forge(login("dr.zhang"), alg_none=True)
        case _:
            raise AssertionError(persona)
    return {"Authorization": f"Bearer {token}"}


def _routes_with_path_parameters(deployment: Deployment) -> set[tuple[str, str]]:
    document = deployment.client.get("/api/v1/openapi.json").json()
    return {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if any(p["in"] == "path" for p in operation.get("parameters", []))
    }


def _denied_rows(deployment: Deployment) -> int:
    with session_scope(deployment.registry, write=False) as session:
        return (
            session.scalar(
                select(func.count()).select_from(AuditRecord).where(AuditRecord.outcome == "denied")
            )
            or 0
        )


def test_every_route_with_a_path_parameter_is_in_the_table(deployment: Deployment) -> None:
    assert _routes_with_path_parameters(deployment) == set(ALL)


def test_every_patient_route_depends_on_the_one_gate(deployment: Deployment) -> None:
    gated = set()
    # FastAPI includes routers lazily; iter_route_contexts yields the routes as served.
    for route in iter_route_contexts(deployment.app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        stack = list(dependant.dependencies)
        while stack:
            dependency = stack.pop()
            if hasattr(dependency.call, PATIENT_ROUTE_MARKER):
                for method in route.methods or ():
                    gated.add((method.lower(), route.path))
            stack.extend(dependency.dependencies)
    assert gated == ROUTES_WITH_PATIENT_GATE


def _quarantine_unknown_device(deployment: Deployment) -> int:
    """Quarantine a reading of a device bound to nobody, as the ingest worker would."""
    reading = new_reading(
        values=GlucoseValues(glucose=6.2),
        source_unit=Unit.MMOL_PER_L,
        measured_at=deployment.clock.now - timedelta(minutes=5),
        received_at=deployment.clock.now,
        device_id="Acme-Meter-0009",
        patient_id=PATIENT,
        gateway_id="gw-0001",
        seq=1,
    )
    examination = examine_message(
        readings_topic("gw-0001"),
        encode_envelope("gw-0001", deployment.clock.now, [reading]),
        ownership=OwnershipChecker(deployment.registry, cache_ttl_seconds=0),
        limits=DEFAULT_LIMITS,
        now=deployment.clock.now,
    )
    store = QuarantineStore(deployment.registry)
    store.add_many([d.entry for d in examination.refused if d.entry is not None])
    (record,) = store.find(QuarantineFilter())
    return record.id


def _seeded_path(deployment: Deployment) -> dict[str, object]:
    with session_scope(deployment.registry, write=False) as session:
        (contract,) = list_contracts(session, patient_id="p-li")
    return {
        **SAMPLE_PATH,
        "contract_id": contract.id,
        "quarantine_id": _quarantine_unknown_device(deployment),
    }


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_each_caller_gets_what_the_matrix_says(deployment: Deployment, persona: str) -> None:
    sample = _seeded_path(deployment)
    headers = _headers(deployment, persona)
    for method, path in ALL:
        url = path.format(**{**sample, **PATH_FOR_ROUTE.get((method, path), {})})
        denied_before = _denied_rows(deployment)
        response = deployment.client.request(
            method,
            url,
            headers=headers,
            params=SAMPLE_QUERY if (method, path) == R_READINGS else None,
            json=SAMPLE_BODY.get((method, path)),
        )
        expected = EXPECTED[persona][(method, path)]
        assert response.status_code == expected, (persona, method, path, response.text)
        if expected >= 400:
            assert _denied_rows(deployment) == denied_before + 1, (persona, method, path)
        if expected == 404:
            assert "王芳" not in response.text
            detail = NOT_FOUND_DETAIL.get((method, path), "patient not found")
            assert response.json() == {"detail": detail}


def test_an_unknown_patient_answers_exactly_like_someone_elses(deployment: Deployment) -> None:
    headers = {"Authorization": f"Bearer {deployment.login('dr.chen')}"}
    other = deployment.client.get(f"/api/v1/patients/{PATIENT}", headers=headers)
    unknown = deployment.client.get("/api/v1/patients/p-does-not-exist", headers=headers)
    assert (other.status_code, other.json()) == (unknown.status_code, unknown.json())
