"""Repositories' contract, on SQLite and PostgreSQL: gateways, patients, device pairings."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from readings.topics import SERVICE_IDENTITIES
from registry.db import session_scope
from registry.errors import (
    AlreadyExists,
    DeviceAlreadyBound,
    InvalidRegistryInput,
    NotFound,
    RegistryError,
)
from registry.repositories import (
    BindResult,
    DeviceRepository,
    GatewayRepository,
    PatientRepository,
    is_reserved_gateway_id,
)
from tests.fakes import ManualClock
from tests.registry.conftest import T0

DEVICE = "Roche-Accu_Chek_Guide-92310000123"
DAY = timedelta(days=1)


@pytest.fixture
def populated(engine: Engine, clock: ManualClock) -> Engine:
    """Two gateways and two patients."""
    with session_scope(engine) as session:
        gateways = GatewayRepository(session, clock=clock)
        gateways.add("gw-1", "Wang household")
        gateways.add("gw-2", "Li household")
        patients = PatientRepository(session, clock=clock)
        patients.add("p-1", "Wang")
        patients.add("p-2")
    return engine


def _bind(
    engine: Engine,
    device: str,
    gateway: str,
    patient: str,
    at: datetime | None = None,
    *,
    history_since: datetime | None = None,
) -> BindResult:
    with session_scope(engine) as session:
        return DeviceRepository(session, clock=lambda: T0).bind(
            device, gateway, patient, at, history_since=history_since
        )


# -- gateways ------------------------------------------------------------------------------


def test_a_gateway_is_added_active_and_read_back(engine: Engine, clock: ManualClock) -> None:
    with session_scope(engine) as session:
        added = GatewayRepository(session, clock=clock).add("gw-1", "Wang household")
    with session_scope(engine, write=False) as session:
        stored = GatewayRepository(session).get("gw-1")
    assert stored == added
    assert (stored.label, stored.active, stored.created_at) == ("Wang household", True, T0)


def test_a_duplicate_gateway_is_refused(populated: Engine) -> None:
    with (
        pytest.raises(AlreadyExists, match="gateway 'gw-1' already exists") as caught,
        session_scope(populated) as session,
    ):
        GatewayRepository(session).add("gw-1")
    assert (caught.value.entity, caught.value.key) == ("gateway", "gw-1")


@pytest.mark.parametrize("bad_id", ["", "gw/1", "gw+1", "-gw", "g" * 65, "网关"])
def test_a_gateway_id_must_be_one_topic_level(engine: Engine, bad_id: str) -> None:
    with pytest.raises(InvalidRegistryInput) as caught, session_scope(engine) as session:
        GatewayRepository(session).add(bad_id)
    assert caught.value.field == "gateway_id"


@pytest.mark.parametrize(
    "reserved",
    [*SERVICE_IDENTITIES, "VitalGate-Ingest", "vitalgate-dashboard", "vitalgate-gw-1"],
)
def test_service_identities_are_not_gateway_ids(engine: Engine, reserved: str) -> None:
    with pytest.raises(InvalidRegistryInput) as caught, session_scope(engine) as session:
        GatewayRepository(session).add(reserved)
    assert caught.value.field == "gateway_id"
    assert "reserved" in caught.value.problem
    assert "vitalgate-ingest" in caught.value.problem
    with session_scope(engine, write=False) as session, pytest.raises(NotFound):
        GatewayRepository(session).get(reserved)


@pytest.mark.parametrize("allowed", ["gw-vitalgate-ingest", "vitalgate", "vitalgate_1", "vg-1"])
def test_names_merely_resembling_a_service_are_gateway_ids(engine: Engine, allowed: str) -> None:
    assert not is_reserved_gateway_id(allowed)
    with session_scope(engine) as session:
        assert GatewayRepository(session).add(allowed).id == allowed


def test_a_gateway_can_be_deactivated_and_activated(populated: Engine) -> None:
    with session_scope(populated) as session:
        assert not GatewayRepository(session).set_active("gw-1", False).active
    with session_scope(populated) as session:
        assert not GatewayRepository(session).get("gw-1").active
        assert GatewayRepository(session).set_active("gw-1", True).active


def test_an_unknown_gateway_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="gateway 'gw-9'"), session_scope(engine) as session:
        GatewayRepository(session).set_active("gw-9", False)


# -- patients ------------------------------------------------------------------------------


def test_a_patient_is_added_with_the_default_time_zone(engine: Engine, clock: ManualClock) -> None:
    with session_scope(engine) as session:
        PatientRepository(session, clock=clock).add("p-1", "Wang")
    with session_scope(engine, write=False) as session:
        patient = PatientRepository(session).get("p-1")
    assert (patient.display_name, patient.time_zone, patient.created_at) == (
        "Wang",
        "Asia/Shanghai",
        T0,
    )


def test_a_duplicate_patient_is_refused(populated: Engine) -> None:
    with pytest.raises(AlreadyExists, match="patient 'p-1'"), session_scope(populated) as session:
        PatientRepository(session).add("p-1")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused(engine: Engine, zone: str) -> None:
    with pytest.raises(InvalidRegistryInput) as caught, session_scope(engine) as session:
        PatientRepository(session).add("p-1", time_zone=zone)
    assert caught.value.field == "time_zone"


def test_an_over_long_display_name_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidRegistryInput) as caught, session_scope(engine) as session:
        PatientRepository(session).add("p-1", "x" * 201)
    assert caught.value.field == "display_name"


# -- binding -------------------------------------------------------------------------------


def test_binding_registers_the_device_and_opens_a_current_pairing(populated: Engine) -> None:
    result = _bind(populated, DEVICE, "gw-1", "p-1")
    assert result.created
    assert result.device_created
    assert result.closed is None
    assert result.pairing.is_current
    with session_scope(populated, write=False) as session:
        devices = DeviceRepository(session)
        device = devices.get(DEVICE)
        assert (device.manufacturer, device.model, device.serial) == (
            "Roche",
            "Accu_Chek_Guide",
            "92310000123",
        )
        assert devices.current_pairing(DEVICE) == result.pairing
        assert devices.pairings_of_gateway("gw-1") == [result.pairing]
        assert devices.pairings_of_gateway("gw-2") == []
    assert (result.pairing.gateway_id, result.pairing.patient_id) == ("gw-1", "p-1")
    assert result.pairing.valid_from == T0


def test_the_device_keeps_its_own_spelling_when_it_matches_the_id(populated: Engine) -> None:
    with session_scope(populated) as session:
        DeviceRepository(session).bind(
            DEVICE,
            "gw-1",
            "p-1",
            manufacturer="Roche",
            model="Accu-Chek Guide",
            serial="92310000123",
            profile="ble_glucose",
        )
        device = DeviceRepository(session).get(DEVICE)
    assert (device.model, device.profile) == ("Accu-Chek Guide", "ble_glucose")


def test_device_parts_that_give_another_id_are_refused(populated: Engine) -> None:
    with (
        pytest.raises(InvalidRegistryInput, match="Roche-Accu_Chek_Guide-999") as caught,
        session_scope(populated) as session,
    ):
        DeviceRepository(session).bind(
            DEVICE, "gw-1", "p-1", manufacturer="Roche", model="Accu-Chek Guide", serial="999"
        )
    assert caught.value.field == "device_id"


@pytest.mark.parametrize("bad_device", ["Roche-Guide", "Roche--1", "a-b-c-d", "Roche-Guide-1 2"])
def test_a_device_id_must_be_manufacturer_model_serial(populated: Engine, bad_device: str) -> None:
    with pytest.raises(InvalidRegistryInput) as caught:
        _bind(populated, bad_device, "gw-1", "p-1")
    assert caught.value.field == "device_id"


@pytest.mark.parametrize(
    ("gateway", "patient", "entity"), [("gw-9", "p-1", "gateway"), ("gw-1", "p-9", "patient")]
)
def test_binding_needs_an_existing_gateway_and_patient(
    populated: Engine, gateway: str, patient: str, entity: str
) -> None:
    with pytest.raises(NotFound) as caught:
        _bind(populated, DEVICE, gateway, patient)
    assert caught.value.entity == entity
    with session_scope(populated, write=False) as session, pytest.raises(NotFound):
        DeviceRepository(session).get(DEVICE)


def test_binding_through_a_deactivated_gateway_is_refused(populated: Engine) -> None:
    with session_scope(populated) as session:
        GatewayRepository(session).set_active("gw-1", False)
    with pytest.raises(InvalidRegistryInput, match="deactivated"):
        _bind(populated, DEVICE, "gw-1", "p-1")


def test_binding_again_the_same_way_changes_nothing(populated: Engine) -> None:
    first = _bind(populated, DEVICE, "gw-1", "p-1", T0)
    again = _bind(populated, DEVICE, "gw-1", "p-1", T0 + DAY)
    assert not again.created
    assert not again.device_created
    assert again.pairing == first.pairing
    with session_scope(populated, write=False) as session:
        assert len(DeviceRepository(session).history(DEVICE)) == 1


def test_binding_to_another_patient_is_refused_until_unbound(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    with pytest.raises(DeviceAlreadyBound, match="unbind it first") as caught:
        _bind(populated, DEVICE, "gw-1", "p-2", T0 + DAY)
    assert "p-1" not in str(caught.value)
    assert isinstance(caught.value, AlreadyExists)

    with session_scope(populated) as session:
        closed = DeviceRepository(session).unbind(DEVICE, T0 + DAY)
    assert closed.valid_to == T0 + DAY
    rebound = _bind(populated, DEVICE, "gw-1", "p-2", T0 + 2 * DAY)
    assert rebound.created
    with session_scope(populated, write=False) as session:
        history = DeviceRepository(session).history(DEVICE)
    assert [(p.patient_id, p.valid_from, p.valid_to) for p in history] == [
        ("p-1", T0, T0 + DAY),
        ("p-2", T0 + 2 * DAY, None),
    ]


def test_binding_the_same_patient_through_another_gateway_moves_the_device(
    populated: Engine,
) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    moved = _bind(populated, DEVICE, "gw-2", "p-1", T0 + DAY)
    assert moved.created
    assert moved.closed is not None
    assert (moved.closed.gateway_id, moved.closed.valid_to) == ("gw-1", T0 + DAY)
    assert (moved.pairing.gateway_id, moved.pairing.valid_from) == ("gw-2", T0 + DAY)
    with session_scope(populated, write=False) as session:
        devices = DeviceRepository(session)
        assert devices.pairings_of_gateway("gw-1") == []
        assert len(devices.pairings(include_history=True)) == 2


def test_a_move_cannot_start_before_the_current_pairing(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    with pytest.raises(InvalidRegistryInput) as caught:
        _bind(populated, DEVICE, "gw-2", "p-1", T0)
    assert caught.value.field == "at"


def test_a_new_pairing_cannot_overlap_the_previous_one(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    with session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE, T0 + 2 * DAY)
    with pytest.raises(InvalidRegistryInput, match="overlaps") as caught:
        _bind(populated, DEVICE, "gw-1", "p-2", T0 + DAY)
    assert caught.value.field == "at"


# -- the history decision (history_since) --------------------------------------------------


def test_by_default_a_binding_accepts_no_stored_history(populated: Engine) -> None:
    bound = _bind(populated, DEVICE, "gw-1", "p-1", T0)
    assert bound.pairing.history_since == T0 == bound.pairing.valid_from
    now_bound = _bind(populated, "Acme-Cuff-1", "gw-1", "p-1")
    assert now_bound.pairing.history_since == now_bound.pairing.valid_from == T0


def test_a_binding_stores_its_history_decision(populated: Engine) -> None:
    since = T0 - 30 * DAY
    bound = _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=since)
    assert bound.pairing.history_since == since
    with session_scope(populated, write=False) as session:
        stored = DeviceRepository(session).current_pairing(DEVICE)
    assert stored is not None
    assert stored.history_since == since


def test_history_cannot_start_after_the_binding(populated: Engine) -> None:
    with pytest.raises(InvalidRegistryInput, match="after the binding's start") as caught:
        _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=T0 + timedelta(seconds=1))
    assert caught.value.field == "history_since"


def test_history_never_reaches_into_another_patients_pairing(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-2", T0 - 40 * DAY)
    with session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE, T0 - 10 * DAY)
    with pytest.raises(InvalidRegistryInput, match="another patient ended") as caught:
        _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=T0 - 11 * DAY)
    assert caught.value.field == "history_since"
    bound = _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=T0 - 10 * DAY)
    assert bound.pairing.history_since == T0 - 10 * DAY


def test_binding_again_with_another_history_changes_only_the_history(populated: Engine) -> None:
    first = _bind(populated, DEVICE, "gw-1", "p-1", T0)
    again = _bind(populated, DEVICE, "gw-1", "p-1", T0 + DAY, history_since=T0 - 7 * DAY)
    assert not again.created
    assert again.history_changed
    assert again.pairing.valid_from == first.pairing.valid_from
    assert again.pairing.history_since == T0 - 7 * DAY
    same = _bind(populated, DEVICE, "gw-1", "p-1", T0 + DAY, history_since=T0 - 7 * DAY)
    assert not same.history_changed
    with pytest.raises(InvalidRegistryInput) as caught:
        _bind(populated, DEVICE, "gw-1", "p-1", T0 + DAY, history_since=T0 + DAY)
    assert caught.value.field == "history_since"
    with session_scope(populated, write=False) as session:
        history = DeviceRepository(session).history(DEVICE)
    assert [(p.valid_from, p.history_since) for p in history] == [(T0, T0 - 7 * DAY)]


def test_a_gateway_swap_keeps_the_history_decision(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=T0 - 30 * DAY)
    moved = _bind(populated, DEVICE, "gw-2", "p-1", T0 + DAY)
    assert moved.pairing.history_since == T0 - 30 * DAY
    assert moved.closed is not None
    assert moved.closed.history_since == T0 - 30 * DAY
    moved_again = _bind(populated, DEVICE, "gw-1", "p-1", T0 + 2 * DAY, history_since=T0)
    assert moved_again.pairing.history_since == T0


def test_a_naive_history_time_is_refused(populated: Engine) -> None:
    with pytest.raises(InvalidRegistryInput, match="naive") as caught:
        _bind(populated, DEVICE, "gw-1", "p-1", T0, history_since=datetime(2026, 2, 1))
    assert caught.value.field == "history_since"


def test_a_naive_time_is_refused(populated: Engine) -> None:
    with pytest.raises(InvalidRegistryInput, match="naive") as caught:
        _bind(populated, DEVICE, "gw-1", "p-1", datetime(2026, 3, 1, 8, 0))
    assert caught.value.field == "at"


def test_unbinding_a_device_that_is_not_bound_is_refused(populated: Engine) -> None:
    with pytest.raises(NotFound) as caught, session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE)
    assert caught.value.entity == "device"
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    with session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE, T0 + DAY)
    with pytest.raises(NotFound, match="is not bound"), session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE, T0 + 2 * DAY)


def test_unbinding_must_come_after_the_start(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)
    with pytest.raises(InvalidRegistryInput) as caught, session_scope(populated) as session:
        DeviceRepository(session).unbind(DEVICE, T0)
    assert caught.value.field == "at"


def test_pairings_list_current_ones_by_device(populated: Engine) -> None:
    _bind(populated, "Acme-Cuff-2", "gw-2", "p-2", T0)
    _bind(populated, "Acme-Cuff-1", "gw-1", "p-1", T0)
    _bind(populated, "Acme-Scale-1", "gw-1", "p-1", T0)
    with session_scope(populated) as session:
        DeviceRepository(session).unbind("Acme-Scale-1", T0 + DAY)
    with session_scope(populated, write=False) as session:
        devices = DeviceRepository(session)
        assert [p.device_id for p in devices.pairings()] == ["Acme-Cuff-1", "Acme-Cuff-2"]
        assert [p.device_id for p in devices.pairings(gateway_id="gw-1")] == ["Acme-Cuff-1"]
        assert [p.device_id for p in devices.pairings(include_history=True)] == [
            "Acme-Cuff-1",
            "Acme-Cuff-2",
            "Acme-Scale-1",
        ]


def test_a_refused_bind_leaves_nothing_behind(populated: Engine) -> None:
    _bind(populated, DEVICE, "gw-1", "p-1", T0)

    def bind_two_in_one_transaction() -> None:
        with session_scope(populated) as session:
            DeviceRepository(session).bind("Acme-Cuff-9", "gw-1", "p-1", T0)
            DeviceRepository(session).bind(DEVICE, "gw-1", "p-2", T0 + DAY)

    with pytest.raises(DeviceAlreadyBound):
        bind_two_in_one_transaction()
    with session_scope(populated, write=False) as session, pytest.raises(NotFound):
        DeviceRepository(session).get("Acme-Cuff-9")


def test_concurrent_binds_of_one_device_let_exactly_one_win(populated: Engine) -> None:
    outcomes: list[tuple[str, str]] = []
    barrier = threading.Barrier(4)

    def bind(patient: str) -> None:
        barrier.wait()
        try:
            _bind(populated, DEVICE, "gw-1", patient, T0)
            outcomes.append((patient, "bound"))
        except RegistryError as error:
            outcomes.append((patient, type(error).__name__))

    threads = [threading.Thread(target=bind, args=(p,)) for p in ("p-1", "p-2", "p-1", "p-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with session_scope(populated, write=False) as session:
        history = DeviceRepository(session).history(DEVICE)
    assert len(history) == 1
    winner = history[0].patient_id
    assert len(outcomes) == 4
    for patient, outcome in outcomes:
        if patient == winner:
            # Bound, found bound the same way, or lost the race at the unique index.
            assert outcome in ("bound", "AlreadyExists")
        else:
            assert outcome in ("DeviceAlreadyBound", "AlreadyExists")
    assert "bound" in {outcome for _, outcome in outcomes}


def test_the_reserved_names_are_the_service_users_of_the_shipped_acl() -> None:
    acl = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"
    users = {line.split()[1] for line in acl.read_text().splitlines() if line.startswith("user ")}
    assert users == set(SERVICE_IDENTITIES)
    assert all(is_reserved_gateway_id(user) for user in users)
