"""The admin, IT and audit pages in a real browser, in zh-CN: the admin creates a staff
account (its one-time password and TOTP secret shown once really log in) and adds it to a
team; the IT operator sees the fleet and releases a quarantined reading once its meter is
bound; the admin filters the audit log and verifies the chain; a doctor sees none of it.

Every page passes axe's WCAG 2.1 AA check, shows no untranslated key, and (the ``watched``
guards) sends no request to another origin, logs no console error and breaks no CSP rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select

from ingest.examine import examine_message
from ingest.validate import DEFAULT_LIMITS
from readings.codec import (
    DeviceStatus,
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
    encode_envelope,
)
from readings.model import GlucoseValues, Kind, new_reading
from readings.topics import readings_topic
from readings.units import Unit
from registry.db import session_scope
from registry.fleet import FleetRepository
from registry.models import AuditRecord
from registry.ownership import OwnershipChecker
from registry.quarantine import QuarantineStore
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.web.accessibility import serious_violations, watch_accessibility
from tests.web.conftest import SCREENSHOTS, Watched, WebServer, watched_page, web_store
from tests.web.test_browser import staff_login

pytestmark = pytest.mark.browser

UNTRANSLATED = "⟦"
"""What i18n.t shows for a key missing from the catalogue."""
# A home of this test alone: the fleet and quarantine it shows change nothing that the other
# tests on the shared server read (p-wang's gateway state, her devices' batteries, her values).
HOME_GATEWAY = "gw-0098"
HOME_METER = "Roche-Accu_Chek_Guide-0098"
METER_PATIENT = "p-zhao"
OFFLINE_GATEWAY = "gw-0099"
NEW_METER = "Acme-Meter-0042"
"""A meter the family used before anyone bound it to 赵刚: ingest quarantines its reading."""


def _checked(watched: Watched, name: str) -> str:
    """The page's text, after axe and the catalogue check."""
    page = watched.page
    text: str = page.locator("main").inner_text()
    assert UNTRANSLATED not in page.locator("body").inner_text(), name
    violations = serious_violations(page)
    assert not violations, f"{name}: {violations}"
    return text


def _logout(watched: Watched) -> None:
    watched.page.locator("#logout").click()
    watched.page.locator("#staff-login").wait_for()


def _seed_fleet(server: WebServer) -> None:
    """gw-0098 online with a meter low on battery and 12 readings queued; gw-0099 offline."""
    now = datetime.now(UTC)
    with session_scope(server.registry) as session:
        PatientRepository(session).add(METER_PATIENT, "赵刚")
        GatewayRepository(session).add(HOME_GATEWAY, label="赵家")
        DeviceRepository(session).bind(
            HOME_METER, HOME_GATEWAY, METER_PATIENT, at=now - timedelta(days=2)
        )
        GatewayRepository(session).add(OFFLINE_GATEWAY, label="李家")
        fleet = FleetRepository(session)
        fleet.record_status(
            StatusMessage(
                gateway_id=HOME_GATEWAY,
                state=GatewayState.ONLINE,
                at=now - timedelta(seconds=30),
                queue_depth=12,
                oldest_unacked_age_seconds=600.0,
                software_version="0.9.1",
                devices=[DeviceStatus(device_id=HOME_METER, state="idle", battery_percent=15)],
            ),
            received_at=now - timedelta(seconds=30),
        )
        fleet.record_event(
            EventMessage(
                gateway_id=HOME_GATEWAY,
                at=now - timedelta(seconds=30),
                event=EventType.BATTERY_LOW,
                device_id=HOME_METER,
                detail={"battery_percent": 15},
            ),
            received_at=now - timedelta(seconds=30),
        )
        for state, ago in ((GatewayState.ONLINE, 90), (GatewayState.OFFLINE, 40)):
            at = now - timedelta(minutes=ago)
            fleet.record_status(
                StatusMessage(
                    gateway_id=OFFLINE_GATEWAY, state=state, at=at, software_version="0.8.0"
                ),
                received_at=at,
            )


def _quarantine_reading(server: WebServer) -> str:
    """What the ingest worker does with a reading of an unbound meter; its id."""
    now = datetime.now(UTC)
    reading = new_reading(
        values=GlucoseValues(glucose=6.2),
        source_unit=Unit.MMOL_PER_L,
        measured_at=now - timedelta(minutes=5),
        received_at=now,
        device_id=NEW_METER,
        patient_id=METER_PATIENT,
        gateway_id=HOME_GATEWAY,
        seq=1,
    )
    examination = examine_message(
        readings_topic(HOME_GATEWAY),
        encode_envelope(HOME_GATEWAY, now, [reading]),
        ownership=OwnershipChecker(server.registry, cache_ttl_seconds=0),
        limits=DEFAULT_LIMITS,
        now=now,
    )
    entries = [d.entry for d in examination.refused if d.entry is not None]
    assert entries, "nothing was quarantined"
    QuarantineStore(server.registry).add_many(entries)
    return reading.id


def test_admin_creates_a_staff_account_that_logs_in_and_adds_it_to_a_team(
    watched: Watched, web_server: WebServer, browser: object
) -> None:
    page = watched.page
    watch_accessibility(page)
    staff_login(watched, web_server, "admin")
    page.locator("#accounts-table tr[data-user=dr\\.zhang]").wait_for()
    assert page.locator("#nav-patients").count() == 0  # no clinical pages for an admin
    assert page.locator("#nav-quarantine").count() == 0  # the IT operator's duty
    for link in ("#nav-accounts", "#nav-teams", "#nav-contracts", "#nav-fleet", "#nav-audit"):
        assert page.locator(link).count() == 1, link
    text = _checked(watched, "accounts")
    assert "家庭医生" in page.locator("#accounts-table tr[data-user=dr\\.zhang]").inner_text()
    assert "team-a 医生" in page.locator("#accounts-table tr[data-user=dr\\.zhang]").inner_text()
    assert "王芳" not in text  # patient names are not an admin's business

    page.fill("#new-username", "dr.sun")
    page.fill("#new-name", "孙医生")
    page.select_option("#new-role", "family_doctor")
    page.locator("#account-create").click()
    page.get_by_text("创建账号 dr.sun（家庭医生），并生成一次性密码和动态验证码密钥？").wait_for()
    page.locator("#create-confirm-yes").click()
    page.locator("#account-once").wait_for()
    assert "已创建账号 dr.sun。" in page.locator("#accounts-message").inner_text()
    password = page.locator("#once-password").inner_text()
    secret = page.locator("#once-secret").inner_text()
    uri = page.locator("#once-uri").inner_text()
    assert uri.startswith(f"otpauth://totp/VitalGate:dr.sun?secret={secret}")
    _checked(watched, "accounts with the one-time details")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-accounts-zh.png"), full_page=True)

    # Creating the same username again: the API's refusal, in words (the browser logs the
    # refused request, expected here).
    watched.allowed_errors.extend(["status of 409 (Conflict)", "status of 422 (Unprocessable"])
    page.fill("#new-username", "dr.sun")
    page.fill("#new-name", "孙医生")
    page.locator("#account-create").click()
    page.locator("#create-confirm-yes").click()
    page.locator("#accounts-message", has_text="与现有记录冲突").wait_for()

    # By keyboard: Enter opens the confirmation with the focus on Confirm, Escape closes it
    # without a change, Enter on Confirm disables; then the same to enable again.
    page.focus("#disable-dr\\.glass")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "confirm-dr.glass-yes"
    page.keyboard.press("Escape")
    assert page.locator("#confirm-dr\\.glass-yes").count() == 0
    page.focus("#disable-dr\\.glass")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.locator("#accounts-message", has_text="已停用账号 dr.glass。").wait_for()
    assert "✕ 已停用" in page.locator("#accounts-table tr[data-user=dr\\.glass]").inner_text()
    page.focus("#enable-dr\\.glass")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.locator("#accounts-message", has_text="已启用账号 dr.glass。").wait_for()

    page.locator("#nav-teams").click()
    section = page.locator("section[data-team=team-a]")
    section.wait_for()
    _checked(watched, "teams")
    page.fill("#member-team-a", "dr.sun")
    page.select_option("#position-team-a", "doctor")
    page.locator("#add-team-a").click()
    page.locator("#confirm-add-team-a-yes").click()
    page.locator("#teams-message", has_text="已将 dr.sun 加入 team-a。").wait_for()
    row = page.locator("#members-team-a tr[data-member=dr\\.sun]")
    assert "医生" in row.inner_text()
    # A nurse position for a family doctor: the API refuses and the page says why.
    page.fill("#member-team-b", "dr.sun")
    page.select_option("#position-team-b", "nurse")
    page.locator("#add-team-b").click()
    page.locator("#confirm-add-team-b-yes").click()
    page.locator("#teams-message", has_text="输入被拒绝").wait_for()

    page.locator("details.new-team summary").click()
    page.fill("#team-code", "team-c")
    page.fill("#team-name", "三团队")
    page.fill("#team-org", "西城社区卫生服务中心")
    page.locator("#team-create").click()
    page.locator("#confirm-team-yes").click()
    page.locator("section[data-team=team-c]", has_text="暂无成员。").wait_for()
    assert "已创建团队 team-c。" in page.locator("#teams-message").inner_text()

    page.locator("#nav-contracts").click()
    page.locator("#contracts-table tr[data-contract]").first.wait_for()
    _checked(watched, "contracts")
    assert "p-wang" in page.locator("#contracts-table").inner_text()
    page.locator("#nav-fleet").click()
    page.locator("#fleet-table").wait_for()
    _checked(watched, "fleet (admin)")

    # The new doctor logs in with what the page showed once, and sees team-a's patient.
    with watched_page(browser, web_server.host) as fresh:
        other = fresh.page
        other.goto(web_server.base_url + "/")
        other.get_by_label("用户名").fill("dr.sun")
        other.get_by_label("密码").fill(password)
        other.get_by_label("动态验证码（身份验证器 App）").fill(pyotp.TOTP(secret).now())
        other.locator("#staff-login button[type=submit]").click()
        other.locator("#patient-list tr[data-patient=p-wang]").wait_for()


def test_it_operator_sees_the_fleet_and_releases_a_quarantined_reading(
    watched: Watched, web_server: WebServer
) -> None:
    _seed_fleet(web_server)
    reading_id = _quarantine_reading(web_server)
    page = watched.page
    page.clock.install()  # timers run on their own, and the test can jump 30 s ahead
    watch_accessibility(page)
    staff_login(watched, web_server, "it.ops")
    gateway = page.locator(f"#fleet-table tr[data-gateway={HOME_GATEWAY}]")
    gateway.wait_for()
    _checked(watched, "fleet")
    online = gateway.inner_text()
    assert "● 在线" in online
    assert "12 条读数" in online
    assert "最早一条已等待 10 分钟" in online
    assert "0.9.1" in online
    assert f"⚠ 电量低 {HOME_METER} (15 %)" in online
    offline = page.locator(f"#fleet-table tr[data-gateway={OFFLINE_GATEWAY}]").inner_text()
    assert "○ 离线" in offline
    assert "自 " in offline
    # Sorted by connection, offline first; the filter keeps the offline one only.
    first = page.locator("#fleet-table tbody tr").first.get_attribute("data-gateway")
    assert first == OFFLINE_GATEWAY
    page.locator("#sort-gateway").click()
    shown = page.locator("#fleet-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.gateway)"
    )
    assert shown == sorted(shown), shown
    assert shown.index(HOME_GATEWAY) < shown.index(OFFLINE_GATEWAY)
    assert page.locator("#fleet-table th[aria-sort=ascending]").inner_text().startswith("网关")
    page.check("#offline-only")
    # The filter hides the gateways that are online; the shared server's other gateways may
    # have no status yet ("尚无状态") and stay listed.
    offline_rows = page.locator("#fleet-table tbody tr").all_inner_texts()
    assert not [row for row in offline_rows if "● 在线" in row], offline_rows
    assert page.locator(f"#fleet-table tr[data-gateway={HOME_GATEWAY}]").count() == 0
    assert page.locator(f"#fleet-table tr[data-gateway={OFFLINE_GATEWAY}]").count() == 1
    page.uncheck("#offline-only")
    page.screenshot(path=str(SCREENSHOTS / "it-fleet-zh.png"), full_page=True)

    # gw-0099 comes back; within the refresh period the page says so without a reload.
    with session_scope(web_server.registry) as session:
        back = datetime.now(UTC)
        FleetRepository(session).record_status(
            StatusMessage(gateway_id=OFFLINE_GATEWAY, state=GatewayState.ONLINE, at=back),
            received_at=back,
        )
    row_99 = page.locator(f"#fleet-table tr[data-gateway={OFFLINE_GATEWAY}]")
    assert "○ 离线" in row_99.inner_text()
    page.clock.fast_forward(31_000)
    page.locator(f"#fleet-table tr[data-gateway={OFFLINE_GATEWAY}]", has_text="● 在线").wait_for()

    page.locator("#nav-quarantine").click()
    row = page.locator("#quarantine-table tbody tr[data-entry]").first
    row.wait_for()
    _checked(watched, "quarantine")
    entry_id = row.get_attribute("data-entry")
    assert "该网关无权上传此设备或患者的数据" in row.inner_text()
    assert "6.2" not in row.inner_text()  # the list shows no health values
    page.locator(f"#inspect-{entry_id}").click()
    page.get_by_text("原始数据包含健康数据").wait_for()
    page.locator(f"#confirm-inspect-{entry_id}-yes").click()
    raw = page.locator(f"#raw-{entry_id}")
    raw.wait_for()
    assert NEW_METER in raw.inner_text()
    assert "已记入审计" in raw.inner_text()
    _checked(watched, "quarantine, payload shown")

    def release(reason: str) -> str:
        page.locator(f"#release-{entry_id}").click()
        page.fill(f"#why-{entry_id}", reason)
        page.locator(f"#release-submit-{entry_id}").click()
        page.locator(f"#confirm-release-{entry_id}-yes").click()
        result = page.locator(f"#result-{entry_id}")
        result.wait_for()
        said: str = result.inner_text()
        return said

    assert release("试一下") == "⚠ 仍被拒绝：ownership: unknown_device"
    with session_scope(web_server.registry) as session:
        DeviceRepository(session).bind(
            NEW_METER, HOME_GATEWAY, METER_PATIENT, at=datetime.now(UTC) - timedelta(days=1)
        )
    assert release("血糖仪已绑定到赵刚") == "✓ 已通过检查，1 条读数已入库。"
    page.select_option("#pref-lang", "en")  # the same pages in English
    page.locator("html[lang=en]").wait_for(state="attached")
    page.locator("#quarantine-table tbody tr[data-entry]").first.wait_for()
    _checked(watched, "quarantine (en)")
    page.locator("#nav-fleet").click()
    page.locator(f"#fleet-table tr[data-gateway={HOME_GATEWAY}]", has_text="● online").wait_for()
    assert "⚠ battery low" in _checked(watched, "fleet (en)")

    now = datetime.now(UTC)
    stored = web_store(web_server).readings(
        METER_PATIENT, Kind.GLUCOSE, now - timedelta(hours=1), now + timedelta(hours=1)
    )
    assert [r.id for r in stored].count(reading_id) == 1
    with session_scope(web_server.registry, write=False) as session:
        inspect_route = "GET /api/v1/quarantine/{quarantine_id}"
        inspected = session.scalars(
            select(AuditRecord).where(AuditRecord.action == inspect_route)
        ).all()
        assert [json.loads(r.patient_ids) for r in inspected] == [[METER_PATIENT]]
        assert json.loads(inspected[0].detail)["health_data"] is True


def test_audit_viewer_filters_and_verifies_the_chain(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    watch_accessibility(page)
    for doctor in ("nurse.liu", "dr.zhang"):  # both list their patients: the actor decides
        staff_login(watched, web_server, doctor)
        page.locator("#patient-list tr[data-patient=p-wang]").wait_for()
        _logout(watched)
    staff_login(watched, web_server, "admin")
    page.locator("#accounts-table").wait_for()
    page.locator("#nav-audit").click()
    page.locator("#audit-table tbody tr[data-seq]").first.wait_for()
    _checked(watched, "audit")
    page.fill("#audit-actor", "dr.zhang")
    page.fill("#audit-action", "GET /api/v1/patients")
    page.locator("#audit-apply").click()
    # Wait for the filtered table: rows, every one of them dr.zhang's (an unfiltered
    # table would hold the admin's own rows and time out here).
    page.wait_for_function(
        """() => {
            const rows = [...document.querySelectorAll('#audit-table tbody tr[data-seq]')];
            return rows.length > 0 && rows.every((r) => r.innerText.includes('dr.zhang'));
        }"""
    )
    rows = page.locator("#audit-table tbody tr[data-seq]")
    for index in range(rows.count()):
        text = rows.nth(index).inner_text()
        for expected in ("dr.zhang", "GET /api/v1/patients", "✓ 成功"):
            assert expected in text, text
    assert page.locator("#audit-actor").input_value() == "dr.zhang"  # the filter stays shown
    page.select_option("#audit-outcome", "denied")
    page.locator("#audit-apply").click()
    page.locator("#audit-table", has_text="没有符合条件的记录。").wait_for()
    page.locator("#audit-clear").click()
    page.locator("#audit-table tbody tr[data-seq]").first.wait_for()

    page.locator("#verify-chain").click()
    words = page.locator("#verify-words")
    words.wait_for()
    with session_scope(web_server.registry, write=False) as session:
        newest = max(session.scalars(select(AuditRecord.seq)).all())
    seq = int(words.inner_text().split("第 ")[1].split(" 条")[0])
    assert words.inner_text() == f"✓ 哈希链完整，直到第 {seq} 条。"
    assert page.locator("#verify-result").inner_text() == words.inner_text()  # nothing else
    assert seq <= newest  # rows written after the verification are not in its answer
    _checked(watched, "audit, chain verified")
    page.screenshot(path=str(SCREENSHOTS / "audit-zh.png"), full_page=True)

    # A broken chain as the API reports it (tests/dashboard_api/test_audit_query.py breaks a
    # real one): the page names where it breaks and each problem.
    problem = "row id=5 seq=5: content_changed: the row no longer hashes to its row_hash"
    broken = {
        "intact": False,
        "rows": seq,
        "head_hash": "0" * 64,
        "problems": [problem],
        "first_broken_seq": 5,
    }
    page.route(
        "**/api/v1/audit/verify",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(broken)
        ),
    )
    page.locator("#verify-chain").click()
    page.locator("#verify-words", has_text="断开").wait_for()
    assert words.inner_text() == "✕ 哈希链在第 5 条处断开（1 个问题）。"
    assert page.locator("#verify-problems li").all_inner_texts() == [problem]


def test_a_doctor_sees_no_admin_link_and_the_admin_pages_answer_not_found(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    watch_accessibility(page)
    staff_login(watched, web_server, "dr.zhang")
    page.locator("#patient-list tr[data-patient=p-wang]").wait_for()
    for link in ("accounts", "teams", "contracts", "fleet", "quarantine", "audit"):
        assert page.locator(f"#nav-{link}").count() == 0, link
    for hash_ in ("#/admin/accounts", "#/admin/teams", "#/it/fleet", "#/it/quarantine", "#/audit"):
        page.goto(web_server.base_url + "/" + hash_)
        page.locator(".notfound").wait_for()
        assert page.locator("h1").inner_text() == "找不到该页面", hash_
        _checked(watched, hash_)
