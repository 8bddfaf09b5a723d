"""The demo's clinic side of the API: a care team, accounts and ``vitalgate serve`` in-process.

:func:`seed_care_model` registers, as a clinic would, one family-doctor team (a doctor, a
nurse, a team lead and an admin) contracted with the demo patients, a patient account and a
family member with consent. Passwords, TOTP secrets and the token key are made at random
for each data directory and kept in ``demo-logins.json`` (mode 0600) there, so a second run
prints the same logins; nothing secret is built into the code. :class:`DemoApi` serves the
API on a free loopback port in a thread; SMS login links go to ``sms.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from dashboard_api.security import hash_password
from registry.care import (
    AccountRepository,
    ContractRepository,
    FamilyRepository,
    PatientCareRepository,
    TeamRepository,
)
from registry.care_models import AccountKind, Condition, ConsentScope, Role, TeamPosition
from registry.db import create_engine_for, session_scope
from registry.errors import AlreadyExists

DEMO_TEAM: Final = "demo-team"
DEMO_STAFF: Final = {
    "dr.demo": ("演示医生 Dr Demo", (Role.FAMILY_DOCTOR,), TeamPosition.DOCTOR),
    "nurse.demo": ("演示护士 Nurse Demo", (Role.NURSE,), TeamPosition.NURSE),
    "lead.demo": ("演示组长 Lead Demo", (Role.TEAM_LEAD, Role.FAMILY_DOCTOR), TeamPosition.LEAD),
    "admin.demo": ("管理员 Admin", (Role.ADMIN,), None),
}
DEMO_PATIENT_PHONE: Final = "13800000001"
DEMO_FAMILY_PHONE: Final = "13800000002"
"""Reserved-looking numbers: SMS in the demo go to a file, never to a phone."""
API_STARTUP_TIMEOUT_SECONDS: Final = 15.0


@dataclass(frozen=True, slots=True)
class DemoLogins:
    """What a person needs to log in to the demo's API."""

    path: Path
    token_secret: str
    passwords: dict[str, str]
    totp_secrets: dict[str, str]

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DemoLogins:
        """The logins of this data directory, made at random on first use."""
        path = data_dir / "demo-logins.json"
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, stored["token_secret"], stored["passwords"], stored["totp"])
        import pyotp

        logins = cls(
            path,
            secrets.token_urlsafe(48),
            {name: secrets.token_urlsafe(12) for name in DEMO_STAFF},
            {name: pyotp.random_base32() for name in DEMO_STAFF},
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "token_secret": logins.token_secret,
                    "passwords": logins.passwords,
                    "totp": logins.totp_secrets,
                },
                out,
                indent=2,
            )
        return logins


def seed_care_model(registry_url: str, patient_ids: Sequence[str], logins: DemoLogins) -> None:
    """Register the demo's team, accounts, contracts and consent (idempotent)."""
    engine = create_engine_for(registry_url)
    today = datetime.now(UTC).date()
    try:
        with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
            TeamRepository(session).add(
                DEMO_TEAM, name="演示家庭医生团队", organisation="演示社区卫生服务中心"
            )
        for username, (name, roles, position) in DEMO_STAFF.items():
            with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
                accounts = AccountRepository(session)
                accounts.add(username, display_name=name, kind=AccountKind.STAFF, roles=roles)
                accounts.set_password_hash(username, hash_password(logins.passwords[username]))
                accounts.set_totp_secret(username, logins.totp_secrets[username])
                if position is not None:
                    TeamRepository(session).add_member(DEMO_TEAM, username, position)
        for patient_id in patient_ids:
            with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
                ContractRepository(session).sign(
                    patient_id,
                    DEMO_TEAM,
                    service_package="chronic_disease",
                    starts_on=today - timedelta(days=400),
                )
        first = patient_ids[0]
        with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
            AccountRepository(session).add(
                "patient.demo",
                display_name="演示患者",
                kind=AccountKind.PATIENT,
                patient_id=first,
                phone=DEMO_PATIENT_PHONE,
            )
            PatientCareRepository(session).set_conditions(
                first, [Condition.DIABETES_TYPE2, Condition.HYPERTENSION]
            )
            PatientCareRepository(session).record_monitoring_consent(
                first, recorded_by="nurse.demo"
            )
        with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
            AccountRepository(session).add(
                "family.demo",
                display_name="演示家属",
                kind=AccountKind.FAMILY,
                phone=DEMO_FAMILY_PHONE,
            )
            family = FamilyRepository(session)
            family.link(first, "family.demo", relationship="daughter")
            family.grant(
                first,
                "family.demo",
                [ConsentScope.VIEW_READINGS, ConsentScope.RECEIVE_ALERTS],
                granted_by="patient.demo",
            )
    finally:
        engine.dispose()


class DemoApi:
    """``vitalgate serve`` for the demo: loopback, a free port, in a thread."""

    def __init__(
        self,
        registry_url: str,
        store_url: str,
        data_dir: Path,
        logins: DemoLogins,
        *,
        mqtt_url: str,
        mqtt_protocol: str,
    ) -> None:
        self._mqtt_url = mqtt_url
        self._mqtt_protocol = mqtt_protocol
        self._listener: Any = None
        self._registry_url = registry_url
        self._store_url = store_url
        self._data_dir = data_dir
        self._logins = logins
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        """Serve until :meth:`stop`; returns once the port accepts connections."""
        import uvicorn

        from dashboard_api.app import create_app
        from dashboard_api.config import ApiSettings
        from dashboard_api.sms import FileSmsSender
        from ingest.stores import open_store

        self._engine = create_engine_for(self._registry_url)
        self._store = open_store(self._store_url)
        settings = ApiSettings(
            token_secret=SecretStr(self._logins.token_secret),
            secure_cookies=False,  # plain HTTP on loopback
            public_url="http://127.0.0.1",
        )
        from dashboard_api.live import AcceptedListener, LiveHub
        from infra.mqtt import ClientSettings, MqttError, MqttProtocol, parse_mqtt_url

        hub = LiveHub()
        self._listener = AcceptedListener(
            ClientSettings(
                endpoint=parse_mqtt_url(self._mqtt_url),
                client_id="vitalgate-demo-api",
                protocol=MqttProtocol(self._mqtt_protocol),
            ),
            hub,
        )
        try:
            self._listener.start()
        except MqttError as exc:
            raise RuntimeError(f"the API's live feed cannot reach the broker: {exc}") from exc
        app = create_app(
            settings,
            registry=self._engine,
            store=self._store,
            sms=FileSmsSender(self._data_dir / "sms.jsonl"),
            live=hub,
        )
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
        )
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[listener])), name="demo-api"
        )
        self._thread.start()
        deadline = time.monotonic() + API_STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the API did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and release the feed, the registry and the store."""
        if self._listener is not None:
            self._listener.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._store.close()
        with contextlib.suppress(Exception):
            self._engine.dispose()
