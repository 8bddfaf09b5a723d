"""A patient types in a reading on the portal: units on every field, a refused value named
in words, the saved one on her page marked 手动录入 and in the store with its provenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingest.stores.base import StoredReading
from readings.model import Kind
from tests.web.conftest import SCREENSHOTS, Watched, WebServer, web_store

pytestmark = pytest.mark.browser


def _typed_in(server: WebServer, kind: Kind) -> list[StoredReading]:
    now = datetime.now(UTC)
    readings = web_store(server).readings(
        "p-wang", kind, now - timedelta(days=1), now + timedelta(minutes=5)
    )
    return [r for r in readings if "manual_entry" in r.flags]


def test_a_patient_enters_a_temperature_by_hand(watched: Watched, web_server: WebServer) -> None:
    page = watched.page
    watched.allowed_errors.append("status of 422")  # the refused value, on purpose
    page.set_viewport_size({"width": 412, "height": 915})
    page.goto(web_server.base_url + "/")
    page.get_by_label("手机号").fill("13800000001")
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.goto(web_server.last_sms_link())
    form = page.locator("#manual-form")
    form.wait_for()

    # Every field says its unit; the blood pressure form first.
    text = form.inner_text()
    for label in ("收缩压（mmHg）", "舒张压（mmHg）", "脉搏（次/分）"):
        assert label in text, text
    # An impossible value is refused and the field is named in words; nothing is stored.
    page.fill("#manual-systolic_mmhg", "1200")
    page.fill("#manual-diastolic_mmhg", "80")
    page.locator("#manual-save").click()
    error = page.locator("#manual-systolic_mmhg-error")
    error.wait_for()
    assert "收缩压的数值不像真实测量结果" in error.inner_text()
    assert page.locator("#manual-systolic_mmhg").get_attribute("aria-invalid") == "true"
    assert _typed_in(web_server, Kind.BLOOD_PRESSURE) == []

    # Glucose is asked in her unit, with the meal.
    page.select_option("#manual-kind", "glucose")
    assert "血糖（mmol/L）" in form.inner_text()
    assert page.locator("#manual-meal option").count() == 6

    # A temperature, by keyboard: it appears at once among her latest readings, marked.
    page.select_option("#manual-kind", "body_temperature")
    assert "体温（°C）" in form.inner_text()
    page.fill("#manual-temperature_c", "37.8")
    # Measured five hours ago (older than her newest reading, so the other tests on this
    # server still see her last contact hours ago), typed in the browser's local time.
    local = page.evaluate(
        "() => { const d = new Date(Date.now() - 5 * 3600e3);"
        " d.setMinutes(d.getMinutes() - d.getTimezoneOffset());"
        " return d.toISOString().slice(0, 16); }"
    )
    page.fill("#manual-when", local)
    page.locator("#manual-temperature_c").press("Enter")
    item = page.locator("#portal-latest li[data-kind=body_temperature]")
    item.wait_for()
    assert "体温 37.8 °C，发热" in item.inner_text()
    assert "手动录入" in item.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#manual-entry").screenshot(path=str(SCREENSHOTS / "manual-entry-zh.png"))
    [stored] = _typed_in(web_server, Kind.BODY_TEMPERATURE)
    assert stored.values["temperature"] == 37.8
    assert stored.context["entered_by"] == "wang.fang"
    assert stored.device_id == "VitalGate-ManualEntry-wang.fang"
    hours_ago = (datetime.now(UTC) - stored.measured_at).total_seconds() / 3600
    assert 4.9 < hours_ago < 5.1, hours_ago

    page.select_option("#pref-lang", "en")
    page.locator("#manual-title", has_text="Enter a reading by hand").wait_for()
    assert (
        "manual entry" in page.locator("#portal-latest li[data-kind=body_temperature]").inner_text()
    )
    assert "Systolic (mmHg)" in page.locator("#manual-form").inner_text()
    assert "⟦" not in page.locator("body").inner_text()
    page.select_option("#pref-lang", "zh-CN")
    page.locator("#manual-title", has_text="手动录入读数").wait_for()
