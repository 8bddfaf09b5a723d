"""Issue 12's walk-through in a real browser, in zh-CN: a doctor turns an alert into a home
visit from the inbox, the nurse schedules it from her queue, fills in the visit form on a
tablet-sized screen and submits it; the task closes, the vitals appear on the patient page
as manual entries, the alert is resolved, and the doctor's inbox shows the outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.db import session_scope
from registry.visit_models import VisitKind, VisitTask
from registry.visits import Reason, VisitRepository
from tests.web.conftest import SCREENSHOTS, Watched, WebServer
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser

UNTRANSLATED = "⟦"
"""What i18n.t shows for a key missing from the catalogue."""


def _fire_b2(server: WebServer) -> int:
    now = datetime.now(UTC)
    mean = {"mean_systolic": 146, "mean_diastolic": 92, "readings": 14}
    finding = Finding(
        "p-wang", "B2", 1, Metric.BLOOD_PRESSURE, Severity.P3, FindingStatus.FIRING, now,
        ("r-visit-1",), {},
        Explanation("alert.window_mean", mean),
    )  # fmt: skip
    with session_scope(server.registry) as s:
        repo = AlertRepository(s)
        [alert_id] = repo.record(decide("p-wang", [finding], repo.open_alerts("p-wang"), now=now))
    return alert_id


def _translated(watched: Watched) -> str:
    text: str = watched.page.locator("body").inner_text()
    assert UNTRANSLATED not in text, text
    return text


def test_alert_to_task_to_schedule_to_visit_form_to_closed_task(
    watched: Watched, web_server: WebServer
) -> None:
    alert_id = _fire_b2(web_server)
    page = watched.page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The doctor: the alert's detail has no task yet; she asks for a home visit.
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list").wait_for()
    page.locator("#nav-inbox").click()
    page.locator(f"#detail-{alert_id}").click()
    block = page.locator(f"#visits-of-{alert_id}")
    block.get_by_text("该告警还没有访视任务。").wait_for()
    _translated(watched)
    page.locator(f"#create-home-{alert_id}").click()
    page.locator("#inbox-message", has_text="已创建上门随访任务").wait_for()
    block.locator("li", has_text="待安排").wait_for()
    assert page.locator(f"#create-home-{alert_id}").count() == 0  # one open task per alert
    with session_scope(web_server.registry, write=False) as s:
        [task_id] = s.scalars(select(VisitTask.id).where(VisitTask.alert_id == alert_id)).all()
    page.locator("#logout").click()
    page.locator("#staff-login").wait_for()  # the session is gone before the next login

    # The nurse: the task is in her queue, in words; she schedules it for herself.
    staff_login(watched, web_server, "nurse.liu")
    page.locator("#nav-visits").click()
    card = page.locator(f"#visit-queue li[data-task='{task_id}']")
    card.wait_for()
    text = card.inner_text()
    reason = "医生根据告警要求：B2 7 天家庭血压均值偏高"
    for words in ("王芳", "上门随访", "待安排", reason, "P3 常规"):
        assert words in text, (words, text)
    assert page.locator("#link-route").get_attribute("href") == "#/visits/route"
    assert page.locator("#link-week").get_attribute("href") == "#/visits/week"
    card.get_by_role("button", name="安排").click()
    page.locator("#visits-message", has_text="已安排").wait_for()
    card.locator(".visit-status", has_text="已安排").wait_for()
    # The time is shown in the patient's zone (Asia/Shanghai), not the browser's (UTC here).
    with session_scope(web_server.registry, write=False) as s:
        at = s.get_one(VisitTask, task_id).scheduled_at
    assert at is not None
    local = at.replace(tzinfo=at.tzinfo or UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert local.strftime("%Y-%m-%d %H:%M") in card.inner_text()
    _translated(watched)
    page.screenshot(path=str(SCREENSHOTS / "visit-queue-zh.png"), full_page=True)

    # The visit form on a tablet held upright.
    page.set_viewport_size({"width": 768, "height": 1024})
    card.get_by_role("link", name="填写访视记录").click()
    form = page.locator("#visit-form")
    form.wait_for()
    assert page.locator("#v-programme").input_value() == "hypertension"  # B2: a BP follow-up
    page.get_by_label("收缩压").fill("400")
    page.locator("#v-glucose").fill("7.2")
    page.locator("#visit-submit").click()
    errors = page.locator("#form-errors").inner_text()
    for words in (
        "收缩压应在 40–300 mmHg 之间",
        "血压需要同时填写收缩压和舒张压",
        "请选择血糖的测量时间",
        "需要患者同意才能记录访视",
        "请选择随访分类",
    ):
        assert words in errors, (words, errors)
    assert page.locator("#v-systolic").get_attribute("aria-invalid") == "true"
    page.get_by_label("收缩压").fill("152")
    page.get_by_label("舒张压").fill("94")
    page.get_by_label("脉搏").fill("78")
    page.select_option("#v-meal", "fasting")
    page.get_by_label("体重").fill("70.5")
    page.get_by_label("血氧饱和度").fill("96")
    page.get_by_label("体温").fill("36.6")
    page.get_by_label("患者同意本次访视").check()
    page.get_by_label("已核查用药").check()
    page.get_by_label("用药情况").fill("氨氯地平 5 mg 每日一次，按时服用")
    page.get_by_label("健康教育内容").fill("低盐饮食，每日家庭血压早晚各测一次")
    page.get_by_label("评估").fill("复测血压仍高，建议医生调整用药")
    page.get_by_label("控制不满意").check()
    page.get_by_label("同时处理关联告警").check()
    page.get_by_label("告警处理备注").fill("上门复测，已转医生调整用药")
    assert page.locator("#form-errors").inner_text().strip() == ""  # corrected as typed
    assert page.locator("#v-systolic").get_attribute("aria-invalid") is None
    _translated(watched)
    page.screenshot(path=str(SCREENSHOTS / "visit-form-zh.png"), full_page=True)
    page.locator("#visit-submit").click()

    outcome = page.locator("#visit-outcome")
    outcome.wait_for()
    text = outcome.inner_text()
    assert "已关闭：已完成" in text, text
    assert "已保存 5 项体征读数" in text, text  # BP with pulse, glucose, weight, SpO2, temperature
    assert "已创建下次随访：上门随访" in text, text  # not controlled: again within 2 weeks
    assert "关联告警已处理" in text, text
    _translated(watched)

    # The vitals on the patient page, marked as typed in by a person.
    page.set_viewport_size({"width": 1200, "height": 900})
    page.locator("#outcome-patient").click()
    table = page.locator("#readings-table")
    table.wait_for()
    manual = table.locator("tr", has_text="VitalGate-NurseVisit-")
    assert manual.count() == 5, table.inner_text()
    for value in ("152/94 mmHg", "7.2 mmol/L", "70.5 kg", "96 %", "36.6 °C"):
        row = manual.filter(has_text=value)
        assert row.count() == 1, (value, manual.all_inner_texts())
        assert "手动录入" in row.inner_text()
    _translated(watched)

    with session_scope(web_server.registry, write=False) as s:
        alert = s.get_one(AlertRow, alert_id)
        task = s.get_one(VisitTask, task_id)
        assert (task.status, alert.state) == ("completed", "resolved")
        next_open = s.scalars(
            select(VisitTask.status).where(
                VisitTask.patient_id == "p-wang", VisitTask.reason_key == "routine:hypertension"
            )
        ).all()
    assert next_open == ["requested"]

    # The team sees the alert's task and its outcome in the inbox.
    page.locator("#nav-inbox").click()
    page.locator(f"#detail-{alert_id}").click()
    line = page.locator(f"#visits-of-{alert_id} li[data-visit='{task_id}']")
    line.wait_for()
    text = line.inner_text()
    for words in ("已完成", "控制不满意", "下次上门随访"):
        assert words in text, (words, text)
    assert page.locator(f"#create-home-{alert_id}").count() == 0  # the alert is resolved
    _translated(watched)


def test_overdue_task_in_words_cancel_needs_a_reason_and_a_missed_visit_is_recorded(
    watched: Watched, web_server: WebServer
) -> None:
    now = datetime.now(UTC)
    with session_scope(web_server.registry) as s:
        repo = VisitRepository(s)
        late = repo.open(
            "p-wang", Reason.doctor_request(VisitKind.PHONE, "复查用药"), kind=VisitKind.PHONE,
            priority=1, earliest=now - timedelta(days=3), latest=now - timedelta(days=1),
            actor="dr.zhang", assignee="nurse.liu",
        ).task  # fmt: skip
        repo.schedule(late.id, now + timedelta(hours=1), actor="nurse.liu", reason="")
        other = repo.open(
            "p-wang", Reason.doctor_request(VisitKind.CLINIC, ""), kind=VisitKind.CLINIC,
            priority=2, earliest=now, latest=now + timedelta(days=5), actor="dr.zhang",
        ).task  # fmt: skip
    page = watched.page
    staff_login(watched, web_server, "nurse.liu")
    page.locator("#nav-visits").click()
    card = page.locator(f"#visit-queue li[data-task='{late.id}']")
    card.wait_for()
    # Overdue in words and with a sign, not by the red border alone; listed first (P1).
    assert "⚠ 已逾期" in card.inner_text()
    assert page.locator("#visits-overdue").inner_text().startswith("⚠")
    assert page.locator("#visit-queue > li").first.get_attribute("data-task") == str(late.id)
    clinic = page.locator(f"#visit-queue li[data-task='{other.id}']")
    clinic.get_by_role("button", name="取消任务").click()
    page.locator("#visits-message", has_text="请填写原因").wait_for()
    clinic.get_by_label("原因").fill("患者已在门诊复诊")
    clinic.get_by_role("button", name="取消任务").click()
    page.locator("#visits-message", has_text="已取消").wait_for()
    assert page.locator(f"#visit-queue li[data-task='{other.id}']").count() == 0
    _translated(watched)

    card.get_by_role("link", name="填写访视记录").click()
    page.locator("#visit-missed").click()
    page.locator("#err-missed_reason", has_text="请填写原因").wait_for()
    page.locator("#v-missed_reason").fill("电话无人接听，已留言")
    page.locator("#visit-missed").click()
    page.locator("#outcome-closed", has_text="未完成（失约）").wait_for()
    _translated(watched)
    with session_scope(web_server.registry, write=False) as s:
        statuses = {t.id: t.status for t in s.scalars(select(VisitTask))}
    assert (statuses[late.id], statuses[other.id]) == ("missed", "cancelled")
