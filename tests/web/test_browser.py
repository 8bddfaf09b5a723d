"""The web app in a real browser: Debian's Chromium against a real uvicorn server.

Every test runs with the guards of ``watched``: a request to any other origin, a console
error or a CSP violation fails it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from readings.model import GlucoseValues
from readings.units import Unit
from tests.dashboard_api.conftest import METER
from tests.web.conftest import PASSWORD, SCREENSHOTS, Watched, WebServer, reading_at

pytestmark = pytest.mark.browser


def staff_login(watched: Watched, server: WebServer, username: str) -> None:
    page = watched.page
    page.goto(server.base_url + "/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_label("动态验证码（身份验证器 App）").fill(server.code(username))
    page.locator("#staff-login button[type=submit]").click()


def test_doctor_sees_her_patients_charts_in_zh_and_en_and_live_readings(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    staff_login(watched, web_server, "dr.zhang")
    table = page.locator("#patient-list")
    row = table.locator("tr[data-patient=p-wang]")
    row.wait_for()
    assert "李强" not in table.inner_text()  # another team's patient
    assert "血糖 5.6 mmol/L 在目标范围内" in row.inner_text()
    assert "2型糖尿病" in row.inner_text()
    assert "小时前" in row.inner_text()  # last contact, in words
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "doctor-list-zh.png"), full_page=True)

    row.get_by_role("link", name="王芳").click()
    page.locator("#chart-glucose svg").wait_for()
    for kind in ("blood_pressure", "weight", "spo2"):
        assert page.locator(f"#chart-{kind} svg circle").count() > 0, kind
    assert page.locator("#chart-glucose svg .band").count() == 1
    assert page.locator("#chart-blood_pressure svg .threshold").count() == 2
    assert "135 mmHg" in page.locator("#chart-blood_pressure").inner_text()
    # TIR from the 20 glucose readings: 3.4 twice is low, 14.6 twice very high, 11.4 twice high.
    tir = page.locator("#tir").inner_text()
    assert "目标范围内 (3.9–10.0 mmol/L): 70%" in tir, tir
    assert "低 (3.0–3.9 mmol/L): 10%" in tir, tir
    readings = page.locator("#readings-table")
    text = readings.inner_text()
    assert "HI（超出仪器上限）" in text
    assert "时钟已校正" in text
    assert METER in text
    assert "138/88 mmHg" in text
    assert "68.8 kg" in text
    assert "97 %" in text
    assert page.locator("#devices").inner_text().count("使用中") == 2
    page.screenshot(path=str(SCREENSHOTS / "patient-page-zh.png"), full_page=True)

    # The one-page report downloads from the page, with the session cookie.
    with page.expect_download() as download:
        page.locator("#download-report").click()
    report = Path(download.value.path()).read_bytes()
    assert report.startswith(b"%PDF"), report[:40]

    # The targets editor: a personal glucose band 4.4–8.0 mmol/L redraws the TIR.
    page.select_option("#t-metric", "glucose")
    page.get_by_label("下限").fill("4.4")
    page.get_by_label("上限").fill("8.0")
    page.get_by_label("原因").fill("老年患者，放宽目标")
    page.get_by_role("button", name="保存目标").click()
    page.locator("#targets", has_text="4.4–8 mmol/L").wait_for()
    assert "dr.zhang" in page.locator("#targets").inner_text()
    page.locator("#tir", has_text="目标范围内 (4.4–8.0 mmol/L)").wait_for()

    page.select_option("#pref-lang", "en")
    page.locator("h2", has_text="Glucose (mmol/L)").wait_for()
    assert "In target (4.4–8.0 mmol/L)" in page.locator("#tir").inner_text()
    assert "HI (above meter range)" in page.locator("#readings-table").inner_text()
    assert "⟦" not in page.locator("body").inner_text()  # no untranslated key
    page.screenshot(path=str(SCREENSHOTS / "patient-page-en.png"), full_page=True)
    page.select_option("#pref-unit", "mg/dL")
    page.locator("h2", has_text="Glucose (mg/dL)").wait_for()
    assert "101 mg/dL" in page.locator("#latest").inner_text()  # 5.6 mmol/L
    page.select_option("#pref-unit", "mmol/L")
    page.locator("h2", has_text="Glucose (mmol/L)").wait_for()

    # A new reading published into the live hub appears without a reload.
    page.evaluate("window.__sameDocument = true")
    page.locator("#live-state", has_text="Live").wait_for()
    fresh = reading_at(
        GlucoseValues(glucose=3.1),
        Unit.MMOL_PER_L,
        # Older than the newest reading, so the other tests' "latest" stays 5.6 mmol/L.
        datetime.now(UTC) - timedelta(hours=3),
        METER,
        "p-wang",
        999,
    )
    # The store is written first, as ingest does before it publishes on accepted/.
    from tests.web.conftest import web_store

    web_store(web_server).write([fresh])
    assert web_server.hub.publish([fresh]) == 1
    page.locator("#readings-table tr", has_text="3.1 mmol/L").wait_for()
    assert "below target" in page.locator("#readings-table tr", has_text="3.1 mmol/L").inner_text()
    assert page.evaluate("window.__sameDocument === true")  # no reload happened

    # Language choice is remembered across a reload.
    page.reload()
    page.locator("h2", has_text="Readings").wait_for()


def test_doctor_of_another_team_gets_the_not_found_page(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    staff_login(watched, web_server, "dr.chen")
    page.locator("#patient-list tr[data-patient=p-li]").wait_for()
    watched.allowed_errors.append("404")  # the browser logs the API's 404 answer
    page.goto(web_server.base_url + "/#/patient/p-wang")
    page.get_by_role("heading", name="找不到该页面").wait_for()
    assert "王芳" not in page.locator("body").inner_text()


def test_patient_logs_in_by_sms_and_reads_her_values_in_words(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    page.goto(web_server.base_url + "/")
    page.get_by_label("手机号").fill("13800000001")
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.goto(web_server.last_sms_link())  # opening the link from the SMS logs her in
    latest = page.locator("#portal-latest")
    latest.wait_for()
    assert "血糖 5.6 mmol/L，在目标范围内" in latest.inner_text()
    # Shown in the patient's zone (Asia/Shanghai), whatever the browser's zone (UTC here).
    measured = (web_server.seeded_at - timedelta(hours=2)).astimezone(ZoneInfo("Asia/Shanghai"))
    glucose_item = latest.locator("li[data-kind=glucose]").inner_text()
    assert f"测量时间 {measured:%Y-%m-%d %H:%M}" in glucose_item
    assert "血压 141/90 mmHg · 72 次/分，高于家庭血压标准 135/85" in latest.inner_text()
    assert "血压计已经 4 天没有使用" in page.locator("#portal-stale").inner_text()
    page.check("#pref-large")
    assert page.evaluate("document.documentElement.classList.contains('large')")
    page.screenshot(path=str(SCREENSHOTS / "portal-zh.png"), full_page=True)
    page.locator("#portal-days-30").click()
    page.locator("#portal-days-30[aria-pressed=true]").wait_for()


def test_family_member_switches_between_consented_patients(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    page.goto(web_server.base_url + "/")
    page.get_by_label("手机号").fill("13800000002")
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.get_by_label("短信中的链接或验证码").fill(web_server.last_sms_link())
    page.locator("#sms-redeem button[type=submit]").click()
    page.locator("#portal-latest").wait_for()
    options = page.locator("#portal-patient option").all_inner_texts()
    assert sorted(options) == sorted(["王芳", "李强"])
    page.select_option("#portal-patient", "p-li")
    page.locator("#portal-latest", has_text="142/91 mmHg").wait_for()
    assert "血糖" not in page.locator("#portal-latest").inner_text()
