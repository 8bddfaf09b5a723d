"""Pairings: the store, the window, matching advertisements, identity read from the device,
and the ``vitalgate gateway`` pairing commands over simulated devices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bleak.backends.device import BLEDevice
from typer.testing import CliRunner

from device_drivers.base import DeviceInfo
from device_drivers.errors import DeviceTimeout
from device_drivers.profiles import load_profiles
from device_drivers.transports.ble import Advertisement
from gateway.errors import PairingError
from gateway.pairing import PairingStore, PairingWindow, match_advertisements, read_identity
from tests.fakes import ManualClock
from tests.gateway.scripted_driver import Contact, ScriptedDevice
from vitalgate.cli import app

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
METER = DeviceInfo(manufacturer="Roche", model="Accu-Chek Guide", serial="92310000123")
runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PairingStore]:
    with PairingStore(tmp_path / "pairings.db", clock=lambda: T0) as opened:
        yield opened


def bind(store: PairingStore, patient: str = "p-1", address: str = "C0:00:00:00:00:01") -> None:
    store.bind(
        METER,
        patient_id=patient,
        profile_id="roche_accu_chek_guide",
        address=address,
        time_zone="Asia/Shanghai",
    )


def test_a_pairing_binds_the_reported_identity(store: PairingStore) -> None:
    bind(store)
    pairing = store.get(METER.device_id)
    assert pairing is not None
    assert pairing.device_id == "Roche-Accu_Chek_Guide-92310000123"
    assert (pairing.patient_id, pairing.profile_id) == ("p-1", "roche_accu_chek_guide")
    assert pairing.paired_at == T0
    assert str(pairing.zone) == "Asia/Shanghai"
    assert store.patient_of(METER.device_id) == "p-1"
    assert store.patient_of("Other-Meter-1") is None
    assert [p.device_id for p in store.all()] == [METER.device_id]


def test_pairing_again_to_the_same_patient_updates_the_address(store: PairingStore) -> None:
    bind(store)
    bind(store, address="C0:00:00:00:00:02")
    [pairing] = store.all()
    assert pairing.address == "C0:00:00:00:00:02"


def test_a_device_of_another_patient_must_be_unpaired_first(store: PairingStore) -> None:
    bind(store)
    with pytest.raises(PairingError, match="paired to another patient") as caught:
        bind(store, patient="p-2")
    assert caught.value.device_id == METER.device_id
    assert store.patient_of(METER.device_id) == "p-1"
    assert store.unbind(METER.device_id) is not None
    assert store.unbind(METER.device_id) is None
    bind(store, patient="p-2")
    assert store.patient_of(METER.device_id) == "p-2"


def test_an_unknown_time_zone_is_refused(store: PairingStore) -> None:
    with pytest.raises(PairingError, match="time zone"):
        store.bind(METER, patient_id="p-1", profile_id="x", address="a", time_zone="Mars/Olympus")


def test_pairings_and_states_survive_a_restart(tmp_path: Path) -> None:
    with PairingStore(tmp_path / "pairings.db", clock=lambda: T0) as first:
        bind(first)
        first.record_state(METER.device_id, state="waiting", last_contact=T0, battery_percent=80)
    with PairingStore(tmp_path / "pairings.db", clock=lambda: T0) as second:
        assert second.patient_of(METER.device_id) == "p-1"
        state = second.states()[METER.device_id]
        assert (state.state, state.last_contact, state.battery_percent) == ("waiting", T0, 80)
        second.unbind(METER.device_id)
        assert second.states() == {}


def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "pairings.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(PairingError, match="schema version 99"):
        PairingStore(path, clock=lambda: T0)


def test_the_window_opens_filters_and_expires() -> None:
    clock = ManualClock(T0)
    window = PairingWindow(clock)
    assert window.current() is None
    opened = window.open(patient_id="p-1", seconds=120, profile_id="roche_accu_chek_guide")
    assert window.admits("roche_accu_chek_guide") is opened
    assert window.admits("omron_hem7361t") is None
    clock.now = T0 + timedelta(seconds=119)
    assert opened.remaining_seconds(clock.now) == 1.0
    assert window.current() is opened
    clock.now = T0 + timedelta(seconds=120)
    assert window.current() is None
    assert window.admits("roche_accu_chek_guide") is None


def test_reopening_replaces_and_closing_ends_the_window() -> None:
    window = PairingWindow(ManualClock(T0))
    first = window.open(patient_id="p-1", seconds=60)
    second = window.open(patient_id="p-2", seconds=60)
    assert window.current() is second is not first
    assert window.admits("any_profile") is second
    assert window.close() is second
    assert window.current() is None


@pytest.mark.parametrize("seconds", [0, 901, -5])
def test_a_window_is_short(seconds: int) -> None:
    with pytest.raises(PairingError, match="1 to 900 s"):
        PairingWindow(ManualClock(T0)).open(patient_id="p-1", seconds=seconds)


def _advertisement(
    address: str, name: str | None, services: tuple[str, ...], rssi: int
) -> Advertisement:
    return Advertisement(
        device=BLEDevice(address, name, None),
        local_name=name,
        service_uuids=services,
        rssi=rssi,
    )


GLUCOSE_SERVICE = "00001808-0000-1000-8000-00805f9b34fb"
BLOOD_PRESSURE_SERVICE = "00001810-0000-1000-8000-00805f9b34fb"


def test_advertisements_are_matched_to_models_strongest_first() -> None:
    profiles = load_profiles()
    heard = [
        _advertisement("C0:00:00:00:00:01", "meter+10000123", (GLUCOSE_SERVICE,), -80),
        _advertisement("C0:00:00:00:00:02", "meter+10000999", (GLUCOSE_SERVICE,), -50),
        _advertisement(
            "C0:00:00:00:00:03", "headphones", ("0000110b-0000-1000-8000-00805f9b34fb",), -40
        ),
        _advertisement("C0:00:00:00:00:04", "not-a-meter", (GLUCOSE_SERVICE,), -30),
    ]
    candidates = match_advertisements(heard, profiles)
    assert [c.address for c in candidates] == ["C0:00:00:00:00:02", "C0:00:00:00:00:01"]
    assert {c.profile.profile_id for c in candidates} == {"roche_accu_chek_guide"}
    assert match_advertisements(heard, profiles, profile_id="omron_hem7361t") == []


async def test_identity_is_read_from_the_device_and_the_link_closed() -> None:
    device = ScriptedDevice(info=METER, clock=None)
    link = device.link()
    assert await read_identity(link.driver) == METER
    assert link.driver.disconnected  # type: ignore[attr-defined]


async def test_a_device_that_does_not_answer_cannot_be_paired() -> None:
    device = ScriptedDevice(
        info=METER, clock=None, script=[Contact(connect=DeviceTimeout("silent"))]
    )
    with pytest.raises(PairingError, match="cannot read the device's identity"):
        await read_identity(device.link().driver)


# -- the commands --------------------------------------------------------------------------


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'gateway_id = "gw-cli"\ndata_dir = "{tmp_path / "data"}"\ndemo = true\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:1"\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.mark.integration
def test_pair_devices_and_unpair_commands_on_a_simulated_meter(tmp_path: Path) -> None:
    config = str(config_file(tmp_path))
    paired = runner.invoke(
        app,
        [
            "gateway",
            "pair",
            "--config",
            config,
            "--patient",
            "p-0042",
            "--profile",
            "roche_accu_chek_guide",
            "--simulate",
            "--time-zone",
            "Europe/Berlin",
        ],
    )
    assert paired.exit_code == 0, paired.output
    document = json.loads(paired.stdout)
    assert document["device_id"] == "Roche-Accu_Chek_Guide-92310000123"  # read from the device
    assert (document["patient_id"], document["time_zone"]) == ("p-0042", "Europe/Berlin")

    listed = runner.invoke(app, ["gateway", "devices", "--config", config, "--json"])
    assert listed.exit_code == 0, listed.output
    [device] = json.loads(listed.stdout)
    assert device["device_id"] == document["device_id"]
    assert device["state"] is None
    table = runner.invoke(app, ["gateway", "devices", "--config", config])
    assert "Devices of gateway gw-cli" in table.stdout
    assert "never" in table.stdout

    removed = runner.invoke(app, ["gateway", "unpair", document["device_id"], "--config", config])
    assert removed.exit_code == 0, removed.output
    again = runner.invoke(app, ["gateway", "unpair", document["device_id"], "--config", config])
    assert again.exit_code == 2
    assert "is not paired" in again.stderr


def test_a_bad_configuration_is_reported_with_its_key(tmp_path: Path) -> None:
    config = config_file(tmp_path, "keepalive_seconds = 0\n")
    result = runner.invoke(app, ["gateway", "devices", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}: mqtt.keepalive_seconds:" in result.stderr


def test_pair_refuses_an_unknown_profile_and_a_bad_patient(tmp_path: Path) -> None:
    config = str(config_file(tmp_path))
    unknown = runner.invoke(
        app, ["gateway", "pair", "--config", config, "--patient", "p-1", "--profile", "nope"]
    )
    assert unknown.exit_code == 2
    assert "no device profile 'nope'" in unknown.stderr
    bad = runner.invoke(app, ["gateway", "pair", "--config", config, "--patient", "p 1"])
    assert bad.exit_code == 2
    assert "--patient" in bad.stderr


@pytest.mark.integration
def test_pair_a_serial_meter_on_its_port(tmp_path: Path) -> None:
    from device_drivers.simulators.scenario import Scenario
    from device_drivers.simulators.serial_meters import start_onetouch_ultra2

    config = str(config_file(tmp_path))
    with start_onetouch_ultra2(Scenario(), serial_number="GMF600ABY") as meter:
        result = runner.invoke(
            app,
            [
                "gateway",
                "pair",
                "--config",
                config,
                "--patient",
                "p-7",
                "--profile",
                "lifescan_onetouch_ultra2",
                "--address",
                meter.port,
            ],
        )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["device_id"] == "LifeScan-OneTouch_Ultra_2-GMF600ABY"
    assert document["address"] == meter.port
    assert document["time_zone"] == "Asia/Shanghai"
