"""The evaluator: leases, catch-up from the store, windows, dedup — with the real rules.

Real SQLite registry and reading store, the default rule set and the real engine; the
clock is injected. The MQTT service around it is tested in tests/integration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from alerts.evaluator import IN_FLIGHT_MARGIN, Evaluator, RegistryPatientDirectory
from alerts.model import Finding, FindingStatus
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from ingest.stores import open_store
from ingest.stores.base import ReadingStore
from readings.codec import encode_envelope
from readings.model import GlucoseValues, Reading, new_reading
from readings.topics import partition_for
from registry.db import create_engine_for
from registry.evaluation import watermark
from tests.fakes import ManualClock
from vitalgate.cli import app

PATIENT = "patient-0001"
DEVICE = "ROCHE-GUIDE-0000001"
GATEWAY = "gw-0001"
PARTITIONS = 4
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Finding]]] = []

    def __call__(self, patient_id: str, findings: Sequence[Finding]) -> None:
        self.calls.append((patient_id, list(findings)))

    def firing(self, rule_id: str) -> list[Finding]:
        return [
            f
            for _, fs in self.calls
            for f in fs
            if f.rule_id == rule_id and f.status is FindingStatus.FIRING
        ]


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Engine, ReadingStore]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    runner = CliRunner()
    for args in (
        ["init"],
        ["gateway", "add", GATEWAY],
        ["patient", "add", PATIENT],
        ["device", "bind", DEVICE, "--gateway", GATEWAY, "--patient", PATIENT],
    ):
        result = runner.invoke(app, ["registry", "--registry", url, "--actor", "t", *args])
        assert result.exit_code == 0, result.output
    engine = create_engine_for(url)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    yield engine, store
    store.close()
    engine.dispose()


def glucose(mmol: float, at: datetime, seq: int) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=mmol),
        source_unit="mmol/L",
        measured_at=at,
        received_at=at,
        device_id=DEVICE,
        patient_id=PATIENT,
        gateway_id=GATEWAY,
        seq=seq,
    )


def make_evaluator(
    deployment: tuple[Engine, ReadingStore], clock: ManualClock, sink: Sink, holder: str = "w1"
) -> Evaluator:
    engine, store = deployment
    return Evaluator(
        engine=engine,
        store=store,
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=sink,
        clock=clock,
        holder=holder,
        partitions=PARTITIONS,
        lease_ttl=timedelta(seconds=30),
    )


PART = partition_for(PATIENT, PARTITIONS)


def test_an_accepted_hypo_fires_g1_and_moves_the_watermark(deployment) -> None:  # type: ignore[no-untyped-def]
    clock, sink = ManualClock(NOW), Sink()
    evaluator = make_evaluator(deployment, clock, sink)
    evaluator.refresh_leases()
    low = glucose(2.5, NOW - timedelta(minutes=5), 1)
    deployment[1].write([low])
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [low]))
    (g1,) = sink.firing("G1")
    assert g1.reading_ids == (low.id,)
    assert watermark(deployment[0], PART) == NOW - IN_FLIGHT_MARGIN


def test_the_watermark_is_written_at_most_once_a_second_while_messages_stream_in(
    deployment,  # type: ignore[no-untyped-def]
) -> None:
    clock, sink = ManualClock(NOW), Sink()
    evaluator = make_evaluator(deployment, clock, sink)
    evaluator.refresh_leases()
    readings = [glucose(6.0, NOW - timedelta(minutes=5 - n), n + 1) for n in range(3)]
    deployment[1].write(readings)
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, readings[:1]))
    assert watermark(deployment[0], PART) == NOW - IN_FLIGHT_MARGIN
    clock.advance(seconds=0.5)
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, clock(), readings[1:2]))
    assert watermark(deployment[0], PART) == NOW - IN_FLIGHT_MARGIN  # not yet written again
    clock.advance(seconds=0.5)
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, clock(), readings[2:]))
    assert watermark(deployment[0], PART) == clock() - IN_FLIGHT_MARGIN
    clock.advance(seconds=0.2)
    evaluator.mark_caught_up()  # the inbox ran empty: written at once
    assert watermark(deployment[0], PART) == clock() - IN_FLIGHT_MARGIN


def test_a_redelivered_batch_is_not_evaluated_again(deployment) -> None:  # type: ignore[no-untyped-def]
    clock, sink = ManualClock(NOW), Sink()
    evaluator = make_evaluator(deployment, clock, sink)
    evaluator.refresh_leases()
    low = glucose(2.5, NOW - timedelta(minutes=5), 1)
    deployment[1].write([low])
    payload = encode_envelope(GATEWAY, NOW, [low])
    evaluator.handle_accepted(PART, payload)
    calls = len(sink.calls)
    evaluator.handle_accepted(PART, payload)
    assert len(sink.calls) == calls
    assert evaluator.stats.duplicates == 1


def test_a_partition_not_held_is_left_to_its_holder(deployment) -> None:  # type: ignore[no-untyped-def]
    clock, sink = ManualClock(NOW), Sink()
    holder = make_evaluator(deployment, clock, Sink(), holder="w1")
    holder.refresh_leases()
    other = make_evaluator(deployment, clock, sink, holder="w2")
    assert other.refresh_leases() == []
    low = glucose(2.5, NOW - timedelta(minutes=5), 1)
    other.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [low]))
    assert sink.calls == []
    assert other.stats.ignored_not_held == 1


def test_a_reading_whose_accepted_message_was_lost_is_evaluated_at_catch_up(deployment) -> None:  # type: ignore[no-untyped-def]
    # The broker lost accepted/ while the evaluator was down; the store has the reading.
    clock, sink = ManualClock(NOW), Sink()
    first = make_evaluator(deployment, clock, Sink())
    first.refresh_leases()
    first.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [glucose(6.0, NOW, 1)]))
    first.release()
    clock.advance(minutes=10)
    lost = glucose(2.4, clock() - timedelta(minutes=3), 2)
    deployment[1].write([lost])
    restarted = make_evaluator(deployment, clock, sink)
    assert PART in restarted.refresh_leases()
    (g1,) = sink.firing("G1")
    assert g1.reading_ids == (lost.id,)


def test_a_dead_workers_partition_is_taken_over_and_caught_up(deployment) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(NOW)
    dead = make_evaluator(deployment, clock, Sink(), holder="w1")
    dead.refresh_leases()
    dead.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [glucose(6.0, NOW, 1)]))
    # w1 stops renewing (killed); a reading is stored meanwhile.
    clock.advance(20)
    low = glucose(2.6, clock(), 2)
    deployment[1].write([low])
    sink = Sink()
    heir = make_evaluator(deployment, clock, sink, holder="w2")
    assert heir.refresh_leases() == []  # w1's leases are still live
    clock.advance(15)
    assert PART in heir.refresh_leases()
    assert [f.reading_ids for f in sink.firing("G1")] == [(low.id,)]


def test_the_window_comes_from_the_store_on_a_miss(deployment) -> None:  # type: ignore[no-untyped-def]
    # G2 pages the doctor at the second low of the week: the first is only in the store.
    clock, sink = ManualClock(NOW), Sink()
    earlier = glucose(3.5, NOW - timedelta(days=2), 1)
    deployment[1].write([earlier])
    evaluator = make_evaluator(deployment, clock, sink)
    evaluator.refresh_leases()
    sink.calls.clear()
    second = glucose(3.6, NOW - timedelta(minutes=2), 2)
    deployment[1].write([second])
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [second]))
    window_ids = {r.id for r in evaluator.windows.window(PATIENT, NOW)}
    assert {earlier.id, second.id} <= window_ids
    assert evaluator.windows.loads >= 1


def test_an_arrival_already_in_the_store_is_evaluated_on_a_cache_miss(deployment) -> None:  # type: ignore[no-untyped-def]
    # Ingest stores before it announces: the window loaded on the miss already holds the
    # arriving reading, which must still count as an arrival, not as a redelivery.
    clock, sink = ManualClock(NOW), Sink()
    evaluator = make_evaluator(deployment, clock, sink)
    evaluator.refresh_leases()
    evaluator.windows.forget(PATIENT)  # e.g. evicted from the LRU
    low = glucose(2.5, NOW - timedelta(minutes=1), 7)
    deployment[1].write([low])
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [low]))
    assert [f.reading_ids for f in sink.firing("G1")] == [(low.id,)]


def test_findings_become_one_alert_with_its_escalation(deployment) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from alerts.pipeline import LifecycleSink
    from registry.alert_models import EscalationStep
    from registry.alerts_repo import AlertRepository
    from registry.db import session_scope

    engine, store = deployment
    clock = ManualClock(NOW)
    sink = LifecycleSink(engine, clock=clock)
    evaluator = Evaluator(
        engine=engine,
        store=store,
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=sink,
        clock=clock,
        holder="w1",
        partitions=PARTITIONS,
    )
    evaluator.refresh_leases()
    first = glucose(2.5, NOW - timedelta(minutes=3), 1)
    second = glucose(2.7, NOW - timedelta(minutes=1), 2)
    for reading in (first, second):
        store.write([reading])
        evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [reading]))
    with session_scope(engine, write=False) as session:
        alerts = AlertRepository(session).alerts_of(PATIENT)
        g1 = [a for a in alerts if a.rule_id == "G1"]
        assert len(g1) == 1  # two lows, one open alert
        assert g1[0].severity == "P1"
        steps = session.scalar(
            select(func.count())
            .select_from(EscalationStep)
            .where(EscalationStep.alert_id == g1[0].id)
        )
        assert (steps or 0) >= 3  # inbox/SMS now, family at 10 min, duty doctor at 20


def test_metrics_show_the_open_alert_and_the_partitions_held(deployment) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry

    from alerts.metrics import AlertMetrics, registry_metrics
    from alerts.pipeline import LifecycleSink

    engine, store = deployment
    clock = ManualClock(NOW)
    evaluator = Evaluator(
        engine=engine,
        store=store,
        directory=RegistryPatientDirectory(engine),
        rules=default_rules(),
        evaluate=evaluate,
        sink=LifecycleSink(engine, clock=clock),
        clock=clock,
        holder="w1",
        partitions=PARTITIONS,
    )
    evaluator.refresh_leases()
    low = glucose(2.5, NOW - timedelta(minutes=1), 1)
    store.write([low])
    evaluator.handle_accepted(PART, encode_envelope(GATEWAY, NOW, [low]))
    metrics = AlertMetrics(CollectorRegistry())
    registry_metrics(engine, metrics.registry)
    clock.advance(minutes=2)
    metrics.observe(evaluator)
    value = metrics.registry.get_sample_value
    assert value("vitalgate_alerts_open", {"severity": "P1", "state": "firing"}) == 1
    assert value("vitalgate_alerts_partitions_held") == PARTITIONS
    assert value("vitalgate_alerts_readings_evaluated_total") == 1
    lag = value("vitalgate_alerts_evaluation_lag_seconds")
    assert lag is not None
    assert lag >= 120


def test_a_quiet_partition_is_not_behind_once_marked_caught_up(deployment) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(NOW)
    evaluator = make_evaluator(deployment, clock, Sink())
    evaluator.refresh_leases()
    clock.advance(hours=6)  # a night without readings
    evaluator.mark_caught_up()
    assert evaluator.lag_seconds()[PART] == IN_FLIGHT_MARGIN.total_seconds()
