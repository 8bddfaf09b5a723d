"""S1/S2 count silence from when monitoring of a kind started: the later of the pairing of
a device producing it and the kind's last reading; nothing paired, nothing expected.

Pure rule tests (``monitoring_since`` given as data), the run of pairings
(:func:`alerts.monitoring.monitoring_starts`), the file backtest's first-reading rule, and
the worker's registry loader (:class:`alerts.evaluator.RegistryPatientDirectory`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.backtest import run_backtest
from alerts.evaluator import RegistryPatientDirectory
from alerts.model import Finding, FindingStatus
from alerts.monitoring import PairingSpan, monitoring_starts
from alerts.rules.engine import evaluate
from alerts.rules.model import RuleSet
from readings.model import Kind, Reading
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.alerts.builders import T0, bp, cgm, glucose, minutes, profile

DAY = timedelta(days=1)
BP = Kind.BLOOD_PRESSURE
HYPERTENSIVE = profile("hypertension")
DEMO_PATIENT = profile("diabetes_type2", "hypertension")


def s2(
    rules: RuleSet,
    readings: list[Reading],
    now: datetime,
    since: Mapping[Kind, datetime] | None,
    who: object = HYPERTENSIVE,
) -> Finding | None:
    found = evaluate(readings, who, rules, now, monitoring_since=since)  # type: ignore[arg-type]
    return next((f for f in found if f.rule_id == "S2"), None)


def fires(finding: Finding | None) -> bool:
    return finding is not None and finding.status is FindingStatus.FIRING


# -- S2 at the boundary, pairing given -------------------------------------------------


def test_a_cuff_paired_just_under_3_days_ago_without_a_reading_is_not_missing(
    rules: RuleSet,
) -> None:
    found = s2(rules, [], T0, {BP: T0 - 3 * DAY + minutes(1)})
    assert found is not None
    assert found.status is FindingStatus.CLEAR


def test_a_cuff_paired_3_days_ago_without_a_reading_is_missing(rules: RuleSet) -> None:
    assert fires(s2(rules, [], T0, {BP: T0 - 3 * DAY}))
    found = s2(rules, [], T0, {BP: T0 - 3 * DAY - minutes(1)})
    assert fires(found)
    assert found is not None
    assert found.explanation.params["groups"] == "blood_pressure"


def test_a_reading_after_the_pairing_resets_the_silence(rules: RuleSet) -> None:
    paired = T0 - 10 * DAY
    last = bp(130, 80, at=T0 - 3 * DAY + minutes(1))
    assert not fires(s2(rules, [last], T0, {BP: paired}))
    assert fires(s2(rules, [last], T0 + minutes(1), {BP: paired}))


def test_a_pairing_after_the_last_reading_counts_from_the_pairing(rules: RuleSet) -> None:
    # The cuff replaced after a gap: its pairing restarts the count, not the old reading.
    old = bp(130, 80, at=T0 - 10 * DAY)
    assert not fires(s2(rules, [old], T0, {BP: T0 - DAY}))
    assert fires(s2(rules, [old], T0 + 2 * DAY, {BP: T0 - DAY}))


def test_no_device_producing_the_kind_means_no_expectation(rules: RuleSet) -> None:
    # Unpaired (nothing in monitoring_since): however old the last reading, no S2.
    old = bp(130, 80, at=T0 - 10 * DAY)
    found = s2(rules, [old], T0, {})
    assert found is not None
    assert found.status is FindingStatus.CLEAR
    assert s2(rules, [], T0, {}) is None  # nothing paired, nothing read: no finding at all
    # A glucose meter paired does not make a blood pressure expected.
    assert not fires(s2(rules, [], T0, {Kind.GLUCOSE: T0 - 9 * DAY}))


def test_a_pairing_in_the_future_expects_nothing_yet(rules: RuleSet) -> None:
    assert s2(rules, [], T0, {BP: T0 + minutes(1)}) is None


def test_either_glucose_device_starts_and_resets_the_glucose_group(rules: RuleSet) -> None:
    diabetic = profile("diabetes_type2")
    since = {Kind.GLUCOSE: T0 - 3 * DAY, Kind.CGM_GLUCOSE: T0 - DAY}
    assert fires(s2(rules, [], T0, since, diabetic))  # the meter's pairing is 3 days old
    assert not fires(s2(rules, [cgm(6.0, T0 - minutes(5))], T0, since, diabetic))


def test_the_demo_at_start_up_has_no_s2(rules: RuleSet) -> None:
    """The demo's meter brings 5 days of stored history, its cuff none; both paired now."""
    history = [glucose(6.0, at=T0 - 5 * DAY + i * DAY) for i in range(3)]
    now = T0 + minutes(2)
    since = {Kind.GLUCOSE: T0, BP: T0}
    assert not fires(s2(rules, history, now, since, DEMO_PATIENT))
    # Without pairings known (the old fallback counted BP from the oldest reading): no BP
    # ever measured is no BP expected either; the meter's last reading, 3 days old, is late.
    fallback = s2(rules, history, now, None, DEMO_PATIENT)
    assert fallback is not None
    assert fallback.explanation.params["groups"] == "glucose"


# -- S1 ------------------------------------------------------------------------------


def _s1(rules: RuleSet, readings: list[Reading], now: datetime, since: object) -> Finding | None:
    found = evaluate(
        readings,
        profile("diabetes_type1"),
        rules,
        now,
        monitoring_since=since,  # type: ignore[arg-type]
    )
    return next((f for f in found if f.rule_id == "S1"), None)


def test_s1_stops_when_the_cgm_is_unpaired_and_counts_from_a_new_sensors_pairing(
    rules: RuleSet,
) -> None:
    trace = [cgm(6.0, T0 - minutes(40))]
    assert fires(_s1(rules, trace, T0, None))  # 40 min silent: urgent
    unpaired = _s1(rules, trace, T0, {Kind.GLUCOSE: T0 - DAY})
    assert unpaired is not None
    assert unpaired.status is FindingStatus.CLEAR
    assert not fires(_s1(rules, trace, T0, {Kind.CGM_GLUCOSE: T0 - minutes(14)}))
    warn = _s1(rules, trace, T0, {Kind.CGM_GLUCOSE: T0 - minutes(15)})
    assert fires(warn)
    assert warn is not None
    assert warn.explanation.params["level"] == "warn"


# -- the run of pairings --------------------------------------------------------------


def _span(start: datetime, end: datetime | None, *kinds: Kind) -> PairingSpan:
    return PairingSpan(frozenset(kinds or {BP}), start, end)


def test_two_cuffs_one_replacing_the_other_continue_one_run() -> None:
    first = T0 - 10 * DAY
    handover = T0 - DAY
    assert monitoring_starts([_span(first, handover), _span(handover, None)], T0) == {BP: first}
    # Both paired at once: the earlier one started monitoring.
    assert monitoring_starts([_span(first, None), _span(T0 - minutes(5), None)], T0) == {BP: first}


def test_a_gap_between_pairings_restarts_monitoring() -> None:
    new = T0 - minutes(60)
    spans = [_span(T0 - 10 * DAY, T0 - 2 * DAY), _span(new, None)]
    assert monitoring_starts(spans, T0) == {BP: new}


def test_an_ended_pairing_expects_nothing_and_kinds_are_separate() -> None:
    assert monitoring_starts([_span(T0 - 10 * DAY, T0)], T0) == {}
    assert monitoring_starts([_span(T0 + minutes(1), None)], T0) == {}  # not begun
    spans = [_span(T0 - 5 * DAY, None, Kind.GLUCOSE), _span(T0 - DAY, T0 - minutes(1))]
    assert monitoring_starts(spans, T0) == {Kind.GLUCOSE: T0 - 5 * DAY}
    # An ended pairing overlapping an open one later than its start still joins the run.
    joined = [_span(T0 - 5 * DAY, T0 - DAY), _span(T0 - 3 * DAY, None), _span(T0, None)]
    assert monitoring_starts(joined, T0 + DAY) == {BP: T0 - 5 * DAY}


# -- the file backtest: monitoring since the first reading of the kind ----------------


def test_the_backtest_expects_a_kind_from_its_first_reading_in_the_file(rules: RuleSet) -> None:
    readings = [glucose(6.0, at=T0 + i * DAY) for i in range(2)]
    last_s2: list[Finding] = []

    def seen(patient_id: str, now: datetime, findings: list[Finding]) -> None:
        last_s2[:] = [f for f in findings if f.rule_id == "S2"] or last_s2

    until = T0 + 20 * DAY
    result = run_backtest(readings, [DEMO_PATIENT], rules, until=until, on_findings=seen)
    assert [(f.at, f.status) for f in last_s2] == [(until, FindingStatus.FIRING)]
    s2_alerts = [a for a in result.alerts if a.rule_id == "S2"]
    # Glucose missing 3 days after the last one, and still firing once the readings have
    # left the 15-day window (monitoring began at the first reading); BP never measured.
    assert [a.fired_at for a in s2_alerts] == [T0 + DAY + 3 * DAY]
    assert s2_alerts[0].resolved_at is None


# -- the worker's loader ---------------------------------------------------------------

CUFF = "omron-hem7361t-0001"
CUFF_2 = "omron-hem7361t-0002"
METER = "roche-guide-0001"
PATIENT = "p-loader"


@pytest.fixture
def registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    with session_scope(engine) as session:
        GatewayRepository(session).add("gw-1")
        PatientRepository(session).add(PATIENT, "Loader", "Asia/Shanghai")
    yield engine
    engine.dispose()


def test_the_directory_loads_the_pairing_start_per_kind(registry) -> None:  # type: ignore[no-untyped-def]
    paired_meter, paired_cuff = T0 - 4 * DAY, T0 - 2 * DAY
    with session_scope(registry) as session:
        devices = DeviceRepository(session)
        devices.bind(METER, "gw-1", PATIENT, paired_meter, profile="roche_accu_chek_guide")
        devices.bind(CUFF, "gw-1", PATIENT, paired_cuff, profile="omron_hem7361t")
        devices.bind("acme-unknown-0001", "gw-1", PATIENT, T0 - 9 * DAY)  # no profile: no kind
    clock = [0.0]
    directory = RegistryPatientDirectory(registry, monotonic=lambda: clock[0])
    assert directory.monitoring_since(PATIENT, T0) == {Kind.GLUCOSE: paired_meter, BP: paired_cuff}

    # The cuff replaced by another at once, the meter unpaired: seen after the profile TTL.
    with session_scope(registry) as session:
        devices = DeviceRepository(session)
        devices.unbind(CUFF, T0 - DAY)
        devices.bind(CUFF_2, "gw-1", PATIENT, T0 - DAY, profile="omron_hem7361t")
        devices.unbind(METER, T0 - DAY)
    assert Kind.GLUCOSE in directory.monitoring_since(PATIENT, T0)  # still cached
    clock[0] += 31
    assert directory.monitoring_since(PATIENT, T0) == {BP: paired_cuff}
    assert directory.monitoring_since("nobody", T0) == {}


# -- the worker: the evaluator hands the directory's answer to the rules -----------------


def test_the_worker_judges_s2_from_the_cuffs_pairing(registry, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The evaluator as ``assemble_worker`` wires it: a hypertensive patient whose cuff was
    paired 3 days − 1 min ago and never measured gets no S2; 2 minutes later, S2."""
    from alerts import assembly
    from alerts.rules.loader import default_rules
    from ingest.stores import open_store
    from registry.care_models import Condition
    from registry.patient_care import PatientCareRepository
    from tests.fakes import ManualClock

    now = T0
    with session_scope(registry) as session:
        PatientCareRepository(session).set_conditions(PATIENT, [Condition.HYPERTENSION])
        DeviceRepository(session).bind(
            CUFF, "gw-1", PATIENT, now - 3 * DAY + minutes(1), profile="omron_hem7361t"
        )
    given: list[tuple[object, list[Finding]]] = []

    def spy(*args: object, **kwargs: object) -> list[Finding]:
        found = evaluate(*args, **kwargs)  # type: ignore[arg-type]
        given.append((kwargs["monitoring_since"], found))
        return found

    def s2_groups() -> list[str]:
        since, found = given[-1]
        assert since == {BP: now - 3 * DAY + minutes(1)}
        firing = [f for f in found if f.rule_id == "S2" and f.status is FindingStatus.FIRING]
        return [f.explanation.params["groups"] for f in firing]

    monkeypatch.setattr(assembly, "evaluate", spy)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    clock = ManualClock(now)
    try:
        parts = assembly.assemble_worker(
            registry, store, rules=default_rules(), notifiers={}, holder="w1", clock=clock
        )
        parts.evaluator.refresh_leases()  # catches up: one evaluation of the patient
        parts.evaluator.tick()
        assert s2_groups() == []
        clock.advance(minutes=2)
        parts.evaluator.tick()
        assert s2_groups() == ["blood_pressure"]
    finally:
        store.close()
