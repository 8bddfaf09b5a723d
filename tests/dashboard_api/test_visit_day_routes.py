"""A nurse's day route through the API: capacity, order, suggestions, week view, the
calendar feed parsed back with ``icalendar`` — over the real registry on each backend.

The seed (conftest) has team-a with dr.zhang, nurse.liu and lead.zhou, contracted with
p-wang; here four more team-a patients live in two communities, and p-li (team-b) has a
task nurse.liu must not be able to plan. The clock is 2026-03-02 10:00 in Shanghai; the
route is planned for Wednesday 2026-03-04.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from registry.care import ContractRepository, TeamRepository
from registry.care_models import TeamPosition
from registry.db import session_scope
from registry.models import AuditRecord, Patient
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind
from registry.visits import Reason, VisitRepository
from tests.dashboard_api.conftest import T0, Deployment
from tests.dashboard_api.test_authorization_matrix import _headers

DAY = "2026-03-04"
# 08:30 in Shanghai is 00:30 UTC; 30 min travel, 45 min visits.
FIRST = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
STEP = timedelta(minutes=75)
AREAS = {
    "p-wang": ("东城区", "和平社区", "一组"),
    "p-a1": ("东城区", "幸福社区", None),
    "p-a2": ("东城区", "和平社区", "二组"),
    "p-a3": ("东城区", "幸福社区", None),
    "p-a4": ("西城区", "红星村", None),
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _seed_tasks(deployment: Deployment) -> dict[str, int]:
    """One requested home visit per patient (p-a2 most urgent), and one of p-li (team-b)."""
    now = deployment.clock()
    priorities = {"p-wang": 3, "p-a1": 2, "p-a2": 1, "p-a3": 3, "p-a4": 2, "p-li": 1}
    out = {}
    with session_scope(deployment.registry) as s:
        patients = PatientRepository(s, clock=deployment.clock)
        contracts = ContractRepository(s, clock=deployment.clock)
        for pid in ("p-a1", "p-a2", "p-a3", "p-a4"):
            patients.add(pid, display_name=f"患者{pid[-1]}")
            contracts.sign(pid, "team-a", service_package="hypertension", starts_on=now.date())
        for pid, (district, community, village) in AREAS.items():
            row = s.get_one(Patient, pid)
            row.district, row.community, row.village = district, community, village
        visits = VisitRepository(s, clock=deployment.clock)
        for pid, priority in priorities.items():
            out[pid] = visits.open(
                pid,
                Reason.doctor_request(VisitKind.HOME_VISIT, "复测血压"),
                kind=VisitKind.HOME_VISIT,
                priority=priority,
                earliest=now,
                latest=now + timedelta(days=14),
                actor="dr.zhang",
            ).task.id
    return out


def test_capacity_defaults_who_may_set_it_and_its_limits(deployment: Deployment) -> None:
    nurse = _bearer(deployment.login("nurse.liu"))
    lead = _bearer(deployment.login("lead.zhou"))
    admin = _bearer(deployment.login("admin"))
    doctor = _bearer(deployment.login("dr.zhang"))
    url = "/api/v1/visits/capacity"
    got = deployment.client.get(url, headers=nurse)
    assert got.status_code == 200, got.text
    assert got.json() == {
        "nurse": "nurse.liu",
        "work_start": "08:30",
        "work_end": "17:30",
        "max_visits": 6,
        "minutes_per_visit": 45,
        "travel_minutes": 30,
        "time_zone": "Asia/Shanghai",
    }
    body = {
        "work_start": "09:00",
        "work_end": "16:00",
        "max_visits": 4,
        "minutes_per_visit": 40,
        "travel_minutes": 20,
    }
    assert deployment.client.put(url, headers=nurse, json=body).json()["max_visits"] == 4
    by_lead = deployment.client.put(
        url, headers=lead, params={"nurse": "nurse.liu"}, json={**body, "max_visits": 5}
    )
    assert by_lead.status_code == 200, by_lead.text
    assert (
        deployment.client.get(url, headers=admin, params={"nurse": "nurse.liu"}).json()[
            "max_visits"
        ]
        == 5
    )
    # A doctor of her team may not, and is told the same as for an unknown name.
    for name in ("nurse.liu", "nobody"):
        refused = deployment.client.get(url, headers=doctor, params={"nurse": name})
        assert (refused.status_code, refused.json()) == (404, {"detail": "nurse not found"})
    assert deployment.client.get(url, headers=doctor).status_code == 403
    backwards = deployment.client.put(url, headers=nurse, json={**body, "work_end": "08:00"})
    assert backwards.status_code == 422
    assert "work_end" in backwards.text


def test_a_route_respects_capacity_then_reorders_and_the_feed_follows(
    deployment: Deployment,
) -> None:
    tasks = _seed_tasks(deployment)
    nurse = _bearer(deployment.login("nurse.liu"))
    deployment.client.put(
        "/api/v1/visits/capacity",
        headers=nurse,
        json={
            "work_start": "08:30",
            "work_end": "17:30",
            "max_visits": 3,
            "minutes_per_visit": 45,
            "travel_minutes": 30,
        },
    )
    day = deployment.client.get("/api/v1/visits/route", headers=nurse, params={"date": DAY})
    assert day.status_code == 200, day.text
    route = day.json()
    assert (route["stops"], route["free_slots"]) == ([], 3)
    # Suggestions: the team's five requested tasks (not p-li's), grouped by community,
    # the community of the most urgent (p-a2, 和平社区) first.
    suggested = [s["task_id"] for s in route["suggestions"]]
    assert sorted(suggested) == sorted(v for k, v in tasks.items() if k != "p-li")
    assert [s["community"] for s in route["suggestions"]] == [
        "和平社区", "和平社区", "幸福社区", "幸福社区", "红星村",
    ]  # fmt: skip
    assert route["suggestions"][0]["patient_name"] == "患者2"

    four = [tasks[p] for p in ("p-a2", "p-wang", "p-a1", "p-a3")]
    over = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": four}
    )
    assert over.status_code == 422
    assert {p["problem"] for p in over.json()["detail"]} == {"over_capacity"}
    foreign = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": [tasks["p-li"]]}
    )
    assert foreign.status_code == 422
    assert foreign.json()["detail"][0]["problem"] == "unknown_task"

    three = four[:3]
    planned = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": three}
    )
    assert planned.status_code == 200, planned.text
    stops = planned.json()["stops"]
    assert [s["task_id"] for s in stops] == three
    assert [datetime.fromisoformat(s["start"]) for s in stops] == [
        FIRST, FIRST + STEP, FIRST + 2 * STEP,
    ]  # fmt: skip
    assert planned.json()["free_slots"] == 0

    issued = deployment.client.post("/api/v1/calendar/token", headers=nurse).json()["path"]

    def feed_starts() -> dict[str, datetime]:
        document = Calendar.from_ical(deployment.client.get(issued).content)
        return {str(e["uid"]).split("@")[0]: e.decoded("dtstart") for e in document.walk("VEVENT")}

    codes = {s["task_id"]: s["visit_code"] for s in stops}
    assert feed_starts() == {codes[t]: FIRST + i * STEP for i, t in enumerate(three)}

    # Reorder: the last stop first. Each moved visit is rescheduled, with the reason.
    reordered = [three[2], three[0], three[1]]
    moved = deployment.client.put(
        "/api/v1/visits/route",
        headers=nurse,
        json={"date": DAY, "task_ids": reordered, "reason": "患者上午才在家"},
    )
    assert moved.status_code == 200, moved.text
    assert [s["task_id"] for s in moved.json()["stops"]] == reordered
    assert feed_starts() == {codes[t]: FIRST + i * STEP for i, t in enumerate(reordered)}
    with session_scope(deployment.registry, write=False) as s:
        history = VisitRepository(s).history(three[2])
    assert [(e.kind, e.reason) for e in history[-2:]] == [
        ("scheduled", f"day route {DAY}"),
        ("rescheduled", "患者上午才在家"),
    ]
    # Leaving a stop of the day out is refused, naming it.
    dropped = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": reordered[:2]}
    )
    assert dropped.status_code == 422
    assert [(p["problem"], p["task_id"]) for p in dropped.json()["detail"]] == [
        ("missing_stop", reordered[2])
    ]


def test_suggest_gives_an_order_the_route_accepts_and_the_week_shows_it(
    deployment: Deployment,
) -> None:
    tasks = _seed_tasks(deployment)
    nurse = _bearer(deployment.login("nurse.liu"))
    answer = deployment.client.post(
        "/api/v1/visits/route/suggest", headers=nurse, json={"date": DAY}
    )
    assert answer.status_code == 200, answer.text
    order = answer.json()["task_ids"]
    assert len(order) == 5  # the default six slots, five tasks of the team
    assert order[0] == tasks["p-a2"]
    put = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": order}
    )
    assert put.status_code == 200, put.text
    communities = [s["community"] for s in put.json()["stops"]]
    assert communities == ["和平社区", "和平社区", "幸福社区", "幸福社区", "红星村"]

    week = deployment.client.get(
        "/api/v1/visits/week", headers=nurse, params={"start": "2026-03-02"}
    )
    assert week.status_code == 200, week.text
    days = week.json()["days"]
    assert [d["date"] for d in days] == [f"2026-03-0{n}" for n in range(2, 9)]
    assert [len(d["stops"]) for d in days] == [0, 0, 5, 0, 0, 0, 0]
    assert [s["task_id"] for s in days[2]["stops"]] == order


def test_a_team_lead_plans_for_her_nurse_and_others_are_refused(deployment: Deployment) -> None:
    tasks = _seed_tasks(deployment)
    lead = _bearer(deployment.login("lead.zhou"))
    body = {"date": DAY, "nurse": "nurse.liu", "task_ids": [tasks["p-a4"]]}
    planned = deployment.client.put("/api/v1/visits/route", headers=lead, json=body)
    assert planned.status_code == 200, planned.text
    assert planned.json()["stops"][0]["start"] is not None
    for who in ("dr.zhang", "dr.chen"):
        headers = _bearer(deployment.login(who))
        got = deployment.client.get(
            "/api/v1/visits/route", headers=headers, params={"date": DAY, "nurse": "nurse.liu"}
        )
        assert (got.status_code, got.json()) == (404, {"detail": "nurse not found"}), who
        assert (
            deployment.client.put("/api/v1/visits/route", headers=headers, json=body).status_code
            == 404
        )
    patient = _bearer(deployment.sms_login("13800000001"))
    assert (
        deployment.client.get(
            "/api/v1/visits/route", headers=patient, params={"date": DAY}
        ).status_code
        == 403
    )
    deployment.client.cookies.clear()  # the SMS login left the patient's session cookie
    assert deployment.client.get("/api/v1/visits/route", params={"date": DAY}).status_code == 401
    with session_scope(deployment.registry, write=False) as s:
        rows = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "PUT /api/v1/visits/route")
        ).all()
    outcomes = [(r.actor, r.outcome, json.loads(r.patient_ids)) for r in rows]
    # The answer names the planned stop and every suggestion: all of them are in the row.
    assert ("lead.zhou", "ok", ["p-a1", "p-a2", "p-a3", "p-a4", "p-wang"]) in outcomes
    assert ("dr.zhang", "denied", []) in outcomes


def test_a_window_not_open_that_day_and_a_day_over_are_refused(deployment: Deployment) -> None:
    now = deployment.clock()
    with session_scope(deployment.registry) as s:
        later = (
            VisitRepository(s, clock=deployment.clock)
            .open(
                "p-wang",
                Reason.routine("routine:hypertension"),
                kind=VisitKind.HOME_VISIT,
                priority=3,
                earliest=now + timedelta(days=10),
                latest=now + timedelta(days=20),
                actor="dr.zhang",
            )
            .task.id
        )
    nurse = _bearer(deployment.login("nurse.liu"))
    early = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": DAY, "task_ids": [later]}
    )
    assert early.status_code == 422
    assert early.json()["detail"][0]["problem"] == "outside_window"
    assert "due window" in early.json()["detail"][0]["message"]
    yesterday = (T0 - timedelta(days=1)).date().isoformat()
    over = deployment.client.put(
        "/api/v1/visits/route", headers=nurse, json={"date": yesterday, "task_ids": []}
    )
    assert [p["problem"] for p in over.json()["detail"]] == ["day_over"]


def test_a_lead_sees_only_her_teams_visits_of_a_nurse_of_two_teams(
    deployment: Deployment,
) -> None:
    tasks = _seed_tasks(deployment)
    with session_scope(deployment.registry) as s:
        TeamRepository(s, clock=deployment.clock).add_member(
            "team-b", "nurse.liu", TeamPosition.NURSE
        )
    deployment.clock.advance(minutes=1)
    with session_scope(deployment.registry) as s:
        VisitRepository(s, clock=deployment.clock).schedule(
            tasks["p-li"], FIRST, actor="nurse.liu", reason="", assignee="nurse.liu"
        )
    nurse = _bearer(deployment.login("nurse.liu"))
    lead = _bearer(deployment.login("lead.zhou"))
    own = deployment.client.get("/api/v1/visits/route", headers=nurse, params={"date": DAY})
    assert [s["patient_id"] for s in own.json()["stops"]] == ["p-li"]
    seen = deployment.client.get(
        "/api/v1/visits/route", headers=lead, params={"date": DAY, "nurse": "nurse.liu"}
    ).json()
    # team-b's visit is not shown to team-a's lead, but it still takes one of the six slots.
    assert (seen["stops"], seen["free_slots"]) == ([], 5)
    assert "p-li" not in {s["patient_id"] for s in seen["suggestions"]}
    refused = deployment.client.put(
        "/api/v1/visits/route",
        headers=lead,
        json={"date": DAY, "nurse": "nurse.liu", "task_ids": [tasks["p-a1"]]},
    )
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert (problem["problem"], problem["task_id"]) == ("missing_stop", None)
    assert "V-" not in problem["message"]


# Every kind of caller of the authorization matrix, naming nurse.liu: her route (and week,
# and suggestion) only for herself and her team lead; her capacity also for an admin.
# Written out by hand from docs/visit-routes.md, not computed from the code.
_ROUTE_FOR: dict[str, tuple[int, int]] = {
    "own doctor": (404, 404),
    "team lead": (200, 200),
    "doctor of another team": (404, 404),
    "nurse of the team": (200, 200),
    "the patient": (404, 404),
    "consented family member": (404, 404),
    "family, consent revoked": (404, 404),
    "family, consent expired": (404, 404),
    "admin": (404, 200),
    "IT operator": (404, 404),
    "duty doctor during duty": (404, 404),
    "duty doctor after duty": (404, 404),
    "doctor after break-glass": (404, 404),
    "no token": (401, 401),
    "expired token": (401, 401),
    "forged token": (401, 401),
    "alg=none token": (401, 401),
}


@pytest.mark.parametrize("persona", list(_ROUTE_FOR))
def test_each_caller_naming_the_nurse_gets_what_the_doc_says(
    deployment: Deployment, persona: str
) -> None:
    headers = _headers(deployment, persona)
    deployment.client.cookies.clear()  # an SMS login leaves a cookie; the header decides
    route, capacity = _ROUTE_FOR[persona]
    nurse = {"nurse": "nurse.liu"}
    calls = [
        ("get", "/api/v1/visits/route", {**nurse, "date": DAY}, None, route),
        ("get", "/api/v1/visits/week", {**nurse, "start": DAY}, None, route),
        ("post", "/api/v1/visits/route/suggest", None, {**nurse, "date": DAY}, route),
        ("get", "/api/v1/visits/capacity", nurse, None, capacity),
    ]
    for method, url, params, body, expected in calls:
        answer = deployment.client.request(method, url, headers=headers, params=params, json=body)
        assert answer.status_code == expected, (persona, url, answer.text)
        if expected == 404:
            assert answer.json() == {"detail": "nurse not found"}
