"""Every page passes axe-core's WCAG 2.1 AA rules with no serious or critical violation,
in zh-CN and in English (contrast, names, labels, landmarks, focusable controls)."""

from __future__ import annotations

import pytest

from tests.web.accessibility import serious_violations, watch_accessibility
from tests.web.conftest import Watched, WebServer
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser


def _switch_to_english(watched: Watched) -> None:
    watched.page.select_option("#pref-lang", "en")
    watched.page.locator("html[lang=en]").wait_for(state="attached")


def test_staff_pages_have_no_serious_accessibility_violation(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    watch_accessibility(page)
    page.goto(web_server.base_url + "/")
    page.locator("#staff-login").wait_for()
    found = {"login": serious_violations(page)}
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list tr[data-patient=p-wang]").wait_for()
    found["patient list"] = serious_violations(page)
    page.goto(web_server.base_url + "/#/patient/p-wang")
    page.locator("#chart-glucose svg").wait_for()
    found["patient page"] = serious_violations(page)
    page.locator("#nav-inbox").click()
    page.locator("#alert-inbox, #inbox-empty").first.wait_for()
    found["inbox"] = serious_violations(page)
    page.locator("#nav-triage").click()
    page.locator("#triage-filters").wait_for()
    found["triage"] = serious_violations(page)
    page.locator("#nav-visits").click()
    page.locator("#visit-queue-page").wait_for()
    found["visit queue"] = serious_violations(page)
    _switch_to_english(watched)
    page.goto(web_server.base_url + "/#/patients")
    page.locator("#patient-list tr[data-patient=p-wang]").wait_for()
    found["patient list (en)"] = serious_violations(page)
    assert not {name: v for name, v in found.items() if v}


def test_the_portal_has_no_serious_accessibility_violation(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    watch_accessibility(page)
    page.goto(web_server.base_url + "/")
    page.get_by_label("手机号").fill("13800000001")
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.goto(web_server.last_sms_link())
    page.locator("#portal-latest").wait_for()
    found = {"portal": serious_violations(page)}
    page.check("#pref-large")
    page.check("#pref-contrast")
    found["portal, large type, high contrast"] = serious_violations(page)
    assert not {name: v for name, v in found.items() if v}
