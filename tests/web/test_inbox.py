"""The doctor's alert inbox in a real browser: a seeded alert in words, acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from alerts.lifecycle import decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from registry.alert_models import AlertEvent, AlertRow
from registry.alerts_repo import AlertRepository
from registry.db import session_scope
from tests.web.conftest import SCREENSHOTS, Watched, WebServer
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser


def _seed_low(server: WebServer) -> int:
    now = datetime.now(UTC)
    finding = Finding(
        "p-wang", "G2", 1, Metric.GLUCOSE, Severity.P2, FindingStatus.FIRING, now,
        ("r-inbox-1", "r-inbox-2", "r-inbox-3"),
        {"range.at_or_above mmol/L": 3.0, "range.below mmol/L": 3.9},
        Explanation("alert.threshold.firing", {"events_7d": 3, "readings": 1, "severity": "P2"}),
    )  # fmt: skip
    with session_scope(server.registry) as s:
        repo = AlertRepository(s)
        [alert_id] = repo.record(decide("p-wang", [finding], repo.open_alerts("p-wang"), now=now))
    return alert_id


def test_inbox_shows_the_seeded_alert_in_words_and_acknowledges_it(
    watched: Watched, web_server: WebServer
) -> None:
    alert_id = _seed_low(web_server)
    page = watched.page
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list").wait_for()
    page.locator("#nav-inbox").click()
    row = page.locator(f"#alert-inbox tr[data-alert='{alert_id}']")
    row.wait_for()
    text = row.inner_text()
    assert "7 天内 3 次血糖 < 3.9, ≥ 3.0 mmol/L" in text, text
    for word in ("王芳", "告警中", "未读", "G2 v1"):
        assert word in text, (word, text)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "alert-inbox-zh.png"), full_page=True)
    row.get_by_role("button", name="确认").click()
    page.locator("#inbox-message", has_text="请先填写备注").wait_for()  # a note is required
    row.get_by_label("备注").fill("已电话联系，已进食")
    row.get_by_role("button", name="确认").click()
    page.locator(f"#alert-inbox tr[data-alert='{alert_id}'] .state", has_text="已确认").wait_for()
    with session_scope(web_server.registry, write=False) as s:
        state = s.scalar(select(AlertRow.state).where(AlertRow.id == alert_id))
        reasons = s.scalars(
            select(AlertEvent.reason).where(
                AlertEvent.alert_id == alert_id, AlertEvent.kind == "acknowledge"
            )
        ).all()
    assert (state, reasons) == ("acknowledged", ["已电话联系，已进食"])
    page.locator("#inbox-filter").click()
    page.locator("#inbox-filter", has_text="显示全部").wait_for()


def test_a_new_alert_appears_in_the_open_inbox_without_a_reload(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list").wait_for()
    page.locator("#nav-inbox").click()
    page.locator("#alert-inbox, #inbox-empty").first.wait_for()
    page.locator("#live-state", has_text="实时").wait_for()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    now = datetime.now(UTC)
    finding = Finding(
        "p-wang", "G1", 1, Metric.GLUCOSE, Severity.P1, FindingStatus.FIRING, now,
        ("r-inbox-live",), {"range.below mmol/L": 3.0},
        Explanation("alert.threshold.firing", {"events_7d": 1, "readings": 1, "severity": "P1"}),
    )  # fmt: skip
    with session_scope(web_server.registry) as s:
        repo = AlertRepository(s)
        [alert_id] = repo.record(decide("p-wang", [finding], repo.open_alerts("p-wang"), now=now))
    # Well inside the fallback poll (60 s): only the live stream can bring it this soon.
    row = page.locator(f"#alert-inbox tr[data-alert='{alert_id}']")
    row.wait_for(timeout=8000)
    assert "P1" in row.inner_text()
    assert page.evaluate("window.__sameDocument === true"), "the inbox was reloaded"
