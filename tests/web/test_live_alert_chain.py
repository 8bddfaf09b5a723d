"""The whole chain in a browser: the demo's simulated meter measures 2.8 mmol/L, the real
gateway downloads it, Mosquitto carries it, ingest stores it, the alert worker raises G1 —
and the doctor's open inbox shows it without a reload; she acknowledges it with a note,
and the registry holds the state, the note and the audit row."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest

from tests.harness.services import MosquittoServer
from tests.web.conftest import watched_page

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

START_DEADLINE_SECONDS = 90.0
"""The demo's broker link, registry, API and gateway process on a loaded 2-core machine."""
ALERT_DEADLINE_SECONDS = 150.0
"""The demo meter measures 2.8 mmol/L 40 s after its start; the gateway downloads it at
its next poll, ingest stores it, the alert worker evaluates it, the API's tail reads it."""
WEB_APP = re.compile(r"^web app\s+(http://\S+)/")


@contextlib.contextmanager
def demo(data_dir: Path, mqtt_url: str) -> Iterator[str]:
    """``vitalgate demo`` on a real Mosquitto; yields the web app's URL."""
    process = subprocess.Popen(
        [
            sys.executable, "-m", "vitalgate", "demo", "--data-dir", str(data_dir),
            "--no-live", "--mqtt-url", mqtt_url, "--mqtt-protocol", "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    output: list[str] = []
    started = time.monotonic()
    url = ""
    try:
        while not url:
            remaining = START_DEADLINE_SECONDS - (time.monotonic() - started)
            assert remaining > 0, "the demo did not start:\n" + "".join(output[-40:])
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            line = process.stdout.readline().decode("utf-8", "replace")
            assert line, "the demo exited:\n" + "".join(output[-40:])
            output.append(line)
            if match := WEB_APP.match(line):
                url = match.group(1)
        yield url
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=45)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_low_from_a_simulated_meter_appears_live_in_the_inbox_and_is_acknowledged(
    browser: Any, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    with demo(tmp_path, mosquitto.url) as url:
        logins = json.loads((tmp_path / "demo-logins.json").read_text())
        with watched_page(browser, urlsplit(url).netloc) as watched:
            page = watched.page
            page.goto(url + "/")
            page.get_by_label("用户名").fill("dr.demo")
            page.get_by_label("密码").fill(logins["passwords"]["dr.demo"])
            page.get_by_label("动态验证码（身份验证器 App）").fill(
                pyotp.TOTP(logins["totp"]["dr.demo"]).now()
            )
            page.locator("#staff-login button[type=submit]").click()
            page.locator("#patient-list").wait_for(timeout=30000)
            page.locator("#nav-inbox").click()
            page.locator("#alert-inbox, #inbox-empty").first.wait_for()
            page.locator("#live-state", has_text="实时").wait_for(timeout=30000)
            before = page.locator("#alert-inbox tr[data-alert]").evaluate_all(
                "rows => rows.map(r => r.dataset.alert)"
            )
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads
            low = page.locator("#alert-inbox tr[data-alert]", has_text="G1 v")
            low.first.wait_for(timeout=ALERT_DEADLINE_SECONDS * 1000)
            alert_id = low.first.get_attribute("data-alert")
            assert alert_id not in before, "the low was in the inbox before the page was open"
            assert page.evaluate("window.__sameDocument === true"), "the inbox was reloaded"
            row = page.locator(f"#alert-inbox tr[data-alert='{alert_id}']")
            assert "P1" in row.inner_text()
            row.get_by_label("备注").fill("已电话联系患者，已进食并复测")
            row.get_by_role("button", name="确认").click()
            page.locator(
                f"#alert-inbox tr[data-alert='{alert_id}'] .state", has_text="已确认"
            ).wait_for()
        registry = sqlite3.connect(tmp_path / "registry.db")
        try:
            state, rule = registry.execute(
                "SELECT state, rule_id FROM alerts WHERE id = ?", (int(alert_id or 0),)
            ).fetchone()
            notes = [
                r[0]
                for r in registry.execute(
                    "SELECT reason FROM alert_events WHERE alert_id = ? AND kind = 'acknowledge'",
                    (int(alert_id or 0),),
                )
            ]
            audited = registry.execute(
                "SELECT action, target, outcome FROM audit_log WHERE actor = 'dr.demo' "
                "AND action LIKE '%acknowledge%'"
            ).fetchall()
        finally:
            registry.close()
    assert (state, rule, notes) == ("acknowledged", "G1", ["已电话联系患者，已进食并复测"])
    # The request (who asked, through which route) and the alert's transition, each once.
    assert sorted(audited) == [
        ("POST /api/v1/patients/{patient_id}/alerts/{alert_id}/acknowledge",) * 2 + ("ok",),
        ("alert.acknowledge", f"alert:{alert_id}", "ok"),
    ], audited
