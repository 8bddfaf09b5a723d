"""The nurse's day route in a real browser (zh-CN), planned with the keyboard: tasks added
from the suggestions, one moved up, an over-capacity save refused in words, then saved;
the week shows the day's stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from registry.care import ContractRepository
from registry.db import session_scope
from registry.models import Patient
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind, VisitTask
from registry.visit_routes import Capacity
from registry.visit_schedule import CapacityRepository
from registry.visits import Reason, VisitRepository
from tests.web.conftest import SCREENSHOTS, Watched, WebServer
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser

PATIENTS = {"p-route1": "和平社区", "p-route2": "幸福社区", "p-route3": "和平社区"}


def _seed(server: WebServer) -> dict[str, int]:
    now = datetime.now(UTC)
    ids = {}
    with session_scope(server.registry) as s:
        for pid, community in PATIENTS.items():
            PatientRepository(s).add(pid, display_name=f"路线{pid[-1]}")
            ContractRepository(s).sign(
                pid, "team-a", service_package="hypertension", starts_on=now.date()
            )
            s.get_one(Patient, pid).community = community
            ids[pid] = (
                VisitRepository(s)
                .open(
                    pid,
                    Reason.routine("routine:hypertension"),
                    kind=VisitKind.HOME_VISIT,
                    priority=2,
                    earliest=now,
                    latest=now + timedelta(days=14),
                    actor="dr.zhang",
                )
                .task.id
            )
        CapacityRepository(s).set("nurse.liu", Capacity(max_visits=2), actor="lead.zhou")
    return ids


def test_a_nurse_plans_her_day_with_the_keyboard(watched: Watched, web_server: WebServer) -> None:
    ids = _seed(web_server)
    day = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).date().isoformat()
    page = watched.page
    staff_login(watched, web_server, "nurse.liu")
    page.locator("#nav-route").wait_for()
    page.goto(f"{web_server.base_url}/#/visits/route?date={day}")
    suggestions = page.locator("#route-suggestions")
    for pid in PATIENTS:
        suggestions.locator(f"li[data-task='{ids[pid]}']").wait_for()
    assert page.locator("#route-empty").is_visible()
    with session_scope(web_server.registry, write=False) as s:
        codes = {
            pid: s.scalar(select(VisitTask.code).where(VisitTask.id == task_id))
            for pid, task_id in ids.items()
        }
    for pid in ("p-route1", "p-route2", "p-route3"):
        page.get_by_role("button", name=f"把 {codes[pid]} 加入路线").focus()
        page.keyboard.press("Enter")
    stops = page.locator("#route-stops li")
    assert stops.count() == 3
    # Move the second (幸福社区) up, by keyboard; focus stays on the moved stop's button.
    page.get_by_role("button", name=f"上移 {codes['p-route2']}").focus()
    page.keyboard.press("Enter")
    order = [stops.nth(i).get_attribute("data-task") for i in range(3)]
    assert order == [str(ids["p-route2"]), str(ids["p-route1"]), str(ids["p-route3"])]
    assert stops.nth(0).inner_text().startswith("09:00–09:45")
    assert stops.nth(0).locator("a").get_attribute("href") == f"#/visit/{ids['p-route2']}"

    # The refused save is a 422 the browser logs as a failed resource load.
    watched.allowed_errors.append("422")
    page.locator("#route-save").click()
    errors = page.locator("#route-errors")
    errors.get_by_text("路线未保存").wait_for()
    assert "超出当天最多随访次数" in errors.inner_text()
    page.get_by_role("button", name=f"从路线移除 {codes['p-route3']}").click()
    page.locator("#route-save").click()
    # Saved: the page reloads the day from the API, which now has no slot free.
    page.locator("#route-capacity", has_text="剩余 0 个空位").wait_for()
    page.locator(f"#route-stops li[data-task='{ids['p-route2']}'] .up[disabled]").wait_for()
    page.locator(f"#route-suggestions li[data-task='{ids['p-route3']}']").wait_for()
    assert page.get_by_role("button", name=f"从路线移除 {codes['p-route2']}").count() == 0
    with session_scope(web_server.registry, write=False) as s:
        planned = {
            t.id: (t.status, t.assignee, t.scheduled_at)
            for t in s.scalars(select(VisitTask).where(VisitTask.id.in_(ids.values())))
        }
    start = planned[ids["p-route2"]][2]
    assert planned[ids["p-route2"]][:2] == ("scheduled", "nurse.liu")
    assert start is not None
    assert start.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M") == "09:00"
    assert planned[ids["p-route3"]][0] == "requested"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "day-route-zh.png"), full_page=True)
    page.locator("#route-to-week").click()
    column = page.locator(f"#week-grid .week-day[data-date='{day}']")
    column.locator("li").first.wait_for()
    text = column.inner_text()
    assert column.locator("li").count() == 2
    for word in ("09:00", "幸福社区", "和平社区"):
        assert word in text, (word, text)
