"""The patient and family portal in a real browser (zh-CN): consent given and revoked, the
"what to do now" box for a low, and a symptom that reaches the doctor's inbox.

The server is shared by the whole browser session, so each test puts back what it changed
(the daughter's consent, the alerts it opened).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from registry.alert_models import AlertRow, EscalationStep
from registry.alerts_repo import AlertRepository
from registry.care import FamilyRepository
from registry.care_models import ConsentScope
from registry.db import session_scope
from registry.notification_prefs import NotificationPrefsRepository
from registry.visit_reminders import sms_opt_in
from tests.web.conftest import SCREENSHOTS, Watched, WebServer, watched_page
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser

NOT_FOUND = "找不到该页面"


def sms_login(watched: Watched, server: WebServer, phone: str) -> None:
    """Log in as a patient or family member with the link the SMS carries."""
    page = watched.page
    page.goto(server.base_url + "/")
    page.get_by_label("手机号").fill(phone)
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.goto(server.last_sms_link())
    page.locator("#portal").wait_for()


def _no_untranslated_key(watched: Watched) -> None:
    assert "⟦" not in watched.page.locator("body").inner_text()


def _api_status(watched: Watched, path: str) -> int:
    status: int = watched.page.evaluate(
        "(path) => fetch(path, {credentials: 'same-origin'}).then((r) => r.status)", path
    )
    return status


@pytest.fixture
def daughter_consent_restored(web_server: WebServer) -> Iterator[None]:
    """Give wang.daughter her consent to p-wang back after the test, as the seed had it."""
    yield
    with session_scope(web_server.registry) as session:
        family = FamilyRepository(session)
        if not [
            c
            for c in family.consents("p-wang")
            if c.family_username == "wang.daughter" and c.in_force(datetime.now(UTC))
        ]:
            family.grant(
                "p-wang", "wang.daughter", [ConsentScope.VIEW_READINGS], granted_by="wang.fang"
            )


def test_a_revoked_family_member_gets_not_found_and_reads_nothing_about_the_patient(
    watched: Watched, web_server: WebServer, browser: object, daughter_consent_restored: None
) -> None:
    daughter = watched.page
    sms_login(watched, web_server, "13800000002")
    daughter.goto(web_server.base_url + "/#/portal/p-wang")
    daughter.locator("h1", has_text="王芳 的最新测量").wait_for()
    assert "血糖 5.6 mmol/L" in daughter.locator("#portal-latest").inner_text()
    assert _api_status(watched, "/api/v1/patients/p-wang") == 200

    with watched_page(browser, web_server.host) as mother:
        sms_login(mother, web_server, "13800000001")
        page = mother.page
        page.locator("#nav-family").click()
        item = page.locator("li.consent[data-username='wang.daughter']")
        item.wait_for()
        text = item.inner_text()
        assert "child · 尾号 0002" in text, text
        assert "查看测量数据和设备" in text
        assert "自 " in text
        assert " 起" in text
        # A phone number that is not a mainland mobile is refused in words, before the API.
        page.get_by_label("家人的手机号码").fill("12345")
        page.get_by_label("与您的关系").fill("儿子")
        page.get_by_role("button", name="发送邀请短信").click()
        page.locator("#invite-error", has_text="请输入 11 位手机号码").wait_for()
        page.get_by_label("家人的手机号码").fill("139 1234 5670")
        page.locator("#invite-receive_alerts").check()
        page.get_by_role("button", name="发送邀请短信").click()
        page.locator("#family-message", has_text="已向尾号 5670 的手机发送邀请短信").wait_for()
        assert web_server.last_sms_link()  # the relative's SMS carries a login link
        _no_untranslated_key(mother)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "portal-family-zh.png"), full_page=True)
        page.select_option("#pref-lang", "en")
        page.locator("h2", has_text="Who can see what").wait_for()
        assert "See readings and devices" in page.locator("#consents").inner_text()
        _no_untranslated_key(mother)
        page.select_option("#pref-lang", "zh-CN")
        page.locator("h2", has_text="谁可以看到什么").wait_for()
        # Revoke, with a confirmation first.
        item = page.locator("li.consent[data-username='wang.daughter']")
        item.get_by_role("button", name="撤销授权").click()
        dialog = item.get_by_role("alertdialog")
        assert "撤销后对方将立即无法查看您的任何信息" in dialog.inner_text()
        dialog.get_by_role("button", name="确定撤销").click()
        page.locator("#family-message", has_text="已撤销授权").wait_for()
        assert page.locator("li.consent[data-username='wang.daughter']").count() == 0
        assert "child · 尾号 0002" in (page.locator("#consents-past").text_content() or "")

    # The daughter's same URL: the API answers 404 and the page says nothing about her.
    watched.allowed_errors.append("404")
    assert _api_status(watched, "/api/v1/patients/p-wang") == 404
    assert _api_status(watched, "/api/v1/patients/p-wang/readings?kind=glucose") == 404
    daughter.reload()
    daughter.get_by_role("heading", name=NOT_FOUND).wait_for()
    body = daughter.locator("body").inner_text()
    for leaked in ("王芳", "p-wang"):
        assert leaked not in body, leaked
    main = daughter.locator("#main").inner_text()
    for leaked in ("mmol/L", "mmHg", "5.6", "血糖", "血压", "测量"):
        assert leaked not in main, leaked
    _no_untranslated_key(watched)


def _open_alert(server: WebServer, rule_id: str) -> tuple[int, bool]:
    """p-wang's open alert of ``rule_id``, recorded as the alert worker does if none is open;
    its first escalation step (the doctor's inbox) marked delivered. (id, created here)."""
    now = datetime.now(UTC)
    finding = Finding(
        "p-wang", rule_id, 1, Metric.GLUCOSE, Severity.P1, FindingStatus.FIRING, now,
        ("r-portal-low",), {"below mmol/L": 3.0},
        Explanation("alert.threshold.firing", {"events_7d": 1, "readings": 1, "severity": "P1"}),
    )  # fmt: skip
    with session_scope(server.registry) as session:
        repo = AlertRepository(session)
        existing = [a for a in repo.open_alerts("p-wang") if a.rule_id == rule_id]
        if existing:
            alert_id, created = int(existing[0].alert_id), False
        else:
            [alert_id] = repo.record(decide("p-wang", [finding], [], now=now))
            created = True
        # What the escalation worker records once the inbox step reached the doctor.
        session.execute(
            update(EscalationStep)
            .where(EscalationStep.alert_id == alert_id, EscalationStep.step_no == 0)
            .values(status="done", done_at=now)
        )
    return alert_id, created


def _resolve(server: WebServer, alert_id: int) -> None:
    with session_scope(server.registry) as session:
        AlertRepository(session).resolve(
            alert_id,
            actor="dr.zhang",
            note="test over",
            now=datetime.now(UTC) + timedelta(seconds=1),
        )


def test_a_low_shows_what_to_do_now_with_the_15_g_advice(
    watched: Watched, web_server: WebServer
) -> None:
    alert_id, created = _open_alert(web_server, "G1")
    try:
        page = watched.page
        sms_login(watched, web_server, "13800000001")
        box = page.locator("#what-to-do")
        box.wait_for()
        item = box.locator("li[data-rule='G1']")
        text = item.inner_text()
        assert "现在该怎么做" in box.inner_text()
        assert "请立即吃 15 克快速升糖食物（如 3-4 块方糖或半杯果汁）" in text, text
        assert "15 分钟后复测血糖" in text
        assert "请立即拨打 120" in text
        assert "您的家庭医生已收到通知" in text
        assert "紧急" in text  # the tier in words, not by colour alone
        _no_untranslated_key(watched)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "portal-what-to-do-zh.png"), full_page=True)
        page.select_option("#pref-lang", "en")
        page.locator("#what-to-do", has_text="Eat 15 g of fast sugar now").wait_for()
        assert "Your family doctor has been notified" in page.locator("#what-to-do").inner_text()
        _no_untranslated_key(watched)
        page.select_option("#pref-lang", "zh-CN")
        page.locator("#what-to-do", has_text="现在该怎么做").wait_for()
    finally:
        if created:
            _resolve(web_server, alert_id)


def test_a_symptom_reported_on_the_portal_reaches_the_doctors_inbox(
    watched: Watched, web_server: WebServer, browser: object
) -> None:
    page = watched.page
    sms_login(watched, web_server, "13800000001")
    page.get_by_role("button", name="告诉医生").click()
    page.locator("#symptom-message", has_text="请先选择一个症状").wait_for()
    page.get_by_label("胸闷").check()
    page.get_by_label("补充说明（选择“其他”时必填）").fill("上楼时胸口发紧")
    page.get_by_role("button", name="告诉医生").click()
    page.locator("#symptom-message", has_text="已告诉您的家庭医生").wait_for()
    assert "120" in page.locator("#symptom-message").inner_text()
    page.locator("#what-to-do li[data-rule='SYM1']").wait_for()
    _no_untranslated_key(watched)
    with session_scope(web_server.registry, write=False) as session:
        (alert_id,) = session.scalars(
            select(AlertRow.id).where(
                AlertRow.patient_id == "p-wang",
                AlertRow.rule_id == "SYM1",
                AlertRow.resolved_at.is_(None),
            )
        ).all()
    try:
        with watched_page(browser, web_server.host) as doctor:
            staff_login(doctor, web_server, "dr.zhang")
            doctor.page.locator("#patient-list").wait_for()
            doctor.page.locator("#nav-inbox").click()
            row = doctor.page.locator(f"#alert-inbox tr[data-alert='{alert_id}']")
            row.wait_for()
            text = row.inner_text()
            assert "患者报告症状：胸闷（“上楼时胸口发紧”）" in text, text
            assert "王芳" in text
            assert "P1" in text
    finally:
        _resolve(web_server, alert_id)


def test_notification_settings_say_urgent_alerts_always_come_and_are_saved(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    sms_login(watched, web_server, "13800000001")
    page.locator("#nav-settings").click()
    urgent = page.locator("#settings-urgent")
    urgent.wait_for()
    assert "紧急提醒" in urgent.inner_text()
    assert "总会立即通知您和您的医生" in urgent.inner_text()
    page.get_by_label("微信").check()
    page.get_by_label("开启免打扰").check()
    page.get_by_label("开始").fill("21:30")
    page.get_by_label("结束").fill("06:30")
    page.get_by_label("护士上门当天早上 7:30 发短信提醒我").check()
    page.get_by_role("button", name="保存设置").click()
    page.locator("#settings-message", has_text="设置已保存").wait_for()
    _no_untranslated_key(watched)
    page.reload()
    page.locator("#channel-wechat:checked").wait_for()
    assert page.locator("#quiet-start").input_value() == "21:30"
    assert page.locator("#visit-sms").is_checked()
    with session_scope(web_server.registry, write=False) as session:
        prefs = NotificationPrefsRepository(session).get("p-wang")
        assert sms_opt_in(session, "p-wang")
    assert (prefs.channel.value, str(prefs.quiet_start), prefs.updated_by) == (
        "wechat",
        "21:30:00",
        "wang.fang",
    )
