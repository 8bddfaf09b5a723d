"""The ownership rule (pure) and the cached checker, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from registry.db import create_engine_for, session_scope
from registry.errors import InvalidRegistryInput, RegistryUnavailable
from registry.ownership import (
    OwnershipChecker,
    OwnershipVerdict,
    PairingPeriod,
    acceptance_windows,
    judge,
)
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0, StatementCounter

DEVICE = "Roche-Accu_Chek_Guide-92310000123"
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
V = OwnershipVerdict


def _verdict(
    periods: list[PairingPeriod], gateway: str, patient: str, at: datetime, now: datetime = T0
) -> OwnershipVerdict:
    windows = acceptance_windows(periods)
    return judge(windows, gateway_id=gateway, patient_id=patient, at=at, now=now)


# -- the rule, without a database ----------------------------------------------------------


def test_a_current_pairing_accepts_its_gateway_and_patient() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, None)]
    assert _verdict(periods, "gw-1", "p-1", T0) is V.OK
    assert _verdict(periods, "gw-1", "p-1", T0 + 400 * DAY) is V.OK
    assert _verdict(periods, "gw-1", "p-2", T0) is V.WRONG_PATIENT
    assert _verdict(periods, "gw-2", "p-1", T0) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_without_a_history_decision_nothing_before_the_binding_is_accepted() -> None:
    # The default of a binding: history_since is its own start.
    for periods in (
        [PairingPeriod("gw-1", "p-1", T0, None)],
        [PairingPeriod("gw-1", "p-1", T0, None, history_since=T0)],
    ):
        assert _verdict(periods, "gw-1", "p-1", T0) is V.OK
        assert _verdict(periods, "gw-1", "p-1", T0 - SECOND) is V.BEFORE_BINDING
        assert _verdict(periods, "gw-1", "p-1", T0 - 30 * DAY) is V.BEFORE_BINDING
        assert _verdict(periods, "gw-1", "p-1", T0 - 3650 * DAY) is V.BEFORE_BINDING
        # Only the bound gateway and patient are "before binding"; anything else keeps its
        # security verdict.
        assert _verdict(periods, "gw-1", "p-2", T0 - DAY) is V.NOT_PAIRED_AT_MEASURED_AT
        assert _verdict(periods, "gw-2", "p-1", T0 - DAY) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_stored_history_is_accepted_from_history_since_on() -> None:
    since = T0 - 30 * DAY
    periods = [PairingPeriod("gw-1", "p-1", T0, None, history_since=since)]
    assert _verdict(periods, "gw-1", "p-1", T0 - SECOND) is V.OK
    assert _verdict(periods, "gw-1", "p-1", since) is V.OK
    assert _verdict(periods, "gw-1", "p-1", since - SECOND) is V.BEFORE_BINDING
    # The claimed patient still has to match inside the window.
    assert _verdict(periods, "gw-1", "p-2", T0 - DAY) is V.WRONG_PATIENT


def test_history_of_a_previous_patient_is_not_filed_under_the_new_one() -> None:
    # The meter was p-1's until T0 (through gw-1); p-2 got it on T0 + 10 days, same gateway,
    # with a history decision reaching far back.
    periods = [
        PairingPeriod("gw-1", "p-1", T0 - 30 * DAY, T0),
        PairingPeriod("gw-1", "p-2", T0 + 10 * DAY, None, history_since=T0 - 100 * DAY),
    ]
    now = T0 + 11 * DAY
    # Re-downloaded records from p-1's time, claimed for p-2: refused, and not releasable.
    assert _verdict(periods, "gw-1", "p-2", T0 - DAY, now) is V.WRONG_PATIENT
    assert _verdict(periods, "gw-1", "p-2", T0 - 60 * DAY, now) is V.NOT_PAIRED_AT_MEASURED_AT
    # Between the two pairings p-2's history applies, but it stops at the end of p-1's.
    assert _verdict(periods, "gw-1", "p-2", T0 + DAY, now) is V.OK
    assert _verdict(periods, "gw-1", "p-2", T0, now) is V.OK
    # p-1's own readings through gw-1 stay p-1's.
    assert _verdict(periods, "gw-1", "p-1", T0 - DAY, now) is V.OK


def test_a_previous_patient_on_another_gateway_is_never_before_binding() -> None:
    # A second-hand meter: p-1 used it through gw-1 until T0; p-2 binds it through gw-2 and
    # (wrongly) says its whole memory is theirs.
    periods = [
        PairingPeriod("gw-1", "p-1", T0 - 30 * DAY, T0),
        PairingPeriod("gw-2", "p-2", T0 + 10 * DAY, None, history_since=T0 - 100 * DAY),
    ]
    now = T0 + 11 * DAY
    assert _verdict(periods, "gw-2", "p-2", T0 - DAY, now) is V.NOT_PAIRED_AT_MEASURED_AT
    assert _verdict(periods, "gw-2", "p-2", T0 - SECOND, now) is V.NOT_PAIRED_AT_MEASURED_AT
    assert _verdict(periods, "gw-2", "p-2", T0, now) is V.OK
    # Without the history decision, the time after p-1 is p-2's only by a person's release.
    periods[1] = PairingPeriod("gw-2", "p-2", T0 + 10 * DAY, None)
    assert _verdict(periods, "gw-2", "p-2", T0 + DAY, now) is V.BEFORE_BINDING
    assert _verdict(periods, "gw-2", "p-2", T0 - DAY, now) is V.NOT_PAIRED_AT_MEASURED_AT


def test_a_gateway_swap_for_the_same_patient_keeps_the_history() -> None:
    # The repository carries the history decision over to the new pairing.
    since = T0 - 60 * DAY
    periods = [
        PairingPeriod("gw-old", "p-1", T0 - 30 * DAY, T0, history_since=since),
        PairingPeriod("gw-new", "p-1", T0, None, history_since=since),
    ]
    # The new box downloads the meter's memory, including the old box's period.
    assert _verdict(periods, "gw-new", "p-1", T0 - 20 * DAY) is V.OK
    assert _verdict(periods, "gw-new", "p-1", since) is V.OK
    assert _verdict(periods, "gw-new", "p-1", since - SECOND) is V.BEFORE_BINDING
    # The old box, still online with a stale config, may not send new readings.
    assert _verdict(periods, "gw-old", "p-1", T0 + DAY) is V.DEVICE_NOT_PAIRED_TO_GATEWAY
    assert _verdict(periods, "gw-old", "p-1", T0 - DAY) is V.OK


def test_paired_now_but_not_then_is_told_apart_from_never_paired() -> None:
    periods = [
        PairingPeriod("gw-1", "p-1", T0 - 30 * DAY, T0 - 20 * DAY),
        PairingPeriod("gw-1", "p-2", T0 - 10 * DAY, None),
    ]
    # p-1's time, claimed for p-2 through gw-1: the gateway had it, for another patient.
    assert _verdict(periods, "gw-1", "p-2", T0 - 25 * DAY) is V.WRONG_PATIENT
    # Before p-1's pairing: paired to gw-1 now, never for p-2 then.
    assert _verdict(periods, "gw-1", "p-2", T0 - 40 * DAY) is V.NOT_PAIRED_AT_MEASURED_AT
    assert _verdict(periods, "gw-2", "p-2", T0 - 40 * DAY) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_after_unbinding_nothing_new_is_accepted() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, T0 + DAY)]
    now = T0 + 2 * DAY
    assert _verdict(periods, "gw-1", "p-1", T0 + DAY - SECOND, now) is V.OK
    assert _verdict(periods, "gw-1", "p-1", T0 + DAY, now) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_a_device_with_no_pairing_is_not_paired() -> None:
    assert _verdict([], "gw-1", "p-1", T0) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_only_before_binding_is_not_a_security_event() -> None:
    assert {verdict for verdict in V if not verdict.is_security_event} == {
        V.OK,
        V.BEFORE_BINDING,
    }
    assert V.BEFORE_BINDING.value == "before_binding"


# -- the checker on a real registry --------------------------------------------------------


@pytest.fixture
def registry(engine: Engine) -> Engine:
    """gw-1 (active), gw-off (deactivated), p-1, p-2; DEVICE bound to p-1 on gw-1 at T0
    (no history); Acme-Cuff-7 bound likewise with 30 days of history; Acme-Scale-2 p-2's
    through gw-1 until T0 - 5 days, p-1's through gw-1 since T0."""
    with session_scope(engine) as session:
        gateways = GatewayRepository(session)
        gateways.add("gw-1")
        gateways.add("gw-2")
        gateways.add("gw-off")
        gateways.set_active("gw-off", False)
        PatientRepository(session).add("p-1")
        PatientRepository(session).add("p-2")
        devices = DeviceRepository(session)
        devices.bind(DEVICE, "gw-1", "p-1", at=T0)
        devices.bind("Acme-Cuff-7", "gw-1", "p-1", at=T0, history_since=T0 - 30 * DAY)
        devices.bind("Acme-Scale-2", "gw-1", "p-2", at=T0 - 10 * DAY)
        devices.unbind("Acme-Scale-2", at=T0 - 5 * DAY)
        devices.bind("Acme-Scale-2", "gw-1", "p-1", at=T0, history_since=T0 - 5 * DAY)
    return engine


@pytest.fixture
def checker(registry: Engine, clock: ManualClock) -> OwnershipChecker:
    return OwnershipChecker(registry, clock=clock)


@pytest.mark.parametrize(
    ("gateway", "device", "patient", "at", "verdict"),
    [
        ("gw-1", DEVICE, "p-1", T0 + DAY, V.OK),
        ("gw-1", "Acme-Cuff-7", "p-1", T0 - 30 * DAY, V.OK),
        ("gw-1", "Acme-Cuff-7", "p-1", T0 - 31 * DAY, V.BEFORE_BINDING),
        ("gw-1", DEVICE, "p-1", T0 - SECOND, V.BEFORE_BINDING),
        ("gw-9", DEVICE, "p-1", T0, V.UNKNOWN_GATEWAY),
        ("gw-off", DEVICE, "p-1", T0, V.INACTIVE_GATEWAY),
        ("gw-1", "Acme-Unknown-1", "p-1", T0, V.UNKNOWN_DEVICE),
        ("gw-2", DEVICE, "p-1", T0, V.DEVICE_NOT_PAIRED_TO_GATEWAY),
        ("gw-1", DEVICE, "p-2", T0, V.WRONG_PATIENT),
        ("gw-1", "Acme-Scale-2", "p-1", T0 - DAY, V.OK),
        ("gw-1", "Acme-Scale-2", "p-1", T0 - 7 * DAY, V.WRONG_PATIENT),
        ("gw-1", "Acme-Scale-2", "p-1", T0 - 12 * DAY, V.NOT_PAIRED_AT_MEASURED_AT),
    ],
)
def test_every_verdict_from_the_registry(
    checker: OwnershipChecker,
    gateway: str,
    device: str,
    patient: str,
    at: datetime,
    verdict: OwnershipVerdict,
) -> None:
    assert checker.check(gateway, device, patient, at) is verdict


def test_a_cached_check_sends_no_sql(
    checker: OwnershipChecker, statements: StatementCounter
) -> None:
    assert checker.check("gw-1", DEVICE, "p-1", T0) is V.OK
    loaded = statements.count
    assert loaded > 0
    for offset in range(10_000):
        checker.check("gw-1", DEVICE, "p-1", T0 + timedelta(seconds=offset))
    assert checker.check("gw-1", "Acme-Unknown-1", "p-1", T0) is V.UNKNOWN_DEVICE
    after_unknown = statements.count
    assert checker.check("gw-1", "Acme-Unknown-1", "p-1", T0) is V.UNKNOWN_DEVICE
    assert statements.count == after_unknown


def test_a_cached_check_is_fast(checker: OwnershipChecker) -> None:
    checker.check("gw-1", DEVICE, "p-1", T0)
    count = 50_000
    started = time.perf_counter()
    for offset in range(count):
        checker.check("gw-1", DEVICE, "p-1", T0 + timedelta(seconds=offset))
    per_check = (time.perf_counter() - started) / count
    # Ingest's budget at 100k readings/s is 10 µs per reading for everything; the ownership
    # check must be a small part of it (a query per reading would take ~100 µs).
    assert per_check < 20e-6, f"{per_check * 1e6:.1f} µs per check"


def test_a_binding_change_is_seen_after_the_ttl(
    registry: Engine, checker: OwnershipChecker, clock: ManualClock
) -> None:
    at = T0 + DAY
    assert checker.check("gw-1", DEVICE, "p-1", at) is V.OK
    with session_scope(registry) as session:
        DeviceRepository(session).unbind(DEVICE, at=T0 + timedelta(seconds=1))
    clock.advance(4.9)
    assert checker.check("gw-1", DEVICE, "p-1", at) is V.OK
    clock.advance(0.2)
    assert checker.check("gw-1", DEVICE, "p-1", at) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_a_gateway_deactivation_is_seen_after_the_ttl(
    registry: Engine, checker: OwnershipChecker, clock: ManualClock
) -> None:
    assert checker.check("gw-1", DEVICE, "p-1", T0) is V.OK
    with session_scope(registry) as session:
        GatewayRepository(session).set_active("gw-1", False)
    assert checker.check("gw-1", DEVICE, "p-1", T0) is V.OK
    clock.advance(5.0)
    assert checker.check("gw-1", DEVICE, "p-1", T0) is V.INACTIVE_GATEWAY


def test_invalidate_makes_changes_visible_at_once(
    registry: Engine, checker: OwnershipChecker
) -> None:
    assert checker.check("gw-1", "Acme-Cuff-1", "p-2", T0) is V.UNKNOWN_DEVICE
    with session_scope(registry) as session:
        DeviceRepository(session).bind("Acme-Cuff-1", "gw-1", "p-2", at=T0)
    assert checker.check("gw-1", "Acme-Cuff-1", "p-2", T0) is V.UNKNOWN_DEVICE
    checker.invalidate()
    assert checker.check("gw-1", "Acme-Cuff-1", "p-2", T0) is V.OK


def test_a_zero_ttl_asks_the_database_every_time(
    registry: Engine, clock: ManualClock, statements: StatementCounter
) -> None:
    checker = OwnershipChecker(registry, cache_ttl_seconds=0, clock=clock)
    checker.check("gw-1", DEVICE, "p-1", T0)
    first = statements.count
    checker.check("gw-1", DEVICE, "p-1", T0)
    assert statements.count == 2 * first


def test_the_cache_is_bounded(
    registry: Engine, clock: ManualClock, statements: StatementCounter
) -> None:
    checker = OwnershipChecker(registry, clock=clock, max_cached_entries=3)
    checker.check("gw-1", DEVICE, "p-1", T0)
    for index in range(3):
        checker.check("gw-1", f"Acme-Made_up-{index}", "p-1", T0)
    # The fourth device overflowed the cache: the first one is asked for again.
    before = statements.count
    checker.check("gw-1", DEVICE, "p-1", T0)
    assert statements.count > before


def test_a_history_decision_is_seen_after_the_ttl(
    registry: Engine, checker: OwnershipChecker, clock: ManualClock
) -> None:
    week_before = T0 - 7 * DAY
    assert checker.check("gw-1", DEVICE, "p-1", week_before) is V.BEFORE_BINDING
    with session_scope(registry) as session:
        DeviceRepository(session).bind(DEVICE, "gw-1", "p-1", history_since=T0 - 10 * DAY)
    clock.advance(5.0)
    assert checker.check("gw-1", DEVICE, "p-1", week_before) is V.OK


def test_checks_from_many_threads_agree(registry: Engine, clock: ManualClock) -> None:
    checker = OwnershipChecker(registry, cache_ttl_seconds=0.001, clock=clock)
    cases = [
        (("gw-1", DEVICE, "p-1", T0), V.OK),
        (("gw-1", DEVICE, "p-2", T0), V.WRONG_PATIENT),
        (("gw-off", DEVICE, "p-1", T0), V.INACTIVE_GATEWAY),
        (("gw-1", "Acme-Unknown-1", "p-1", T0), V.UNKNOWN_DEVICE),
    ]
    wrong: list[tuple[object, OwnershipVerdict]] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for round_number in range(200):
                arguments, expected = cases[(offset + round_number) % len(cases)]
                if round_number % 50 == 0:
                    checker.invalidate()
                verdict = checker.check(*arguments)
                if verdict is not expected:
                    wrong.append((arguments, verdict))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert wrong == []


def test_a_naive_measurement_time_is_refused(checker: OwnershipChecker) -> None:
    with pytest.raises(InvalidRegistryInput) as caught:
        checker.check("gw-1", DEVICE, "p-1", datetime(2026, 3, 1, 8, 0))
    assert caught.value.field == "at"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"cache_ttl_seconds": -1}, "cache_ttl_seconds"),
        ({"max_cached_entries": 0}, "max_cached_entries"),
    ],
)
def test_bad_settings_are_refused(arguments: dict[str, object], field: str) -> None:
    engine = create_engine_for("sqlite://")
    try:
        with pytest.raises(InvalidRegistryInput) as caught:
            OwnershipChecker(engine, **arguments)  # type: ignore[arg-type]
        assert caught.value.field == field
    finally:
        engine.dispose()


def test_an_unreachable_registry_is_reported_as_unavailable() -> None:
    engine = create_engine_for("postgresql://postgres@127.0.0.1:1/registry?connect_timeout=2")
    try:
        checker = OwnershipChecker(engine, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(RegistryUnavailable):
            checker.check("gw-1", DEVICE, "p-1", T0)
    finally:
        engine.dispose()
