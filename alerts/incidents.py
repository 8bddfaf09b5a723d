"""The outage monitor: what the evaluator knows of the clinic's own downtime, kept current.

:class:`OutageMonitor` gathers the inputs of :mod:`alerts.outage` — the ingest heartbeat
spans (``registry.incidents``), the evaluator's own broker disconnections (told by the
service) and the evaluator's own downtime (the gap between the last watermark write and
its first refresh) — computes the outages, and keeps the ``SYS1`` incidents in step with
them: one opened when an outage is seen, resolved when it ends, one recorded afterwards
for an outage nobody saw while it lasted.

The evaluator asks it, for each S1–S3 finding, whether the clinic's downtime explains it
(:meth:`OutageMonitor.explain`); explained findings are held back and recorded as
suppressions, like the findings of a paused patient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.escalation import Recipient
from alerts.model import Finding, Severity
from alerts.notify.base import Message, Notifier, NotifyError, send_with_retry
from alerts.outage import (
    HEARTBEAT_GRACE,
    INCIDENT_RULE,
    RECOVERY_GRACE,
    AliveSpan,
    IncidentActionKind,
    KnownIncident,
    Outage,
    OutageCause,
    explaining_outage,
    find_outages,
    plan_incidents,
)
from alerts.rules.model import RuleSet
from readings.model import Kind, Reading
from registry.clock import aware_utc
from registry.db import session_scope
from registry.errors import NotFound
from registry.evaluation_models import EvaluationWatermark
from registry.incident_models import ServiceHeartbeat
from registry.incidents import (
    Incident,
    delivered_keys,
    heartbeat_spans,
    incidents,
    open_incident,
    record_delivery,
    resolve_incident,
)

log = logging.getLogger(__name__)

LOOKBACK: Final = timedelta(days=1)
"""How far back heartbeats are read. An outage is judged while it lasts and for
``RECOVERY_GRACE`` (10 min) after; a day also finds, at start-up, an ingest outage that
began and ended during an evaluator downtime of up to a day. Longer downtimes are still
one incident: the evaluator's own (its watermark gap)."""


def _causes(causes: frozenset[OutageCause]) -> tuple[str, ...]:
    return tuple(sorted(c.value for c in causes))


def silent_since(
    finding: Finding,
    window: Sequence[Reading],
    gateway_last_seen: Mapping[str, datetime] | None,
) -> datetime | None:
    """When the silence behind a stale/missing-data finding began (None: unknown).

    S1: the newest CGM reading. S2: the newest reading of any kind (the patient's data as
    a whole stopped coming then). S3: the latest last-seen of the gateways it names as
    offline — if even that one fell silent before the recovery, all did.
    """
    if finding.rule_id == "S1":
        cgm = [r.measured_at for r in window if r.kind is Kind.CGM_GLUCOSE]
        return max(cgm, default=None)
    if finding.rule_id == "S2":
        return max((r.measured_at for r in window), default=None)
    if finding.rule_id == "S3" and gateway_last_seen:
        named = str(finding.explanation.params.get("gateways", "")).split(",")
        seen = [gateway_last_seen[g] for g in named if g in gateway_last_seen]
        return max(seen, default=None)
    return None


INCIDENT_CHANNELS: Final = ("email", "sms", "wechat", "webhook")
"""Where IT is told. Not the in-app inbox: it lists the alerts table, which holds patients'
alerts only (an incidents page is separate work)."""

_SUBJECTS: Final = {"open": "VitalGate 系统故障", "resolve": "VitalGate 系统恢复"}
_CAUSE_TEXT: Final = {"ingest": "数据接收服务", "broker": "消息服务器", "evaluator": "告警评估服务"}


def incident_text(
    kind: str, causes: Sequence[str], started_at: datetime, ended_at: datetime | None
) -> str:
    """The zh-CN message to IT: what is down, since when, what the engine does meanwhile.

    No patient, device or gateway appears: an outage is the clinic's.
    """
    what = "、".join(_CAUSE_TEXT.get(c, c) for c in causes) or "系统"
    since = started_at.strftime("%Y-%m-%d %H:%M UTC")
    if kind == "open":
        return (
            f"【VitalGate】诊所端系统中断：{what}自 {since} 起无响应。"
            "中断期间暂停数据缺失/网关离线提醒（S1–S3），恢复后 10 分钟重新评估。请尽快处理。"
        )
    until = ended_at.strftime("%Y-%m-%d %H:%M UTC") if ended_at else "现在"
    return f"【VitalGate】诊所端系统已恢复：{what}中断 {since} 至 {until}。"


class IncidentDelivery:
    """Tells IT operators and administrators of each SYS1 incident, at least once each.

    Every refresh, for every incident in view and each message it calls for (``open`` when
    opened, ``resolve`` when resolved; one ``resolve`` only for an outage recorded after
    the fact), each channel configured and each reachable recipient
    (:func:`alerts.recipients.incident_recipients`): a message not yet recorded under its
    idempotency key ``incident:<id>:<kind>:<channel>:<recipient>`` is sent (retried with
    back-off) and recorded once. A failure is logged and tried again at the next refresh.
    """

    def __init__(
        self,
        engine: Engine,
        notifiers: Mapping[str, Notifier],
        *,
        recipients: Callable[[Session, str], Sequence[Recipient]] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        from alerts.recipients import incident_recipients

        self._engine = engine
        self._notifiers = {c: n for c, n in notifiers.items() if c in INCIDENT_CHANNELS}
        self._recipients = recipients or incident_recipients
        self._sleep = sleep
        self.sent = 0

    def deliver(self, now: datetime, *, since: datetime) -> int:
        """Send what is due for incidents open or ended since ``since``; how many were sent."""
        sent = 0
        for incident in incidents(self._engine, rule_id=INCIDENT_RULE, since=since):
            kinds = ["open"] if incident.opened_at != incident.resolved_at else []
            if incident.resolved_at is not None:
                kinds.append("resolve")
            done = delivered_keys(self._engine, incident.incident_id)
            for channel, notifier in sorted(self._notifiers.items()):
                with session_scope(self._engine, write=False) as session:
                    reached = list(self._recipients(session, channel))
                for kind in kinds:
                    for recipient in reached:
                        who = recipient.recipient_id
                        key = f"incident:{incident.incident_id}:{kind}:{channel}:{who}"
                        if key not in done and self._send(
                            notifier, incident, kind, recipient, key, now
                        ):
                            sent += 1
        self.sent += sent
        return sent

    def _send(
        self,
        notifier: Notifier,
        incident: Incident,
        kind: str,
        recipient: Recipient,
        key: str,
        now: datetime,
    ) -> bool:
        message = Message(
            idempotency_key=key,
            recipient=recipient.recipient_id,
            address=recipient.address,
            subject=_SUBJECTS[kind],
            body=incident_text(kind, incident.causes, incident.started_at, incident.ended_at),
            patient_id="",
            alert_id=incident.incident_id,
        )
        try:
            send_with_retry(notifier, message, sleep=self._sleep)
        except NotifyError as exc:
            log.warning("incident message not delivered on %s: %s", notifier.channel, exc)
            return False
        record_delivery(
            self._engine,
            incident.incident_id,
            key=key,
            channel=notifier.channel,
            recipient=recipient.recipient_id,
            now=now,
        )
        return True


class OutageMonitor:
    """Current clinic-side outages and their SYS incidents (see the module docstring).

    Args:
        engine: the registry.
        clock: the injected clock.
        lookback: how far back heartbeats are read (:data:`LOOKBACK`).
        heartbeat_grace: ingest silence longer than this is an outage.
        recovery_grace: S1–S3 stay held back this long after recovery.
        delivery: tells IT of each incident (None: recorded only).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime],
        lookback: timedelta = LOOKBACK,
        heartbeat_grace: timedelta = HEARTBEAT_GRACE,
        recovery_grace: timedelta = RECOVERY_GRACE,
        delivery: IncidentDelivery | None = None,
    ) -> None:
        self._engine = engine
        self._delivery = delivery
        self._clock = clock
        self._lookback = lookback
        self._heartbeat_grace = heartbeat_grace
        self._recovery_grace = recovery_grace
        self._started_at: datetime | None = None
        self._evaluator_down: tuple[datetime, datetime] | None = None
        self._disconnects: list[tuple[datetime, datetime | None]] = []
        self.outages: list[Outage] = []
        """The outages as of the last :meth:`refresh`, oldest first."""

    @classmethod
    def for_rules(
        cls,
        engine: Engine,
        rules: RuleSet,
        *,
        clock: Callable[[], datetime],
        delivery: IncidentDelivery | None = None,
    ) -> OutageMonitor:
        """A monitor with the graces of the rule set's ``SYS1`` (the defaults without one)."""
        try:
            params = rules.get(INCIDENT_RULE).params
        except KeyError:
            params = {}
        return cls(
            engine,
            clock=clock,
            heartbeat_grace=params.get("heartbeat_grace", HEARTBEAT_GRACE),
            recovery_grace=params.get("recovery_grace", RECOVERY_GRACE),
            delivery=delivery,
        )

    def broker(self, connected: bool, now: datetime) -> None:
        """The evaluator's own link to the broker, as the service saw it at ``now``."""
        if self._disconnects and self._disconnects[-1][1] is None:
            if connected:
                self._disconnects[-1] = (self._disconnects[-1][0], now)
        elif not connected:
            self._disconnects.append((now, None))
        horizon = now - self._lookback
        self._disconnects = [d for d in self._disconnects if d[1] is None or d[1] > horizon]

    def _first_refresh(self, now: datetime) -> None:
        """At start-up: the evaluator's own downtime is the gap since its last watermark."""
        self._started_at = now
        with session_scope(self._engine, write=False) as session:
            last = session.scalar(select(func.max(EvaluationWatermark.updated_at)))
        if last is not None:
            self._evaluator_down = (aware_utc(last, "updated_at"), now)

    def _horizon(self, now: datetime) -> datetime:
        # Before the first heartbeat ever written (a new installation) ingest cannot have
        # been "down": it did not exist. Judge from the earlier of that and our start.
        with session_scope(self._engine, write=False) as session:
            first = session.scalar(select(func.min(ServiceHeartbeat.started_at)))
        assert self._started_at is not None
        known = [self._started_at]
        if first is not None:
            known.append(aware_utc(first, "first"))
        if self._evaluator_down is not None:
            known.append(self._evaluator_down[0])
        return max(now - self._lookback, min(known))

    def refresh(self) -> list[Outage]:
        """Recompute the outages at the clock's now and bring the incidents in step."""
        now = self._clock()
        if self._started_at is None:
            self._first_refresh(now)
        horizon = self._horizon(now)
        spans = [
            AliveSpan(s.started_at, s.beat_at)
            for s in heartbeat_spans(self._engine, since=horizon - self._heartbeat_grace)
        ]
        self.outages = find_outages(
            spans,
            now=now,
            horizon=horizon,
            broker_disconnects=self._disconnects,
            evaluator_down=self._evaluator_down,
            heartbeat_grace=self._heartbeat_grace,
        )
        self._sync_incidents(now)
        if self._delivery is not None:
            self._delivery.deliver(now, since=now - self._lookback)
        return self.outages

    def _sync_incidents(self, now: datetime) -> None:
        known = [
            KnownIncident(i.incident_id, i.started_at, i.ended_at, i.resolved_at is not None)
            for i in incidents(self._engine, rule_id=INCIDENT_RULE, since=now - self._lookback)
        ]
        for action in plan_incidents(self.outages, known, now):
            causes = _causes(action.causes)
            try:
                if action.kind is IncidentActionKind.RESOLVE:
                    assert action.incident_id is not None
                    assert action.ended_at is not None
                    resolve_incident(
                        self._engine,
                        action.incident_id,
                        ended_at=action.ended_at,
                        causes=causes,
                        now=now,
                        reason="clinic-side outage ended",
                    )
                else:
                    open_incident(
                        self._engine,
                        rule_id=INCIDENT_RULE,
                        severity=Severity.SYS.value,
                        causes=causes,
                        started_at=action.started_at,
                        ended_at=action.ended_at,
                        now=now,
                        reason=f"clinic-side outage: {', '.join(causes)} silent",
                    )
            except (IntegrityError, NotFound):
                # Another evaluator recorded it first; its row is what the next tick reads.
                log.info("incident %s already recorded by another worker", action.kind.value)

    def explain(
        self,
        finding: Finding,
        window: Sequence[Reading],
        gateway_last_seen: Mapping[str, datetime] | None,
        now: datetime,
    ) -> Outage | None:
        """The outage that explains ``finding`` at ``now`` (None: it stands)."""
        return explaining_outage(
            finding.rule_id,
            silent_since(finding, window, gateway_last_seen),
            self.outages,
            now,
            grace=self._recovery_grace,
        )
