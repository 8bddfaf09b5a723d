"""Device profiles: every shipped file validates, and a broken one names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_drivers import available_drivers, load_driver
from device_drivers.gatt import uuids
from device_drivers.profiles import (
    BleTransportSettings,
    DeviceProfile,
    ProfileError,
    RacpOperator,
    SerialTransportSettings,
    default_profile_directory,
    find_profile,
    load_profile,
    load_profiles,
)
from device_drivers.simulators.ble_home import SIMULATORS
from readings.model import Kind
from readings.units import Unit

SHIPPED = load_profiles()

GOOD_PROFILE = """\
manufacturer = "Acme"
model = "Glucose One"
driver = "ble_glucose"
kinds = ["glucose"]

[transport]
kind = "ble"
service_uuids = ["1808"]
name_patterns = ["Acme [0-9]{4}"]

[units]
glucose = "mmol/L"

[quirks]
racp_operators = ["all", "last"]

[simulator]
kind = "ble_glucose_meter"
serial = "A1"
local_name = "Acme 0001"
"""


def write(tmp_path: Path, text: str, name: str = "acme_glucose_one.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("profile", SHIPPED, ids=lambda profile: profile.profile_id)
def test_every_shipped_profile_validates_and_names_a_loadable_driver(
    profile: DeviceProfile,
) -> None:
    assert load_profile(Path(default_profile_directory(), f"{profile.profile_id}.toml")) == profile
    assert profile.driver in available_drivers()
    assert isinstance(load_driver(profile.driver), type)
    assert profile.simulator is not None, "every model can be simulated for the demo"


def test_every_profile_of_the_issue_is_shipped() -> None:
    ble_kinds = {kind for p in SHIPPED if p.is_ble for kind in p.kinds}
    assert ble_kinds == {
        Kind.GLUCOSE,
        Kind.CGM_GLUCOSE,
        Kind.BLOOD_PRESSURE,
        Kind.HEART_RATE,
        Kind.WEIGHT,
        Kind.BODY_TEMPERATURE,
        Kind.SPO2,
    }
    serial = {(p.manufacturer, p.model) for p in SHIPPED if not p.is_ble}
    assert serial == {("LifeScan", "OneTouch Ultra 2"), ("Bayer", "Contour USB")}
    onetouch = find_profile("lifescan_onetouch_ultra2")
    assert isinstance(onetouch.transport, SerialTransportSettings)
    line = onetouch.transport
    assert (line.baud, line.bytesize, line.parity, line.stopbits) == (9600, 8, "N", 1)


@pytest.mark.parametrize(
    "profile", [p for p in SHIPPED if p.is_ble], ids=lambda profile: profile.profile_id
)
def test_every_ble_profile_has_a_simulator_that_its_scan_recognises(
    profile: DeviceProfile,
) -> None:
    assert profile.simulator is not None
    assert profile.simulator.kind in SIMULATORS
    assert isinstance(profile.transport, BleTransportSettings)
    name = profile.simulator.local_name
    matching = [
        p.profile_id
        for p in SHIPPED
        if p.matches_advertisement(name, profile.transport.service_uuids)
    ]
    assert matching == [profile.profile_id]


def test_uuids_and_units_are_normalised(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD_PROFILE))
    assert profile.profile_id == "acme_glucose_one"
    assert isinstance(profile.transport, BleTransportSettings)
    assert profile.transport.service_uuids == (uuids.GLUCOSE_SERVICE,)
    assert profile.units == {Kind.GLUCOSE: Unit.MMOL_PER_L}
    assert profile.quirks.racp_operators == {RacpOperator.ALL, RacpOperator.LAST}


@pytest.mark.parametrize(
    ("name", "services", "expected"),
    [
        ("Acme 0042", [uuids.GLUCOSE_SERVICE], True),
        ("Acme 0042", ["1808"], True),
        ("Acme 42", [uuids.GLUCOSE_SERVICE], False),
        (None, [uuids.GLUCOSE_SERVICE], False),
        ("Acme 0042", [uuids.HEART_RATE_SERVICE], False),
    ],
)
def test_matches_advertisement_needs_service_and_name(
    tmp_path: Path, name: str | None, services: list[str], expected: bool
) -> None:
    profile = load_profile(write(tmp_path, GOOD_PROFILE))
    assert profile.matches_advertisement(name, services) is expected


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            ('service_uuids = ["1808"]', 'service_uuids = ["not-a-uuid"]'),
            "transport.service_uuids",
            "not a UUID",
        ),
        (
            ('name_patterns = ["Acme [0-9]{4}"]', 'name_patterns = ["Acme [0-9"]'),
            "transport.name_patterns",
            "not a regular expression",
        ),
        (('glucose = "mmol/L"', 'glucose = "mmHg"'), "units.glucose", "Input should be"),
        (('glucose = "mmol/L"', 'glucose = "mm[Hg]"'), "units", "not a unit of glucose"),
        (
            ('racp_operators = ["all", "last"]', 'racp_operators = ["all", "newest"]'),
            "quirks.racp_operators.1",
            "Input should be",
        ),
        (
            ("[quirks]", "[quirks]\nclock_setable = true"),
            "quirks.clock_setable",
            "Extra inputs are not permitted",
        ),
        (
            ('driver = "ble_glucose"', 'driver = "ble_glucometer"'),
            "driver",
            "no driver named 'ble_glucometer'",
        ),
        (('kinds = ["glucose"]', "kinds = []"), "kinds", "at least 1"),
        (
            ('local_name = "Acme 0001"', 'local_name = "Other 0001"'),
            "simulator",
            "does not match transport.name_patterns",
        ),
        (('manufacturer = "Acme"\n', ""), "manufacturer", "Field required"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_broken_profile_names_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, words: str
) -> None:
    old, new = change
    assert old in GOOD_PROFILE
    path = write(tmp_path, GOOD_PROFILE.replace(old, new, 1))
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert raised.value.key == key
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: ") or f"acme_glucose_one.toml: {key}: " in message
    assert words in message


SERIAL_PROFILE = """\
manufacturer = "Acme"
model = "Serial One"
driver = "onetouch_ultra2"
kinds = ["glucose"]

[transport]
kind = "serial"
baud = 9600
read_timeout_seconds = 3.0
write_timeout_seconds = 1.0
"""


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("baud = 9600", "baud = -1", "transport.baud"),
        ("baud = 9600", "baud = 9600\nstopbits = 3", "transport.stopbits"),
        ("baud = 9600", 'baud = 9600\nparity = "X"', "transport.parity"),
        ("baud = 9600", 'baud = 9600\nusb_ids = ["PL2303"]', "transport.usb_ids"),
        ('kind = "serial"', 'kind = "usb"', "transport"),
    ],
)
def test_serial_line_settings_are_checked(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = write(tmp_path, SERIAL_PROFILE.replace(old, new, 1), "acme_serial.toml")
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert raised.value.key == key
    assert f"acme_serial.toml: {key}: " in str(raised.value)


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    text = SERIAL_PROFILE.replace("baud = 9600", "baud = 0").replace('model = "Serial One"', "")
    with pytest.raises(ProfileError) as raised:
        load_profile(write(tmp_path, text, "acme_serial.toml"))
    assert {problem.split(":")[0] for problem in raised.value.problems} == {
        "model",
        "transport.baud",
    }


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"acme_glucose_one\.toml: not valid TOML"):
        load_profile(write(tmp_path, 'manufacturer = "Acme'))
    with pytest.raises(ProfileError, match=r"missing\.toml: cannot read"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="profile_id: set from the file name"):
        load_profile(write(tmp_path, 'profile_id = "x"\n' + GOOD_PROFILE))
    write(tmp_path, GOOD_PROFILE)
    with pytest.raises(ProfileError, match="no such profile; known: acme_glucose_one"):
        find_profile("nonexistent", tmp_path)


def test_load_profiles_reads_a_folder_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, GOOD_PROFILE, "b_meter.toml")
    write(tmp_path, GOOD_PROFILE, "a_meter.toml")
    (tmp_path / "notes.txt").write_text("not a profile")
    (tmp_path / "gateway.example.toml").write_text('gateway_id = "gw-1"\n')
    assert [p.profile_id for p in load_profiles(tmp_path)] == ["a_meter", "b_meter"]
