"""Every page of the app in zh-CN and in English: Chinese is drawn with a CJK font (asked
of the browser through the DevTools protocol, tests/web/fonts.py), no catalogue key is left
untranslated, and an English page shows Chinese only where it is data.

What "only data" means on an English page: a patient's, team's or organisation's name, a
note someone typed, and the language switcher's "简体中文". The app's own words are never
Chinese there: no run of Chinese that is a phrase of the zh-CN catalogue, and no Chinese
punctuation between English words (a list joined with "、").

One browser context per role (login page, doctor, nurse, admin, IT operator, patient,
family member), the pages visited in zh-CN, then the language switched in the header and
the same pages visited again. The English screenshots of the main pages are kept for the
README (docs/screenshots/*-en.png).

The server is shared by the whole browser session: this test adds a patient of its own
(孙秀英, p-fonts, team-a) with readings, an alert and a scheduled visit, so the inbox, the
visit pages and the visit form have something to show; p-wang and p-li are only looked at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from readings.model import BloodPressureValues, GlucoseValues
from readings.units import Unit
from registry.alerts_repo import AlertRepository
from registry.care import ContractRepository
from registry.db import session_scope
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind
from registry.visits import Reason, VisitRepository
from tests.web.conftest import (
    CHROMIUM,
    SCREENSHOTS,
    Watched,
    WebServer,
    reading_at,
    watched_page,
    web_store,
)
from tests.web.fonts import (
    FontCheckError,
    FontReport,
    check_cjk_fonts,
    chinese_on_english_page,
    untranslated,
)
from tests.web.test_browser import staff_login
from tests.web.test_portal_family import sms_login

pytestmark = pytest.mark.browser

PATIENT: Final = "p-fonts"
PATIENT_NAME: Final = "孙秀英"
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
VISIT_IN_DAYS: Final = 5
"""The test's visit is planned this many days ahead: clear of tomorrow, the day the route
test plans for nurse.liu (whose capacity it limits to two visits)."""
CJK_FONT: Final = "Noto Sans CJK SC"
"""What app.css names first and scripts/test installs (fonts-noto-cjk): Simplified Chinese
glyph forms, whatever the browser's fallback would pick."""


@dataclass(frozen=True)
class Page:
    """A page to look at: its name, its address and what shows once its data is drawn."""

    name: str
    address: str
    ready: str
    screenshot: str | None = None
    """The stem of its English screenshot in docs/screenshots/ (``…-en.png``), if kept."""


@dataclass(frozen=True)
class Seeded:
    """What this test put on the shared server."""

    task_id: int
    visit_day: str


@pytest.fixture(scope="module")
def seeded(web_server: WebServer) -> Seeded:
    """孙秀英 in team-a: readings, a firing glucose alert, a visit scheduled for nurse.liu."""
    now = datetime.now(UTC).replace(microsecond=0)
    visit_at = (now + timedelta(days=VISIT_IN_DAYS)).astimezone(SHANGHAI)
    visit_at = visit_at.replace(hour=10, minute=0, second=0)
    with session_scope(web_server.registry) as s:
        PatientRepository(s).add(PATIENT, display_name=PATIENT_NAME)
        ContractRepository(s).sign(
            PATIENT, "team-a", service_package="diabetes", starts_on=now.date()
        )
        params: dict[str, str | int | float] = {"events_7d": 2, "readings": 1, "severity": "P2"}
        finding = Finding(
            PATIENT, "G2", 1, Metric.GLUCOSE, Severity.P2, FindingStatus.FIRING, now,
            ("r-fonts-1", "r-fonts-2"),
            {"range.at_or_above mmol/L": 3.0, "range.below mmol/L": 3.9},
            Explanation("alert.threshold.firing", params),
        )  # fmt: skip
        alerts = AlertRepository(s)
        alerts.record(decide(PATIENT, [finding], alerts.open_alerts(PATIENT), now=now))
        visits = VisitRepository(s)
        task = visits.open(
            PATIENT,
            Reason.doctor_request(VisitKind.HOME_VISIT, "复查血糖"),
            kind=VisitKind.HOME_VISIT,
            priority=3,
            earliest=now,
            latest=now + timedelta(days=VISIT_IN_DAYS + 7),
            actor="dr.zhang",
        ).task
        visits.schedule(task.id, visit_at, actor="nurse.liu", reason="", assignee="nurse.liu")
    readings = [
        reading_at(
            GlucoseValues(glucose=value),
            Unit.MMOL_PER_L,
            now - timedelta(hours=3 + 8 * index),
            "Fonts-Meter-1",
            PATIENT,
            index + 1,
        )
        for index, value in enumerate((3.6, 6.2, 8.4, 5.1))
    ]
    readings.append(
        reading_at(
            BloodPressureValues(systolic=128.0, diastolic=82.0, pulse=70.0),
            Unit.MMHG,
            now - timedelta(hours=5),
            "Fonts-Cuff-1",
            PATIENT,
            10,
        )
    )
    web_store(web_server).write(readings)
    return Seeded(task_id=task.id, visit_day=visit_at.date().isoformat())


@dataclass
class Findings:
    """What the pages showed that they should not, by page and language; what was drawn."""

    problems: dict[str, list[str]]
    reports: dict[str, FontReport]
    seconds: float = 0.0


@pytest.fixture(scope="module")
def findings() -> Iterator[Findings]:
    """Collected over the module; printed at the end (fonts used, elements checked, time)."""
    collected = Findings(problems={}, reports={})
    yield collected
    families = sorted({f for r in collected.reports.values() for f in r.families})
    checked = sum(len(r.checked) for r in collected.reports.values())
    print(  # the numbers the report quotes (pytest -s)
        f"\nfont check: {len(collected.reports)} page views, {checked} CJK-bearing elements, "
        f"fonts {families}, {collected.seconds:.1f} s in the checks"
    )


def _look(
    watch: Watched, server: WebServer, pages: list[Page], findings: Findings, language: str
) -> None:
    """Open each page in ``language``, wait for its data, run the checks, keep screenshots."""
    page = watch.page
    for target in pages:
        page.goto(server.base_url + "/" + target.address)
        page.locator(f"html[lang='{language}']").wait_for(state="attached")
        page.locator(target.ready).first.wait_for()
        key = f"{target.name} ({language})"
        started = time.monotonic()
        said: list[str] = []
        try:
            report = check_cjk_fonts(page)
        except FontCheckError as error:
            said.append(str(error))
        else:
            findings.reports[key] = report
            if language == "zh-CN" and CJK_FONT not in report.families:
                said.append(f"Chinese drawn without {CJK_FONT}: {sorted(report.families)}")
        said += [f"untranslated: {found}" for found in untranslated(page)]
        if language == "en":
            said += [
                f"Chinese on an English page: {leak}" for leak in chinese_on_english_page(page)
            ]
        findings.seconds += time.monotonic() - started
        if said:
            findings.problems[key] = said
        if language == "en" and target.screenshot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{target.screenshot}-en.png"), full_page=True)


def _both_languages(
    watch: Watched, server: WebServer, pages: list[Page], findings: Findings
) -> dict[str, list[str]]:
    """The pages in zh-CN, then (switched in the header) in English; what was wrong."""
    before = set(findings.problems)
    _look(watch, server, pages, findings, "zh-CN")
    watch.page.select_option("#pref-lang", "en")
    watch.page.locator("html[lang=en]").wait_for(state="attached")
    _look(watch, server, pages, findings, "en")
    return {key: said for key, said in findings.problems.items() if key not in before}


def _said(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n  " + "\n  ".join(said) for page, said in problems.items())


def test_the_login_page(browser: Any, web_server: WebServer, findings: Findings) -> None:
    with watched_page(browser, web_server.host) as watch:
        login = [Page("login", "#/login", "#staff-login", screenshot="login")]
        problems = _both_languages(watch, web_server, login, findings)
        assert not problems, _said(problems)


def test_the_doctors_pages(
    browser: Any, web_server: WebServer, seeded: Seeded, findings: Findings
) -> None:
    pages = [
        Page("patient list", "#/patients", f"#patient-list tr[data-patient={PATIENT}]", "patients"),
        Page("patient page", "#/patient/p-wang", "#chart-glucose svg"),  # test_browser keeps it
        Page("new patient's page", f"#/patient/{PATIENT}", "#chart-glucose svg"),
        Page("inbox", "#/inbox", "#alert-inbox tr[data-alert]", "inbox"),
        Page("triage", "#/triage", "#triage-buckets", "triage"),
        Page("visit queue", "#/visits", f"#visit-queue li[data-task='{seeded.task_id}']"),
        Page("not found", "#/no-such-page", ".notfound"),
    ]
    with watched_page(browser, web_server.host) as watch:
        staff_login(watch, web_server, "dr.zhang")
        watch.page.locator("#patient-list").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


def test_the_nurses_pages(
    browser: Any, web_server: WebServer, seeded: Seeded, findings: Findings
) -> None:
    day, stop = seeded.visit_day, f"#route-stops li[data-task='{seeded.task_id}']"
    pages = [
        Page("visit queue", "#/visits", f"#visit-queue li[data-task='{seeded.task_id}']", "visits"),
        Page("day route", f"#/visits/route?date={day}", stop, "day-route"),
        Page("week", f"#/visits/week?start={day}", "#week-grid li", "week"),
        Page("visit form", f"#/visit/{seeded.task_id}", "#visit-form", "visit-form"),
    ]  # fmt: skip
    with watched_page(browser, web_server.host) as watch:
        staff_login(watch, web_server, "nurse.liu")
        watch.page.locator("#patient-list").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


def test_the_admin_pages(browser: Any, web_server: WebServer, findings: Findings) -> None:
    pages = [
        Page("accounts", "#/admin/accounts", "#accounts-table tr[data-user]", "admin-accounts"),
        Page("teams", "#/admin/teams", "section[data-team=team-a]"),
        Page("contracts", "#/admin/contracts", "#contracts-table tr[data-contract]"),
        Page("audit", "#/audit", "#audit-table tbody tr[data-seq]", "audit"),
    ]
    with watched_page(browser, web_server.host) as watch:
        staff_login(watch, web_server, "admin")
        watch.page.locator("#accounts-table").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


def test_the_it_pages(browser: Any, web_server: WebServer, findings: Findings) -> None:
    pages = [
        Page("fleet", "#/it/fleet", "#fleet-table tbody tr[data-gateway]", "it-fleet"),
        Page("quarantine", "#/it/quarantine", "#quarantine-table", "quarantine"),
    ]
    with watched_page(browser, web_server.host) as watch:
        staff_login(watch, web_server, "it.ops")
        watch.page.locator("#fleet-table").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


def test_the_patients_portal(browser: Any, web_server: WebServer, findings: Findings) -> None:
    pages = [
        Page("portal", "#/portal/p-wang", "#portal-latest li", "portal"),
        Page("portal settings", "#/portal/p-wang/settings", "#settings-form", "portal-settings"),
        Page("portal family", "#/portal/p-wang/family", "#consents", "portal-family"),
        Page("pairing wizard", "#/portal/p-wang/pair", "#pair-wizard"),  # its own test keeps it
    ]
    with watched_page(browser, web_server.host) as watch:
        sms_login(watch, web_server, "13800000001")
        watch.page.locator("#portal-latest").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


def test_the_family_view(browser: Any, web_server: WebServer, findings: Findings) -> None:
    pages = [Page("family view", "#/portal", "#portal-patient", "family-view")]
    with watched_page(browser, web_server.host) as watch:
        sms_login(watch, web_server, "13800000002")
        watch.page.locator("#portal-latest").wait_for()
        problems = _both_languages(watch, web_server, pages, findings)
        assert not problems, _said(problems)


# The check itself goes red: on boxes, on a Latin-only font, on untranslated keys, and on
# the app's Chinese on an English page — each on a page of its own, not the app's.

DEJAVU: Final = Path("/usr/share/fonts/truetype/dejavu")
NO_CJK_FONTCONFIG: Final = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>{fonts}</dir><cachedir>{cache}</cachedir></fontconfig>
"""
"""A fontconfig that knows DejaVu only: a machine without fonts-noto-cjk."""


def test_the_check_names_the_boxes_a_browser_without_cjk_fonts_draws(
    browser: Any, tmp_path: Path
) -> None:
    if not DEJAVU.is_dir():
        pytest.skip(f"{DEJAVU} is missing (fonts-dejavu-core)")
    config = tmp_path / "fonts.conf"
    config.write_text(NO_CJK_FONTCONFIG.format(fonts=DEJAVU, cache=tmp_path / "cache"))
    without_cjk = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=["--no-sandbox"],
        env={**os.environ, "FONTCONFIG_FILE": str(config)},
    )
    try:
        page = without_cjk.new_page()
        page.set_content(f"<html lang=zh-CN><body><h1>{PATIENT_NAME}</h1></body></html>")
        with pytest.raises(FontCheckError, match=f"'{PATIENT_NAME}': drawn with .*DejaVu"):
            check_cjk_fonts(page)
    finally:
        without_cjk.close()


def test_the_check_names_an_element_set_in_a_latin_only_font(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content(
            "<html lang=zh-CN><body style=\"font-family: 'Noto Sans CJK SC', sans-serif\">"
            "<p id=symbol>✕ 已停用</p>"
            "<p style=\"font-family: 'DejaVu Sans'\">血糖 5.6 mmol/L</p></body></html>"
        )
        with pytest.raises(FontCheckError) as raised:
            check_cjk_fonts(page)
        assert "'血糖 5.6 mmol/L': drawn with" in str(raised.value)
        assert "已停用" not in str(raised.value)  # ✕ is in no CJK font: DejaVu may draw it
        page.locator("p[style]").evaluate("p => p.remove()")
        report = check_cjk_fonts(page)
        assert [d.text for d in report.checked] == ["✕ 已停用"]
        assert set(report.checked[0].fonts) == {CJK_FONT, "DejaVu Sans"}
    finally:
        page.close()


def test_the_check_names_untranslated_keys_and_chinese_words_on_an_english_page(
    browser: Any,
) -> None:
    page = browser.new_page()
    try:
        page.set_content(
            "<html lang=en><body><p>⟦nav.triage⟧</p><p>triage.bucket.x</p><p>{name} left</p>"
            "<p>dr.zhang · POST /api/v1/admin/teams/{team_code}/members · 0.9.1</p>"
            "<p>Type 2 diabetes、Hypertension</p><p>我的签约患者</p><p>孙秀英 (note: 复查血糖)</p>"
            "</body></html>"
        )
        assert untranslated(page) == ["⟦nav.triage⟧", "{name}", "triage.bucket.x"]
        leaked = chinese_on_english_page(page)
        assert len(leaked) == 2, leaked
        assert leaked[0].startswith("'、'")
        assert leaked[1].startswith("'我的签约患者'")  # list.title in the zh-CN catalogue
    finally:
        page.close()
