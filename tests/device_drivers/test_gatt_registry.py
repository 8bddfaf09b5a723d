"""``decode_characteristic`` and the ``PARSERS`` registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.errors import DriverError, UnsupportedCharacteristic
from device_drivers.gatt import PARSERS, decode_characteristic, uuids
from device_drivers.measurement import Disposition, Measurement
from readings.model import new_reading

RECEIVED_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MEASUREMENT_CHARACTERISTICS = {
    uuids.GLUCOSE_MEASUREMENT,
    uuids.CGM_MEASUREMENT,
    uuids.BLOOD_PRESSURE_MEASUREMENT,
    uuids.HEART_RATE_MEASUREMENT,
    uuids.TEMPERATURE_MEASUREMENT,
    uuids.WEIGHT_MEASUREMENT,
    uuids.PLX_SPOT_CHECK_MEASUREMENT,
    uuids.PLX_CONTINUOUS_MEASUREMENT,
}


def test_every_characteristic_of_the_issue_is_registered() -> None:
    required = MEASUREMENT_CHARACTERISTICS | {
        uuids.GLUCOSE_MEASUREMENT_CONTEXT,
        uuids.GLUCOSE_FEATURE,
        uuids.RECORD_ACCESS_CONTROL_POINT,
        uuids.INTERMEDIATE_CUFF_PRESSURE,
        uuids.CURRENT_TIME,
        uuids.DATE_TIME,
        uuids.MANUFACTURER_NAME_STRING,
        uuids.MODEL_NUMBER_STRING,
        uuids.SERIAL_NUMBER_STRING,
        uuids.SYSTEM_ID,
    }
    assert required <= set(PARSERS)
    assert all(uuid in uuids.CHARACTERISTIC_NAMES for uuid in PARSERS)


@pytest.mark.parametrize(
    "characteristic", ["2A35", "0x2A35", "00002a35-0000-1000-8000-00805f9b34fb"]
)
def test_uuid_forms(characteristic: str) -> None:
    [measurement] = decode_characteristic(characteristic, bytes.fromhex("00 78 00 50 00 5D 00"))
    assert isinstance(measurement, Measurement)


def test_unknown_characteristic_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedCharacteristic, match=r"0x2A99.*0x2A35"):
        decode_characteristic("2A99", b"\x00")


@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=40))
@settings(max_examples=400)
def test_arbitrary_bytes_into_every_parser(uuid: str, data: bytes) -> None:
    try:
        decoded = decode_characteristic(uuid, data)
    except DriverError:
        return
    if uuid in MEASUREMENT_CHARACTERISTICS:
        assert isinstance(decoded, list)
        document = [measurement.to_json_dict() for measurement in decoded]
    else:
        assert isinstance(decoded, dict)
        document = [decoded]
    # Every document is JSON with no NaN/Infinity (specials travel as names).
    json.dumps(document, allow_nan=False)


@given(st.sampled_from(sorted(MEASUREMENT_CHARACTERISTICS)), st.binary(max_size=40))
@settings(max_examples=400)
def test_every_patient_reading_obeys_the_contract(uuid: str, data: bytes) -> None:
    try:
        decoded = decode_characteristic(uuid, data)
    except DriverError:
        return
    assert isinstance(decoded, list)
    for measurement in decoded:
        if measurement.disposition is not Disposition.PATIENT_READING:
            continue
        assert measurement.values is not None
        # The gateway turns every patient reading into a contract Reading; none may be
        # refused (InvalidReading would be raised here).
        new_reading(
            values=measurement.values,
            source_unit=measurement.source_unit,
            measured_at=RECEIVED_AT,
            received_at=RECEIVED_AT,
            device_id="Omron-HEM_7361T-20031234",
            patient_id="patient-0001",
            gateway_id="gw-0001",
            device_time=measurement.device_time,
            context=measurement.context,
            flags=measurement.flags,
            seq=measurement.seq,
        )
