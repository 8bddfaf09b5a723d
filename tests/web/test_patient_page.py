"""The doctor's patient page in a real browser, for a patient of its own (孙丽, p-sun, with
CGM, a cuff and a scale): the CGM percentile chart with its table alternative, the 7-day home
BP mean on the BP chart, the weight change against the weight 3 days earlier, the alert
history; in zh-CN and en, with no serious accessibility violation.

The shared web server's p-wang is left alone (other browser tests assert her data).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from readings.model import BloodPressureValues, CgmGlucoseValues, Reading, WeightValues
from readings.units import Unit
from registry.alerts_repo import AlertRepository
from registry.care import ContractRepository, PatientCareRepository
from registry.care_models import Condition
from registry.db import session_scope
from registry.repositories import PatientRepository
from tests.web.accessibility import serious_violations, watch_accessibility
from tests.web.conftest import SCREENSHOTS, Watched, WebServer, reading_at, web_store
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser

PATIENT = "p-sun"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CGM = "Dexcom-G7-7770001"
CUFF = "Omron-HEM_7600T-7770002"
SCALE = "AND-UC_352BLE-7770003"


def _readings(now: datetime) -> list[Reading]:
    out: list[Reading] = []
    # 15 days of CGM every 15 min around a daily profile: 3.5 mmol/L at 05:00–06:59 local
    # (an early-morning dip the percentile chart must show), after-meal peaks, 7.0 otherwise;
    # the spread (−0.8 … +0.8 in five equal steps) leaves each hour's median on its profile.
    profile = {5: 3.5, 6: 3.5, 8: 9.5, 9: 9.0, 13: 9.0, 19: 10.5, 20: 9.5}
    start = now - timedelta(days=15)
    for index in range(15 * 96):
        at = start + timedelta(minutes=15 * index)
        spread = ((index * 7) % 5 - 2) * 0.4
        glucose = round(profile.get(at.astimezone(SHANGHAI).hour, 7.0) + spread, 1)
        out.append(
            reading_at(
                CgmGlucoseValues(glucose=glucose), Unit.MMOL_PER_L, at, CGM, PATIENT, index + 1
            )
        )
    # The cuff three times a day on the 8 local days before today: the home mean takes the
    # last 7 local days (today among them, no reading yet) and drops their first one —
    # 150/95 lies outside them, 160/100 is their first day, 140/88 the 15 readings kept.
    today = now.astimezone(SHANGHAI).date()
    for back in range(8, 0, -1):
        day = today - timedelta(days=back)
        sys_, dia = {8: (150.0, 95.0), 7: (150.0, 95.0), 6: (160.0, 100.0)}.get(back, (140.0, 88.0))
        for hour in (7, 12, 19):
            at = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)
            values = BloodPressureValues(systolic=sys_, diastolic=dia, pulse=72.0)
            out.append(reading_at(values, Unit.MMHG, at, CUFF, PATIENT, 5000 + 24 * back + hour))
    # The scale at 07:00 on the same days: 60.0 kg, then up 0.9 kg a day over the last three.
    for back in range(8, 0, -1):
        day = today - timedelta(days=back)
        kg = 60.0 + 0.9 * max(0, 4 - back)
        at = datetime(day.year, day.month, day.day, 7, 5, tzinfo=SHANGHAI)
        out.append(reading_at(WeightValues(weight=kg), Unit.KG, at, SCALE, PATIENT, 6000 + back))
    return out


def _seed(server: WebServer) -> list[Reading]:
    now = datetime.now(UTC)
    with session_scope(server.registry) as session:
        PatientRepository(session).add(PATIENT, display_name="孙丽")
        ContractRepository(session).sign(
            PATIENT,
            "team-a",
            service_package="diabetes",
            starts_on=(now - timedelta(days=30)).date(),
        )
        PatientCareRepository(session).set_conditions(
            PATIENT, [Condition.DIABETES_TYPE1, Condition.HEART_FAILURE]
        )
        repo = AlertRepository(session)
        finding = Finding(
            PATIENT, "H1", 1, Metric.WEIGHT, Severity.P2, FindingStatus.FIRING,
            now - timedelta(hours=3), ("r-sun-1",), {"change kg": 2.0},
            Explanation("alert.weight_change", {"change": "3d", "gain_kg": 2.7}),
        )  # fmt: skip
        [alert_id] = repo.record(decide(PATIENT, [finding], repo.open_alerts(PATIENT), now=now))
        # Acknowledged and resolved, so that it is history and not one more open alert in
        # the shared inbox.
        repo.acknowledge(alert_id, actor="dr.zhang", note="已电话联系", now=now)
        repo.resolve(alert_id, actor="dr.zhang", note="电话随访，已调整利尿剂", now=now)
    readings = _readings(now)
    web_store(server).write(readings)
    return readings


def _screenshot(page: Any, name: str) -> None:
    """The page down to the readings table (its 200 rows would dwarf the figures)."""
    top = page.locator("#readings-table").bounding_box()["y"] + page.evaluate("window.scrollY")
    page.screenshot(
        path=str(SCREENSHOTS / name),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1200, "height": top},
    )


def test_patient_page_shows_percentiles_home_bp_mean_weight_change_and_alert_history(
    watched: Watched, web_server: WebServer
) -> None:
    readings = _seed(web_server)
    page = watched.page
    watch_accessibility(page)
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list tr[data-patient=p-sun]").get_by_role("link", name="孙丽").click()
    page.locator("#chart-glucose svg").wait_for()

    # TIR of a CGM user: the server's figures over every CGM reading of the 14 local days,
    # not the shares of the chart's 500 window means (which would hide the early-morning lows).
    first = datetime.combine(
        datetime.now(SHANGHAI).date() - timedelta(days=13), datetime.min.time(), SHANGHAI
    )
    cgm = [r.values.glucose for r in readings if r.kind == "cgm_glucose" and r.measured_at >= first]  # type: ignore[union-attr]
    very_low = 100 * sum(g < 3.0 for g in cgm) / len(cgm)
    low = 100 * sum(3.0 <= g < 3.9 for g in cgm) / len(cgm)
    assert page.locator("#tir-cgm").is_visible()
    tir = page.locator("#tir").inner_text()
    assert f"按 {len(cgm)} 次读数计算" in tir, tir
    assert f"低 (3.0–3.9 mmol/L): {low:.0f}%" in tir, tir
    assert f"非常低 (< 3.0 mmol/L): {very_low:.0f}%" in tir, tir

    # CGM percentiles: 24 hourly bins; the 05:00 and 06:00 bins' median is the dip.
    page.locator("#cgm-summary svg.percentiles").wait_for()
    assert page.locator("#cgm-summary .median").count() == 1
    assert page.locator("#cgm-summary .p25-75").count() == 1
    page.locator("#bands-table-block summary").click()  # the table alternative, opened
    rows = page.locator("#bands-table tbody tr")
    assert rows.count() == 24

    def median(hour: str) -> str:
        row = page.locator("#bands-table tbody tr", has_text=hour)
        return str(row.locator("td").nth(2).inner_text())  # 5 %, 25 %, median, …

    assert (median("05:00"), median("12:00"), median("19:00")) == ("3.5", "7.0", "10.5")
    low = page.locator("#bands-table tbody tr", has_text="05:00").locator("td")
    assert float(low.nth(0).inner_text()) < 3.5 < float(low.nth(4).inner_text())  # 5 % < 95 %
    assert "AGP" not in page.locator("#cgm-summary").inner_text()

    # Home BP: the mean of the last 7 days without their first day: 140/88 from 15 readings.
    bp = page.locator("#bp-mean").inner_text()
    assert "140/88 mmHg" in bp, bp
    assert "15 次读数" in bp, bp
    assert "达到或高于家庭血压标准" in bp
    assert page.locator("#chart-blood_pressure svg .mean").count() == 2

    # Weight: 62.7 kg now, 60.0 kg three days before: +2.7 kg, a gain worth acting on in HF.
    weight = page.locator("#weight-change").inner_text()
    assert "最新体重 62.7 kg" in weight, weight
    assert "3 天变化 +2.7 kg（3 天前 60.0 kg）" in weight, weight
    assert "液体潴留" in weight
    assert page.locator("#chart-weight svg .mean").count() == 1

    history = page.locator("#alert-history").inner_text()
    assert "H1 · 体重较前增加 2.7 kg" in history, history
    assert "已解决" in history, history
    assert "dr.zhang" in history, history

    violations = serious_violations(page)
    assert not violations, violations
    _screenshot(page, "patient-page-cgm-zh.png")

    page.select_option("#pref-lang", "en")
    page.locator("h2", has_text="Daily glucose percentiles (CGM)").wait_for()
    assert "140/88 mmHg (15 readings, first day left out)" in page.locator("#bp-mean").inner_text()
    assert (
        "3-day change +2.7 kg (3 days earlier 60.0 kg)"
        in page.locator("#weight-change").inner_text()
    )
    assert "\tresolved\t" in page.locator("#alert-history").inner_text()
    assert "⟦" not in page.locator("body").inner_text()  # no untranslated key
    _screenshot(page, "patient-page-cgm-en.png")

    page.select_option("#pref-unit", "mg/dL")
    page.locator("h2", has_text="Glucose (mg/dL)").wait_for()
    assert median("05:00") == "63"  # 3.5 mmol/L
    page.select_option("#pref-unit", "mmol/L")
    page.select_option("#pref-lang", "zh-CN")

    # 90 days: the charts and the figures follow the period. The CGM covers 15 of them, too
    # little wear for percentiles that stand for the period: the page says so, no chart.
    page.select_option("#period", "90")
    first_day = (datetime.now(SHANGHAI).date() - timedelta(days=89)).isoformat()
    page.locator("#cgm-summary", has_text=first_day).wait_for()
    assert page.locator("#chart-glucose svg circle").count() > 0
    assert page.locator("#bands-insufficient").is_visible()
    assert page.locator("#cgm-summary svg.percentiles").count() == 0
    assert "140/88 mmHg" in page.locator("#bp-mean").inner_text()
