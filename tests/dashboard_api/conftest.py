"""A real API over a real registry (SQLite file, and PostgreSQL where reachable) and a real
SQLite reading store, with a seeded care model and a clock the test moves.

Seed: team-a (dr.zhang, nurse.liu, lead.zhou) contracted with p-wang; team-b (dr.chen) with
p-li; wang.fang is p-wang's own account; wang.daughter has consent to view p-wang's
readings, wang.son's consent was revoked and wang.niece's expired; dr.duty is on duty for
team-a from T0 + 1 h for 8 h; dr.glass is a doctor of no team; admin is an administrator;
it.ops is an IT operator.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dashboard_api.app import create_app
from dashboard_api.config import ApiSettings
from dashboard_api.live import LiveHub
from dashboard_api.security import hash_password
from dashboard_api.sms import FileSmsSender
from ingest.stores import ReadingStore, open_store
from readings.model import BloodPressureValues, GlucoseValues, Reading, new_reading
from readings.units import Unit
from registry.care import (
    AccountRepository,
    ContractRepository,
    FamilyRepository,
    PatientCareRepository,
    RotaRepository,
    TeamRepository,
)
from registry.care_models import AccountKind, Condition, ConsentScope, Role, TeamPosition
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.fakes import ManualClock
from tests.registry_backends import BACKENDS, empty_registry

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
TOKEN_SECRET = "t" * 48
METER = "Roche-Accu_Chek_Guide-92310000123"
CUFF = "Omron-HEM_7600T-20250001"
GATEWAY = "gw-0001"

STAFF = {
    "dr.zhang": [Role.FAMILY_DOCTOR],
    "nurse.liu": [Role.NURSE],
    "lead.zhou": [Role.TEAM_LEAD, Role.FAMILY_DOCTOR],
    "dr.chen": [Role.FAMILY_DOCTOR],
    "dr.duty": [Role.FAMILY_DOCTOR],
    "dr.glass": [Role.FAMILY_DOCTOR],
    "admin": [Role.ADMIN],
    "it.ops": [Role.IT_OPERATOR],
    "it.wu": [Role.IT_OPERATOR],
}


class RecordingCommands:
    """The API's command publisher for tests that judge who may send a command, not how it
    travels (tests/dashboard_api/test_pairing.py sends them through a real Mosquitto)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))


@dataclass
class Deployment:
    """What a test gets: the app, its client, the clock, the parts behind it."""

    app: FastAPI
    client: TestClient
    clock: ManualClock
    registry: Engine
    store: ReadingStore
    sms_file: Path
    hub: LiveHub
    commands: RecordingCommands = field(default_factory=RecordingCommands)
    totp: dict[str, str] = field(default_factory=dict)

    def code(self, username: str) -> str:
        """The TOTP code of ``username`` at the clock's time."""
        return pyotp.TOTP(self.totp[username]).at(self.clock.now)

    def login(self, username: str) -> str:
        """A Bearer access token of a staff member."""
        response = self.client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": PASSWORD, "code": self.code(username)},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def sms_login(self, phone: str) -> str:
        """A Bearer access token of a patient or family member, through the SMS link."""
        before = self.sms_file.read_text().count("\n") if self.sms_file.exists() else 0
        answer = self.client.post("/api/v1/auth/sms/request", json={"phone": phone})
        assert answer.status_code == 202, answer.text
        lines = self.sms_file.read_text().splitlines()
        assert len(lines) == before + 1, "no SMS was sent"
        token = lines[-1].split("#", 1)[1].split()[0]
        response = self.client.post("/api/v1/auth/sms/verify", json={"token": token})
        assert response.status_code == 200, response.text
        access: str = response.json()["access_token"]
        return access


@functools.cache
def _password_hash() -> str:
    # argon2id with production parameters is deliberately slow: hash once per test run.
    return hash_password(PASSWORD)


def _readings() -> list[Reading]:
    out = []
    for index in range(48):
        at = T0 - timedelta(days=2) + timedelta(hours=index)
        out.append(
            new_reading(
                values=GlucoseValues(glucose=4.0 + (index % 10) * 0.5),
                source_unit=Unit.MMOL_PER_L,
                measured_at=at,
                received_at=at + timedelta(seconds=20),
                device_id=METER,
                patient_id="p-wang",
                gateway_id=GATEWAY,
                seq=index + 1,
                flags=("clock_corrected",) if index == 3 else (),
            )
        )
    out.append(
        new_reading(
            values=BloodPressureValues(systolic=142.0, diastolic=91.0, pulse=70.0),
            source_unit=Unit.MMHG,
            measured_at=T0 - timedelta(hours=3),
            received_at=T0 - timedelta(hours=3),
            device_id=CUFF,
            patient_id="p-li",
            gateway_id="gw-0002",
            seq=1,
        )
    )
    return out


def _seed(engine: Engine, clock: ManualClock) -> dict[str, str]:
    secrets: dict[str, str] = {}
    seed_clock = ManualClock(T0 - timedelta(days=30))
    with session_scope(engine) as session:
        patients = PatientRepository(session, clock=seed_clock)
        patients.add("p-wang", display_name="王芳")
        patients.add("p-li", display_name="李强")
        patients.add("p-other", display_name="赵六")
        accounts = AccountRepository(session, clock=seed_clock)
        for username, roles in STAFF.items():
            accounts.add(username, display_name=username, kind=AccountKind.STAFF, roles=roles)
            accounts.set_password_hash(username, _password_hash())
            secrets[username] = pyotp.random_base32()
            accounts.set_totp_secret(username, secrets[username])
        accounts.add(
            "wang.fang",
            display_name="王芳",
            kind=AccountKind.PATIENT,
            patient_id="p-wang",
            phone="13800000001",
        )
        for name, phone in (
            ("wang.daughter", "13800000002"),
            ("wang.son", "13800000003"),
            ("wang.niece", "13800000004"),
        ):
            accounts.add(name, display_name=name, kind=AccountKind.FAMILY, phone=phone)
        teams = TeamRepository(session, clock=seed_clock)
        teams.add("team-a", name="一团队", organisation="东城社区卫生服务中心")
        teams.add("team-b", name="二团队", organisation="东城社区卫生服务中心")
        teams.add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        teams.add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        teams.add_member("team-a", "lead.zhou", TeamPosition.LEAD)
        teams.add_member("team-b", "dr.chen", TeamPosition.DOCTOR)
        contracts = ContractRepository(session, clock=seed_clock)
        contracts.sign(
            "p-wang",
            "team-a",
            service_package="diabetes",
            starts_on=(T0 - timedelta(days=30)).date(),
        )
        contracts.sign(
            "p-li",
            "team-b",
            service_package="hypertension",
            starts_on=(T0 - timedelta(days=30)).date(),
        )
        RotaRepository(session).add_shift(
            "team-a",
            "dr.duty",
            starts_at=T0 + timedelta(hours=1),
            ends_at=T0 + timedelta(hours=9),
        )
        family = FamilyRepository(session, clock=seed_clock)
        for name in ("wang.daughter", "wang.son", "wang.niece"):
            family.link("p-wang", name, relationship="child")
        family.grant(
            "p-wang", "wang.daughter", [ConsentScope.VIEW_READINGS], granted_by="wang.fang"
        )
        family.grant("p-wang", "wang.son", [ConsentScope.VIEW_READINGS], granted_by="wang.fang")
        family.revoke("p-wang", "wang.son", revoked_by="wang.fang")
        family.grant(
            "p-wang",
            "wang.niece",
            [ConsentScope.VIEW_READINGS],
            granted_by="wang.fang",
            expires_at=T0,
        )
        GatewayRepository(session, clock=seed_clock).add(GATEWAY, label="王家")
        DeviceRepository(session, clock=seed_clock).bind(METER, GATEWAY, "p-wang")
        PatientCareRepository(session, clock=seed_clock).set_conditions(
            "p-wang", [Condition.DIABETES_TYPE2, Condition.HYPERTENSION]
        )
    return secrets


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry on each backend (PostgreSQL: a schema of its own)."""
    with empty_registry(request, tmp_path, "api") as url:
        yield url


SEEDED_PHI = ("王芳", "李强", "赵六", "13800000001", "13800000002", "13800000003")
"""Values that must never reach a log line (names, phones)."""


@pytest.fixture(autouse=True)
def no_phi_in_logs() -> Iterator[None]:
    """Fail any API test whose log output (any logger, any level) carries seeded PHI."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    text = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__}" for record in records
    )
    leaked = [value for value in SEEDED_PHI if value in text]
    assert not leaked, f"log output carries PHI: {leaked}"


@contextlib.contextmanager
def seeded_deployment(
    registry_url: str, tmp_path: Path, *, login_attempts_per_minute: int = 1000
) -> Iterator[Deployment]:
    """The seeded API over ``registry_url`` and a SQLite reading store in ``tmp_path``.

    The client speaks plain HTTP, so cookies are not marked Secure; one clock drives the app
    and the test; a recording command publisher stands in for the broker (without one the
    pairing routes answer 503).
    """
    upgrade(registry_url)
    engine = create_engine_for(registry_url)
    clock = ManualClock(T0 + timedelta(hours=2))  # the one clock of the app and the test
    totp = _seed(engine, clock)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    store.write(_readings())
    sms_file = tmp_path / "sms.jsonl"
    settings = ApiSettings(
        token_secret=TOKEN_SECRET,
        secure_cookies=False,
        login_attempts_per_minute=login_attempts_per_minute,
    )
    hub = LiveHub()
    commands = RecordingCommands()
    app = create_app(
        settings,
        registry=engine,
        store=store,
        sms=FileSmsSender(sms_file),
        clock=clock,
        live=hub,
        commands=commands,
    )
    try:
        with TestClient(app) as client:
            yield Deployment(
                app=app,
                client=client,
                clock=clock,
                registry=engine,
                store=store,
                sms_file=sms_file,
                hub=hub,
                commands=commands,
                totp=totp,
            )
    finally:
        store.close()
        engine.dispose()


@pytest.fixture
def deployment(registry_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """The seeded API on each registry backend."""
    with seeded_deployment(registry_url, tmp_path) as seeded:
        yield seeded
