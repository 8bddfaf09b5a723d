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
    STORED_HISTORY_BACKFILL_DAYS,
    OwnershipChecker,
    OwnershipVerdict,
    PairingPeriod,
    acceptance_windows,
    judge,
)
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.registry.conftest import T0, FakeClock, StatementCounter

DEVICE = "Roche-Accu_Chek_Guide-92310000123"
DAY = timedelta(days=1)
BACKFILL = timedelta(days=STORED_HISTORY_BACKFILL_DAYS)
V = OwnershipVerdict


def _verdict(
    periods: list[PairingPeriod], gateway: str, patient: str, at: datetime, now: datetime = T0
) -> OwnershipVerdict:
    windows = acceptance_windows(periods, BACKFILL)
    return judge(windows, gateway_id=gateway, patient_id=patient, at=at, now=now)


# -- the rule, without a database ----------------------------------------------------------


def test_a_current_pairing_accepts_its_gateway_and_patient() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, None)]
    assert _verdict(periods, "gw-1", "p-1", T0) is V.OK
    assert _verdict(periods, "gw-1", "p-1", T0 + 400 * DAY) is V.OK
    assert _verdict(periods, "gw-1", "p-2", T0) is V.WRONG_PATIENT
    assert _verdict(periods, "gw-2", "p-1", T0) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_stored_history_from_before_the_pairing_is_accepted_within_the_window() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, None)]
    assert _verdict(periods, "gw-1", "p-1", T0 - timedelta(seconds=1)) is V.OK
    assert _verdict(periods, "gw-1", "p-1", T0 - BACKFILL) is V.OK
    outside = T0 - BACKFILL - timedelta(seconds=1)
    assert _verdict(periods, "gw-1", "p-1", outside) is V.NOT_PAIRED_AT_MEASURED_AT
    # The claimed patient still has to match inside the window.
    assert _verdict(periods, "gw-1", "p-2", T0 - DAY) is V.WRONG_PATIENT


def test_history_of_a_previous_patient_is_not_filed_under_the_new_one() -> None:
    # The meter was p-1's until T0 (through gw-1); p-2 got it on T0 + 10 days, same gateway.
    periods = [
        PairingPeriod("gw-1", "p-1", T0 - 30 * DAY, T0),
        PairingPeriod("gw-1", "p-2", T0 + 10 * DAY, None),
    ]
    now = T0 + 11 * DAY
    # Re-downloaded records from p-1's time, claimed for p-2: refused.
    assert _verdict(periods, "gw-1", "p-2", T0 - DAY, now) is V.WRONG_PATIENT
    # Between the two pairings p-2's backfill applies, but it stops at the end of p-1's.
    assert _verdict(periods, "gw-1", "p-2", T0 + DAY, now) is V.OK
    assert _verdict(periods, "gw-1", "p-2", T0, now) is V.OK
    # p-1's own history through gw-1 stays p-1's.
    assert _verdict(periods, "gw-1", "p-1", T0 - DAY, now) is V.OK


def test_a_gateway_swap_for_the_same_patient_keeps_the_history() -> None:
    periods = [
        PairingPeriod("gw-old", "p-1", T0 - 30 * DAY, T0),
        PairingPeriod("gw-new", "p-1", T0, None),
    ]
    # The new box downloads the meter's memory, including the old box's period.
    assert _verdict(periods, "gw-new", "p-1", T0 - 20 * DAY) is V.OK
    # The old box, still online with a stale config, may not send new readings.
    assert _verdict(periods, "gw-old", "p-1", T0 + DAY) is V.DEVICE_NOT_PAIRED_TO_GATEWAY
    assert _verdict(periods, "gw-old", "p-1", T0 - DAY) is V.OK


def test_paired_now_but_not_then_is_told_apart_from_never_paired() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, None)]
    long_before = T0 - BACKFILL - DAY
    assert _verdict(periods, "gw-1", "p-1", long_before) is V.NOT_PAIRED_AT_MEASURED_AT
    assert _verdict(periods, "gw-2", "p-1", long_before) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_after_unbinding_nothing_new_is_accepted() -> None:
    periods = [PairingPeriod("gw-1", "p-1", T0, T0 + DAY)]
    now = T0 + 2 * DAY
    assert _verdict(periods, "gw-1", "p-1", T0 + DAY - timedelta(seconds=1), now) is V.OK
    assert _verdict(periods, "gw-1", "p-1", T0 + DAY, now) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


def test_a_device_with_no_pairing_is_not_paired() -> None:
    assert _verdict([], "gw-1", "p-1", T0) is V.DEVICE_NOT_PAIRED_TO_GATEWAY


# -- the checker on a real registry --------------------------------------------------------


@pytest.fixture
def registry(engine: Engine) -> Engine:
    """gw-1 (active), gw-off (deactivated), p-1, p-2; DEVICE bound to p-1 on gw-1 at T0."""
    with session_scope(engine) as session:
        gateways = GatewayRepository(session)
        gateways.add("gw-1")
        gateways.add("gw-2")
        gateways.add("gw-off")
        gateways.set_active("gw-off", False)
        PatientRepository(session).add("p-1")
        PatientRepository(session).add("p-2")
        DeviceRepository(session).bind(DEVICE, "gw-1", "p-1", at=T0)
    return engine


@pytest.fixture
def checker(registry: Engine, clock: FakeClock) -> OwnershipChecker:
    return OwnershipChecker(registry, clock=clock)


@pytest.mark.parametrize(
    ("gateway", "device", "patient", "at", "verdict"),
    [
        ("gw-1", DEVICE, "p-1", T0 + DAY, V.OK),
        ("gw-1", DEVICE, "p-1", T0 - 30 * DAY, V.OK),
        ("gw-9", DEVICE, "p-1", T0, V.UNKNOWN_GATEWAY),
        ("gw-off", DEVICE, "p-1", T0, V.INACTIVE_GATEWAY),
        ("gw-1", "Acme-Unknown-1", "p-1", T0, V.UNKNOWN_DEVICE),
        ("gw-2", DEVICE, "p-1", T0, V.DEVICE_NOT_PAIRED_TO_GATEWAY),
        ("gw-1", DEVICE, "p-2", T0, V.WRONG_PATIENT),
        ("gw-1", DEVICE, "p-1", T0 - BACKFILL - DAY, V.NOT_PAIRED_AT_MEASURED_AT),
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
    registry: Engine, checker: OwnershipChecker, clock: FakeClock
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
    registry: Engine, checker: OwnershipChecker, clock: FakeClock
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
    registry: Engine, clock: FakeClock, statements: StatementCounter
) -> None:
    checker = OwnershipChecker(registry, cache_ttl_seconds=0, clock=clock)
    checker.check("gw-1", DEVICE, "p-1", T0)
    first = statements.count
    checker.check("gw-1", DEVICE, "p-1", T0)
    assert statements.count == 2 * first


def test_the_cache_is_bounded(
    registry: Engine, clock: FakeClock, statements: StatementCounter
) -> None:
    checker = OwnershipChecker(registry, clock=clock, max_cached_entries=3)
    checker.check("gw-1", DEVICE, "p-1", T0)
    for index in range(3):
        checker.check("gw-1", f"Acme-Made_up-{index}", "p-1", T0)
    # The fourth device overflowed the cache: the first one is asked for again.
    before = statements.count
    checker.check("gw-1", DEVICE, "p-1", T0)
    assert statements.count > before


def test_a_shorter_backfill_can_be_configured(registry: Engine, clock: FakeClock) -> None:
    checker = OwnershipChecker(registry, clock=clock, backfill=timedelta(days=7))
    assert checker.check("gw-1", DEVICE, "p-1", T0 - 7 * DAY) is V.OK
    assert checker.check("gw-1", DEVICE, "p-1", T0 - 8 * DAY) is V.NOT_PAIRED_AT_MEASURED_AT


def test_checks_from_many_threads_agree(registry: Engine, clock: FakeClock) -> None:
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
        ({"backfill": -DAY}, "backfill"),
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
