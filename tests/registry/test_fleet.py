"""Fleet state contract (SQLite and PostgreSQL): statuses and "offline since", the event log
stored once per event, device battery and errors, pairing windows and the bindings they
allow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from readings.codec import (
    DeviceStatus,
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
)
from registry.db import session_scope
from registry.errors import InvalidRegistryInput, NotFound
from registry.fleet import (
    PAIRED_GRACE_SECONDS,
    FleetRepository,
    GatewayStatus,
    PairingState,
    next_gateway_status,
)
from registry.fleet_models import GatewayEventRow
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0

GW = "gw-0001"
CUFF = "Omron-HEM_7600T-20250001"


def online(at=T0, **fields: object) -> StatusMessage:
    return StatusMessage(gateway_id=GW, state=GatewayState.ONLINE, at=at, **fields)  # type: ignore[arg-type]


def offline(at=T0) -> StatusMessage:
    return StatusMessage(gateway_id=GW, state=GatewayState.OFFLINE, at=at, software_version="1.2")


# -- the pure rules of "since" ----------------------------------------------------------


def test_a_change_seen_live_is_dated_by_the_listener_not_the_gateway() -> None:
    first = next_gateway_status(None, online(queue_depth=4), received_at=T0, retained=False)
    assert (first.state, first.since, first.since_exact, first.last_seen_at) == (
        GatewayState.ONLINE,
        T0,
        True,
        T0,
    )
    later = T0 + timedelta(minutes=5)
    # A will's ``at`` is when the gateway connected, long before it vanished.
    gone = next_gateway_status(
        first, offline(at=T0 - timedelta(hours=3)), received_at=later, retained=False
    )
    assert (gone.state, gone.since, gone.since_exact) == (GatewayState.OFFLINE, later, True)
    assert gone.last_seen_at == T0
    assert gone.queue_depth == 4  # what was waiting when last heard


def test_the_same_state_again_keeps_since_and_moves_last_seen() -> None:
    first = next_gateway_status(None, online(), received_at=T0, retained=False)
    again = next_gateway_status(
        first, online(queue_depth=0), received_at=T0 + timedelta(minutes=1), retained=True
    )
    assert again.since == T0
    assert again.since_exact
    assert again.last_seen_at == T0 + timedelta(minutes=1)
    assert again.queue_depth == 0


def test_a_change_found_retained_is_dated_by_what_is_known_and_marked_inexact() -> None:
    seen: GatewayStatus = next_gateway_status(None, online(), received_at=T0, retained=False)
    found = next_gateway_status(
        seen,
        offline(at=T0 - timedelta(hours=1)),
        received_at=T0 + timedelta(hours=6),
        retained=True,
    )
    assert (found.since, found.since_exact) == (T0, False)  # last heard beats the will's at
    fresh = next_gateway_status(
        None,
        offline(at=T0 - timedelta(hours=1)),
        received_at=T0 + timedelta(hours=6),
        retained=True,
    )
    assert (fresh.since, fresh.since_exact) == (T0 - timedelta(hours=1), False)


# -- the repository ------------------------------------------------------------------------


@pytest.fixture
def seeded(engine: Engine, clock: ManualClock) -> Engine:
    with session_scope(engine) as session:
        GatewayRepository(session, clock=clock).add(GW)
        GatewayRepository(session, clock=clock).add("gw-0002")
        PatientRepository(session, clock=clock).add("p-wang")
        PatientRepository(session, clock=clock).add("p-li")
    return engine


def test_status_and_device_status_are_stored_and_replaced(
    seeded: Engine, clock: ManualClock
) -> None:
    device = DeviceStatus(device_id=CUFF, state="idle", battery_percent=80, last_contact=T0)
    with session_scope(seeded) as session:
        FleetRepository(session, clock=clock).record_status(
            online(queue_depth=7, software_version="1.2", devices=[device]), received_at=T0
        )
    later = T0 + timedelta(minutes=10)
    with session_scope(seeded) as session:
        FleetRepository(session, clock=clock).record_status(offline(), received_at=later)
    with session_scope(seeded, write=False) as session:
        fleet = FleetRepository(session, clock=clock)
        status = fleet.gateway_status(GW)
        devices = fleet.device_statuses([CUFF, "Nobody-X-1"])
    assert status is not None
    assert (status.state, status.since, status.last_seen_at) == (GatewayState.OFFLINE, later, T0)
    assert (status.queue_depth, status.software_version) == (7, "1.2")
    assert set(devices) == {CUFF}
    assert (devices[CUFF].battery_percent, devices[CUFF].state) == (80, "idle")


def test_a_status_of_an_unknown_gateway_is_refused(seeded: Engine, clock: ManualClock) -> None:
    message = StatusMessage(gateway_id="gw-9999", state=GatewayState.ONLINE, at=T0)
    with pytest.raises(NotFound), session_scope(seeded) as session:
        FleetRepository(session, clock=clock).record_status(message, received_at=T0)


def _event(kind: EventType, **detail: str | int | float | bool) -> EventMessage:
    return EventMessage(gateway_id=GW, at=T0, event=kind, device_id=CUFF, detail=detail)


def test_an_event_delivered_twice_is_stored_once(seeded: Engine, clock: ManualClock) -> None:
    outcomes = []
    for _ in range(2):
        with session_scope(seeded) as session:
            outcomes.append(
                FleetRepository(session, clock=clock).record_event(
                    _event(EventType.CLOCK_CORRECTED, offset_seconds=40), received_at=T0
                )
            )
    assert [o.stored for o in outcomes] == [True, False]
    with session_scope(seeded, write=False) as session:
        assert session.scalar(select(func.count()).select_from(GatewayEventRow)) == 1
        (stored,) = FleetRepository(session, clock=clock).events(GW)
    assert (stored.event, stored.device_id, stored.detail) == (
        "clock_corrected",
        CUFF,
        {"offset_seconds": 40},
    )


def test_battery_low_and_device_error_reach_the_device_status(
    seeded: Engine, clock: ManualClock
) -> None:
    with session_scope(seeded) as session:
        fleet = FleetRepository(session, clock=clock)
        fleet.record_event(_event(EventType.BATTERY_LOW, battery_percent=12), received_at=T0)
        fleet.record_event(
            _event(EventType.DEVICE_ERROR, reason="TimeoutError", circuit="open"), received_at=T0
        )
    with session_scope(seeded, write=False) as session:
        device = FleetRepository(session, clock=clock).device_statuses([CUFF])[CUFF]
    assert (device.battery_percent, device.battery_low_at) == (12, T0)
    assert (device.last_error, device.last_error_at) == ("TimeoutError", T0)


def _paired(patient_id: str = "p-wang") -> EventMessage:
    return EventMessage(
        gateway_id=GW,
        at=T0,
        event=EventType.PAIRED,
        device_id=CUFF,
        detail={
            "patient_id": patient_id,
            "profile": "omron-hem-7600t",
            "time_zone": "Asia/Shanghai",
        },
    )


def test_a_paired_event_inside_a_requested_window_binds_the_device(
    seeded: Engine, clock: ManualClock
) -> None:
    with session_scope(seeded) as session:
        request = FleetRepository(session, clock=clock).open_pairing(
            "p-wang", GW, requested_by="nurse.liu", window_seconds=120
        )
    assert request.state is PairingState.PENDING
    clock.advance(seconds=60)
    with session_scope(seeded) as session:
        outcome = FleetRepository(session, clock=clock).record_event(_paired(), received_at=clock())
    assert outcome.bound_request is not None
    assert outcome.bound_request.state is PairingState.PAIRED
    with session_scope(seeded, write=False) as session:
        pairing = DeviceRepository(session).current_pairing(CUFF)
        stored = FleetRepository(session, clock=clock).pairing_request(request.id)
    assert pairing is not None
    assert (pairing.patient_id, pairing.gateway_id) == ("p-wang", GW)
    assert (stored.state, stored.device_id) == (PairingState.PAIRED, CUFF)


def test_a_paired_event_nobody_asked_for_binds_nothing(seeded: Engine, clock: ManualClock) -> None:
    with session_scope(seeded) as session:
        fleet = FleetRepository(session, clock=clock)
        # A window for another patient on the same gateway does not count.
        fleet.open_pairing("p-li", GW, requested_by="dr.chen", window_seconds=120)
        outcome = fleet.record_event(_paired("p-wang"), received_at=clock())
    assert outcome.unrequested_pairing
    assert outcome.bound_request is None
    with session_scope(seeded, write=False) as session:
        assert DeviceRepository(session).current_pairing(CUFF) is None


def test_a_window_past_its_grace_times_out_and_binds_nothing(
    seeded: Engine, clock: ManualClock
) -> None:
    with session_scope(seeded) as session:
        request = FleetRepository(session, clock=clock).open_pairing(
            "p-wang", GW, requested_by="nurse.liu", window_seconds=60
        )
    clock.advance(seconds=60 + PAIRED_GRACE_SECONDS + 1)
    with session_scope(seeded) as session:
        fleet = FleetRepository(session, clock=clock)
        outcome = fleet.record_event(_paired(), received_at=clock())
        assert fleet.pairing_request(request.id).state is PairingState.TIMEOUT
    assert outcome.unrequested_pairing
    with session_scope(seeded, write=False) as session:
        assert DeviceRepository(session).current_pairing(CUFF) is None


def test_a_device_of_another_patient_fails_the_request(seeded: Engine, clock: ManualClock) -> None:
    with session_scope(seeded) as session:
        DeviceRepository(session, clock=clock).bind(CUFF, "gw-0002", "p-li")
        request = FleetRepository(session, clock=clock).open_pairing(
            "p-wang", GW, requested_by="nurse.liu", window_seconds=60
        )
    clock.advance(seconds=5)
    with session_scope(seeded) as session:
        FleetRepository(session, clock=clock).record_event(_paired(), received_at=clock())
    with session_scope(seeded, write=False) as session:
        stored = FleetRepository(session, clock=clock).pairing_request(request.id)
        pairing = DeviceRepository(session).current_pairing(CUFF)
    assert stored.state is PairingState.FAILED
    assert stored.outcome is not None
    assert "another patient" in stored.outcome
    assert pairing is not None
    assert pairing.patient_id == "p-li"


def test_a_window_longer_than_the_contract_allows_is_refused(
    seeded: Engine, clock: ManualClock
) -> None:
    with pytest.raises(InvalidRegistryInput), session_scope(seeded) as session:
        FleetRepository(session, clock=clock).open_pairing(
            "p-wang", GW, requested_by="nurse.liu", window_seconds=901
        )
