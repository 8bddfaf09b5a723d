"""A real uvicorn server over a seeded SQLite registry and reading store, and Debian's
Chromium driven by Playwright, for the web app's browser tests.

The seed is the API suite's care model (team-a with dr.zhang and p-wang, team-b with
dr.chen and p-li, wang.fang and her daughter with consent); the readings are placed
relative to the real clock, because the browser asks for "the last N days" by its own
clock. wang.daughter is also linked to p-li with consent, so she has two patients to
switch between.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import uvicorn
from sqlalchemy import Engine

from dashboard_api.app import create_app
from dashboard_api.config import ApiSettings
from dashboard_api.live import LiveHub
from dashboard_api.sms import FileSmsSender
from ingest.stores import open_store
from readings.model import (
    BloodPressureValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit
from registry.care import FamilyRepository
from registry.care_models import ConsentScope
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import DeviceRepository
from tests.dashboard_api.conftest import CUFF, GATEWAY, METER, PASSWORD, TOKEN_SECRET, _seed
from tests.fakes import ManualClock

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reading_at(
    values: Any, unit: Unit, at: datetime, device: str, patient: str, seq: int, **kw: Any
) -> Reading:
    """One reading as ingest would have stored it."""
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=at,
        received_at=at + timedelta(seconds=20),
        device_id=device,
        patient_id=patient,
        gateway_id=GATEWAY,
        seq=seq,
        **kw,
    )


def _readings(now: datetime) -> list[Reading]:
    out = []
    # p-wang: glucose every 6 h for 5 days, ending 2 h ago: 5.6 last (in target).
    values = [5.2, 7.8, 11.4, 6.1, 3.4, 8.0, 6.6, 14.6, 5.9, 6.3]
    for index in range(20):
        glucose = values[index % len(values)] if index < 19 else 5.6
        flags: tuple[str, ...] = ("clock_corrected",) if index == 3 else ()
        if index == 7:
            flags = ("result_high",)
        at = now - timedelta(hours=2) - timedelta(hours=6 * (19 - index))
        out.append(
            reading_at(
                GlucoseValues(glucose=glucose),
                Unit.MMOL_PER_L,
                at,
                METER,
                "p-wang",
                index + 1,
                flags=flags,
            )
        )
    # p-wang's cuff: last used 4 days ago (the portal says so).
    for index, (sys_, dia) in enumerate(((138.0, 88.0), (128.0, 80.0), (141.0, 90.0))):
        out.append(
            reading_at(
                BloodPressureValues(systolic=sys_, diastolic=dia, pulse=72.0),
                Unit.MMHG,
                now - timedelta(days=6 - index),
                CUFF,
                "p-wang",
                100 + index,
            )
        )
    for index in range(3):
        out.append(
            reading_at(
                WeightValues(weight=68.0 + index * 0.4),
                Unit.KG,
                now - timedelta(days=3 - index, hours=1),
                "Yuwell-YH_S301-1",
                "p-wang",
                200 + index,
            )
        )
        out.append(
            reading_at(
                Spo2Values(spo2=97.0 - index, pulse=70.0),
                Unit.PERCENT,
                now - timedelta(days=3 - index, hours=2),
                "Yuwell-YX_306-1",
                "p-wang",
                300 + index,
            )
        )
    out.append(
        reading_at(
            BloodPressureValues(systolic=142.0, diastolic=91.0, pulse=70.0),
            Unit.MMHG,
            now - timedelta(hours=3),
            "Omron-HEM_7600T-20250002",
            "p-li",
            1,
        )
    )
    return out


@dataclass
class WebServer:
    """The running server and what the tests reach behind it."""

    base_url: str
    host: str
    hub: LiveHub
    sms_file: Path
    totp: dict[str, str]
    seeded_at: datetime
    """The moment the readings were placed around (p-wang's newest glucose: 2 h before)."""
    registry: Engine
    """The server's registry (tests seed alerts there as the alert worker would)."""

    def code(self, username: str) -> str:
        """The current TOTP code of ``username``."""
        return pyotp.TOTP(self.totp[username]).now()

    def last_sms_link(self) -> str:
        """The link of the newest SMS (the file sender writes one JSON line per message)."""
        line = self.sms_file.read_text(encoding="utf-8").splitlines()[-1]
        text: str = json.loads(line)["text"]
        match = re.search(re.escape(self.base_url) + r"/login/sms#\S+", text)
        assert match, "the SMS carries no login link"
        return match.group(0)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """uvicorn on a free loopback port, serving the API and the web app."""
    root = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{root / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    now = datetime.now(UTC).replace(microsecond=0)
    totp = _seed(engine, ManualClock(now))
    with session_scope(engine) as session:
        DeviceRepository(session, clock=ManualClock(now - timedelta(days=20))).bind(
            CUFF, GATEWAY, "p-wang"
        )
        family = FamilyRepository(session, clock=ManualClock(now - timedelta(days=1)))
        family.link("p-li", "wang.daughter", relationship="niece")
        family.grant("p-li", "wang.daughter", [ConsentScope.VIEW_READINGS], granted_by="admin")
    store = open_store(f"sqlite:///{root / 'readings.db'}")
    store.write(_readings(now))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    sms_file = root / "sms.jsonl"
    hub = LiveHub()
    settings = ApiSettings(
        token_secret=TOKEN_SECRET,
        secure_cookies=False,
        login_attempts_per_minute=1000,
        public_url=base,
    )
    app = create_app(settings, registry=engine, store=store, sms=FileSmsSender(sms_file), live=hub)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    _STORES[base] = store
    try:
        yield WebServer(
            base_url=base,
            host=urlsplit(base).netloc,
            hub=hub,
            sms_file=sms_file,
            totp=totp,
            seeded_at=now,
            registry=engine,
        )
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
        engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page with every guard attached: foreign requests, console errors, CSP reports."""

    page: Any
    foreign: list[str]
    errors: list[str]
    allowed_errors: list[str]

    def csp_violations(self) -> list[str]:
        """The CSP violations the page reported (collected by an init script)."""
        found: list[str] = self.page.evaluate("window.__cspViolations || []")
        return found

    def check(self) -> None:
        """No request left the origin, no console error, no CSP violation."""
        assert not self.foreign, f"requests to other origins: {self.foreign}"
        unexpected = [
            e for e in self.errors if not any(allowed in e for allowed in self.allowed_errors)
        ]
        assert not unexpected, f"console errors: {unexpected}"
        assert not self.csp_violations(), f"CSP violations: {self.csp_violations()}"


CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@contextmanager
def watched_page(browser: Any, host: str) -> Iterator[Watched]:
    """A fresh browser context on ``host`` (no cookies, no storage) with the guards on."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    foreign: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc != host:
            foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.set_default_timeout(10000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    watch = Watched(page=page, foreign=foreign, errors=errors, allowed_errors=[])
    yield watch
    watch.check()
    context.close()


@pytest.fixture
def watched(browser: Any, web_server: WebServer) -> Iterator[Watched]:
    """A fresh browser context on the test server with the guards on."""
    with watched_page(browser, web_server.host) as watch:
        yield watch


__all__ = ["PASSWORD", "SCREENSHOTS", "Watched", "WebServer", "reading_at", "watched_page"]


_STORES: dict[str, Any] = {}


def web_store(server: WebServer) -> Any:
    """The reading store behind ``server`` (tests write readings there as ingest would)."""
    return _STORES[server.base_url]
