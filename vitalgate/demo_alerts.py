"""The demo's alert worker: the same parts as `alerts run` (:mod:`alerts.assembly`).

Started in-process by :class:`vitalgate.demo.DemoStack` after ingest; messages that would
go by SMS, voice or WeChat are written to ``notifications.jsonl`` in the data directory
(mode 0600) instead of being sent. The live view lists the open alerts from the registry.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from alerts.assembly import assemble_worker
from alerts.notify.inbox import InboxNotifier
from alerts.pipeline import FileNotifier
from alerts.rules.loader import default_rules
from alerts.scheduler import wake_worker
from alerts.service import EvaluatorService
from infra.mqtt import ClientSettings, MqttProtocol, parse_mqtt_url
from ingest.stores import open_store
from registry.alert_models import AlertRow
from registry.db import create_engine_for, session_scope

DEMO_LEASE: Final = timedelta(seconds=10)
"""Short leases: a restarted demo takes its partitions back within seconds."""
DEMO_ESCALATION_TICK_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class OpenAlertLine:
    """One open alert as the terminal view shows it."""

    patient_id: str
    rule_id: str
    severity: str
    state: str
    fired_at: datetime | None
    explanation: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DemoAlerts:
    """Evaluator service and escalation worker of the demo, on their own threads."""

    def __init__(
        self, registry_url: str, store_url: str, mqtt_url: str, mqtt_protocol: str, data_dir: Path
    ) -> None:
        self._engine = create_engine_for(registry_url)
        self._store = open_store(store_url)
        self.notifications = data_dir / "notifications.jsonl"
        notifiers: dict[str, Any] = {"inbox": InboxNotifier(lambda _event: None)}
        for channel in ("sms", "voice", "wechat", "email"):
            notifiers[channel] = FileNotifier(channel, self.notifications)
        self._parts = assemble_worker(
            self._engine,
            self._store,
            rules=default_rules(),
            notifiers=notifiers,
            holder="demo-alerts",
            clock=_utc_now,
            lease_ttl=DEMO_LEASE,
        )
        settings = ClientSettings(
            endpoint=parse_mqtt_url(mqtt_url),
            client_id="vitalgate-demo-alerts",
            protocol=MqttProtocol(mqtt_protocol),
            persistent_session=True,
            session_expiry_seconds=3600,
            manual_ack=True,
        )
        self._service = EvaluatorService(self._parts.evaluator, settings, tick=timedelta(minutes=1))
        self._thread: threading.Thread | None = None
        self._scheduler: Any = None

    def start(self) -> None:
        """Start evaluating and escalating."""
        self._thread = threading.Thread(target=self._service.run, name="demo-alerts", daemon=True)
        self._thread.start()
        self._scheduler = wake_worker(
            self._parts.escalation,
            tick_seconds=DEMO_ESCALATION_TICK_SECONDS,
            visit_reminders=self._parts.visit_reminders,
        )

    def stop(self) -> None:
        """Stop both and close the registry and store."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self._service.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._store.close()
        self._engine.dispose()

    def open_alerts(self) -> list[OpenAlertLine]:
        """The alerts not yet resolved, most urgent first."""
        with session_scope(self._engine, write=False) as session:
            rows = session.query(AlertRow).filter(AlertRow.resolved_at.is_(None)).all()
            lines = [
                OpenAlertLine(
                    patient_id=row.patient_id,
                    rule_id=row.rule_id,
                    severity=row.severity,
                    state=row.state,
                    fired_at=row.fired_at,
                    explanation=_explain(row.explanation_key, row.explanation_params),
                )
                for row in rows
            ]
        return sorted(lines, key=lambda line: (line.severity, line.patient_id, line.rule_id))

    def notification_count(self) -> int:
        """Messages the escalation wrote to the notification file."""
        try:
            return sum(1 for _ in self.notifications.open(encoding="utf-8"))
        except FileNotFoundError:
            return 0


def _explain(key: str, params_json: str) -> str:
    try:
        params = json.loads(params_json)
    except ValueError:
        params = {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if not isinstance(v, list))
    return f"{key} ({shown})" if shown else key
