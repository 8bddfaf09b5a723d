"""A patient pairs a new Bluetooth glucose meter through the portal's wizard, on the real
stack, and its first reading appears on her page; then she unpairs it.

The stack is built here because the demo's gateway pairs every simulated device itself at
start (``vitalgate/demo.py``): it has no device left in pairing mode for a wizard to find.
Everything between the browser and the meter is real and runs as in production:

* Mosquitto;
* the gateway process (``tests/web/pairing_gateway.py``: the real ``GatewayRuntime`` with a
  simulated, unpaired meter advertising on a bumble virtual radio in its process);
* the ingest worker (plausibility, ownership, store, ``accepted/``);
* the API wired as ``vitalgate serve --mqtt-url`` wires it: the live feed from
  ``accepted/``, the fleet listener (gateway status and events, which binds a paired device
  to the patient whose window is open) and the MQTT command publisher (``cmd/pair``).

No part is patched: the wizard's "pair" call publishes ``cmd/pair``, the gateway scans,
identifies the meter over GATT and reports ``paired``, the fleet listener binds it, the
gateway downloads the meter, ingest stores what was measured after the binding, and the
live stream brings it to the open page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import Engine, select

from dashboard_api.app import create_app
from dashboard_api.commands import MqttCommandPublisher
from dashboard_api.config import ApiSettings
from dashboard_api.live import AcceptedListener, LiveHub
from dashboard_api.sms import FileSmsSender
from infra.mqtt import ClientSettings, MqttProtocol, parse_mqtt_url
from ingest.config import load_settings
from ingest.fleet_listener import FleetListener, fleet_client_settings
from ingest.stores import open_store
from ingest.worker import open_worker
from readings.codec import GatewayState
from registry.care import AccountRepository
from registry.care_models import AccountKind
from registry.db import create_engine_for, session_scope, upgrade
from registry.fleet import FleetRepository
from registry.models import AuditRecord
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.harness.services import MosquittoServer
from tests.web.conftest import SCREENSHOTS, Watched, WebServer, _free_port, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
PATIENT: Final = "p-zhao"
PHONE: Final = "13900000001"
GATEWAY: Final = "gw-zhao"
CUFF: Final = "Omron-HEM_7600T-30000001"
"""The patient's cuff, already paired on her gateway: what makes it "her" gateway."""
METER: Final = "Roche-Accu_Chek_Guide-92310000123"
"""The simulated meter's identity (``firmware_configs/roche_accu_chek_guide.toml``)."""
ZONE: Final = "Asia/Shanghai"
START_SECONDS: Final = 90.0
"""Imports, the virtual radio and the first broker connection, on a loaded 2-core machine."""
PAIRED_SECONDS: Final = 90.0
"""The gateway scans in 3 s rounds, then identifies and bonds the meter over GATT."""
FIRST_READING_SECONDS: Final = 120.0
"""The meter measures every 15 s; the gateway polls its held link every 2 s; ingest's
ownership cache (5 s) must have seen the new binding."""


@dataclass
class PairingStack:
    """The running stack and what the test looks at behind it."""

    base_url: str
    registry: Engine
    sms_file: Path
    gateway: subprocess.Popen[bytes]
    gateway_log: Path

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def last_sms_link(self) -> str:
        text: str = json.loads(self.sms_file.read_text(encoding="utf-8").splitlines()[-1])["text"]
        match = re.search(re.escape(self.base_url) + r"/login/sms#\S+", text)
        assert match, "the SMS carries no login link"
        return match.group(0)

    def log_tail(self) -> str:
        return "\n".join(self.gateway_log.read_text(errors="replace").splitlines()[-40:])

    def wait(self, what: str, predicate: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            assert self.gateway.poll() is None, f"the gateway exited:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"{what} did not happen:\n{self.log_tail()}"
            time.sleep(0.25)

    def gateway_state(self) -> GatewayState | None:
        with session_scope(self.registry, write=False) as session:
            status = FleetRepository(session).gateway_status(GATEWAY)
        return None if status is None else status.state


def _seed(engine: Engine, now: datetime) -> None:
    with session_scope(engine) as session:
        PatientRepository(session).add(PATIENT, display_name="赵秀兰", time_zone=ZONE)
        AccountRepository(session).add(
            "zhao.xiulan",
            display_name="赵秀兰",
            kind=AccountKind.PATIENT,
            patient_id=PATIENT,
            phone=PHONE,
        )
        GatewayRepository(session).add(GATEWAY, label="赵家网关")
        DeviceRepository(session).bind(CUFF, GATEWAY, PATIENT, at=now - timedelta(days=30))


def _gateway_config(root: Path, mqtt_url: str) -> Path:
    config = root / "gateway.toml"
    config.write_text(
        "\n".join(
            [
                f'gateway_id = "{GATEWAY}"',
                f'data_dir = "{root / "gateway"}"',
                "demo = true",
                'log_level = "INFO"',
                "[mqtt]",
                f'url = "{mqtt_url}"',
                "status_interval_seconds = 2",
                "[clock]",
                f'time_zone = "{ZONE}"',
                "[devices]",
                "ble_retry_seconds = 2",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return config


@contextlib.contextmanager
def pairing_stack(mosquitto: MosquittoServer, root: Path) -> Iterator[PairingStack]:
    """Registry, store, ingest, the API as ``vitalgate serve --mqtt-url``, the gateway."""
    registry_url = f"sqlite:///{root / 'registry.db'}"
    store_url = f"sqlite:///{root / 'readings.db'}"
    upgrade(registry_url)
    engine = create_engine_for(registry_url)
    _seed(engine, datetime.now(UTC))
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        worker = open_worker(
            load_settings(
                mqtt_url=mosquitto.url,
                mqtt_protocol="5",
                store_url=store_url,
                registry_url=registry_url,
                client_id="pairing-test-ingest",
                metrics_port=None,
                demo=True,
            )
        )
        stack.callback(worker.close)
        worker.start()
        # The API's MQTT parts exactly as vitalgate/commands/serve.py builds them.
        base = ClientSettings(
            endpoint=parse_mqtt_url(mosquitto.url),
            client_id="vitalgate-api-test",
            protocol=MqttProtocol("5"),
        )
        hub = LiveHub()
        listener = AcceptedListener(base, hub)
        listener.start()
        stack.callback(listener.stop)
        fleet = FleetListener(fleet_client_settings(base, client_id="vitalgate-fleet"), engine)
        fleet.start()
        stack.callback(fleet.stop)
        commands = MqttCommandPublisher(replace(base, client_id="vitalgate-api-cmd-test"))
        commands.start()
        stack.callback(commands.stop)
        store = open_store(store_url)
        stack.callback(store.close)
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        sms_file = root / "sms.jsonl"
        app = create_app(
            ApiSettings(
                token_secret=SecretStr("p" * 48),
                secure_cookies=False,
                login_attempts_per_minute=1000,
                public_url=base_url,
            ),
            registry=engine,
            store=store,
            sms=FileSmsSender(sms_file),
            live=hub,
            commands=commands,
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop_server() -> None:
            server.should_exit = True
            thread.join(10)

        stack.callback(stop_server)
        log = root / "gateway.log"
        with log.open("ab") as out:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "tests.web.pairing_gateway", "--config",
                 str(_gateway_config(root, mosquitto.url))],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                start_new_session=True,
            )  # fmt: skip

        def stop_gateway() -> None:
            if gateway.poll() is None:
                gateway.terminate()
                try:
                    gateway.wait(30)
                except subprocess.TimeoutExpired:
                    gateway.kill()
                    gateway.wait()

        stack.callback(stop_gateway)
        running = PairingStack(base_url, engine, sms_file, gateway, log)
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        # Online as the fleet listener recorded it from the gateway's status message.
        running.wait(
            "the gateway coming online",
            lambda: running.gateway_state() is GatewayState.ONLINE,
            START_SECONDS,
        )
        yield running


def _current(engine: Engine, device_id: str) -> Any:
    with session_scope(engine, write=False) as session:
        return DeviceRepository(session).current_pairing(device_id)


def test_a_patient_pairs_a_meter_in_the_wizard_and_sees_its_first_reading(
    browser: Any, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    with pairing_stack(mosquitto, tmp_path) as stack, watched_page(browser, stack.host) as watched:
        page = watched.page
        page.set_viewport_size({"width": 412, "height": 915})  # a phone
        page.goto(stack.base_url + "/")
        page.get_by_label("手机号").fill(PHONE)
        page.locator("#sms-request button[type=submit]").click()
        page.get_by_text("短信已发出").wait_for()
        page.goto(stack.last_sms_link())
        page.locator("#portal").wait_for()
        assert "还没有测量数据" in page.locator("#portal").inner_text()
        page.locator("#live-state", has_text="● 实时更新").wait_for(timeout=30000)

        # Step 1: her gateway, online.
        page.locator("#pair-start").click()
        page.locator("#pair-step", has_text="第 1 步").wait_for()
        choice = page.get_by_role("radio", name=re.compile("赵家网关"))
        assert choice.is_checked()
        assert "在线" in page.locator("#pair-gateway-form").inner_text()
        page.locator("#pair-next").click()
        # Step 2: plain words and one big button, by keyboard.
        page.locator("#pair-step", has_text="第 2 步").wait_for()
        assert "蓝牙键" in page.locator("#pair-body").inner_text()
        page.locator("#pair-search").focus()
        page.keyboard.press("Enter")
        # Step 3: the gateway looks, with a countdown.
        page.locator("#pair-countdown", has_text="还剩").wait_for()
        assert page.locator("#pair-progress").is_visible()
        # Step 4: the meter, by the identity the gateway read from it.
        identity = page.locator("#pair-identity")
        identity.wait_for(timeout=PAIRED_SECONDS * 1000)
        assert identity.locator("[data-field=manufacturer]").inner_text() == "Roche"
        assert identity.locator("[data-field=serial]").inner_text() == "92310000123"
        assert "Accu" in identity.locator("[data-field=model]").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "pairing-wizard-zh.png"), full_page=True)
        bound = _current(stack.registry, METER)
        assert (bound.patient_id, bound.gateway_id) == (PATIENT, GATEWAY)
        page.locator("#pair-confirm").click()
        # Step 5: its first reading, in words with its unit, without a reload.
        page.evaluate("window.__sameDocument = true")
        first = page.locator("#pair-first-reading")
        first.wait_for(timeout=FIRST_READING_SECONDS * 1000)
        assert first.inner_text() == "血糖 5.6 mmol/L，在目标范围内"
        assert page.evaluate("window.__sameDocument === true")
        shot = SCREENSHOTS / "pairing-wizard-first-reading-zh.png"
        page.screenshot(path=str(shot), full_page=True)

        # Her page shows it, and the meter among her devices.
        page.locator("#pair-done").click()
        glucose = page.locator("#portal-latest li[data-kind=glucose]")
        glucose.wait_for()
        assert "血糖 5.6 mmol/L，在目标范围内" in glucose.inner_text()
        meter_row = page.locator(f"#devices tr[data-device='{METER}']")
        assert "使用中" in meter_row.inner_text()

        # Unpair, after a confirmation: the registry binding ends, the gateway forgets it.
        meter_row.get_by_role("button", name="解绑").click()
        assert "确定要解绑" in meter_row.inner_text()
        meter_row.get_by_role("button", name="确定解绑").click()
        page.locator(f"#devices tr[data-device='{METER}']", has_text="已解绑").wait_for()
        assert _current(stack.registry, METER) is None
        assert _current(stack.registry, CUFF) is not None

        def gateway_forgot() -> bool:
            with session_scope(stack.registry, write=False) as session:
                events = FleetRepository(session).events(GATEWAY)
            return any(e.event == "unpaired" and e.device_id == METER for e in events)

        stack.wait("the gateway's unpaired event", gateway_forgot, 30)

        # A gateway gone offline is said in words, before any window is opened.
        stack.gateway.terminate()
        stack.gateway.wait(30)
        deadline = time.monotonic() + 30
        while stack.gateway_state() is not GatewayState.OFFLINE:
            assert time.monotonic() < deadline, "the gateway's offline status never came"
            time.sleep(0.25)
        page.goto(f"{stack.base_url}/#/portal/{PATIENT}/pair")
        page.locator("#pair-gateway-form", has_text="离线").wait_for()
        page.locator("#pair-next").click()
        assert "网关现在离线" in page.locator("#pair-body").inner_text()
        assert "⟦" not in page.locator("body").inner_text()
        page.select_option("#pref-lang", "en")
        page.locator("#pair-step", has_text="Step 1 of 5: Choose the home gateway").wait_for()
        assert "offline" in page.locator("#pair-gateway-form").inner_text()
        assert "⟦" not in page.locator("body").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "pairing-wizard-en.png"), full_page=True)
        page.select_option("#pref-lang", "zh-CN")
        page.locator("#pair-step", has_text="第 1 步").wait_for()

    with session_scope(stack.registry, write=False) as session:
        requests = FleetRepository(session).pairing_requests(PATIENT)
        audited = session.scalars(
            select(AuditRecord.action).where(AuditRecord.actor == "zhao.xiulan")
        ).all()
    assert [(r.state.value, r.device_id) for r in requests] == [("paired", METER)]
    assert "device.pair_requested" in audited
    assert "device.unpaired" in audited


def test_without_a_broker_the_wizard_says_the_gateway_cannot_be_reached(
    watched: Watched, web_server: WebServer
) -> None:
    """The shared web server runs without a broker: the pairing call answers 503."""
    page = watched.page
    watched.allowed_errors.append("status of 503")  # the refused pairing call, on purpose
    page.goto(web_server.base_url + "/")
    page.get_by_label("手机号").fill("13800000001")
    page.locator("#sms-request button[type=submit]").click()
    page.get_by_text("短信已发出").wait_for()
    page.goto(web_server.last_sms_link())
    page.locator("#pair-start").click()
    # Her gateway has never reported: its state is unknown, which does not stop pairing.
    page.locator("#pair-gateway-form", has_text="状态未知").wait_for()
    page.locator("#pair-next").click()
    page.locator("#pair-search").click()
    error = page.locator("#pair-error")
    error.wait_for()
    assert "现在联系不上网关" in error.inner_text()
    page.locator("#pair-retry").wait_for()
    # Nothing was left pending: without a broker no window was recorded at all.
    with session_scope(web_server.registry, write=False) as session:
        assert FleetRepository(session).pairing_requests("p-wang") == []
