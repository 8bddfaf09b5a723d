"""The two framing rules every GATT parser follows (docs/devices.md, "GATT values").

1. A field the flags (or the characteristic) promise but the value lacks is a truncated
   value: ``InvalidFrame`` naming that field, never a reading without it.
2. Bytes after the last defined field are ignored and counted as ``trailing_bytes``: in
   each measurement's context, or in the named fields of the other characteristics.

One row per parser; a parser added to ``PARSERS`` without rows here fails
:func:`test_every_parser_has_a_row_in_both_tables`.
"""

from __future__ import annotations

from typing import Any

import pytest

from device_drivers.errors import InvalidFrame
from device_drivers.gatt import PARSERS, decode_characteristic, uuids
from device_drivers.measurement import Measurement

TIME = "E7070A1E081E00"  # Date Time 2023-10-30 08:30:00
EXTRA = bytes.fromhex("00ABCD")  # three bytes a newer firmware might append

# characteristic -> a complete value (every field its flags promise is there).
COMPLETE: dict[str, str] = {
    "2A18": f"03 0100 {TIME} 1E00 64B0 11",  # offset 30 min, 100 mg/dL as kg/L, finger
    "2A34": "02 0500 01",  # meal: preprandial
    "2A51": "FF07",
    "2A52": "01 01",  # report all records
    "2AA8": "000000 95 FFFF",
    "2AAA": f"{TIME} 20 00",  # UTC+8, no DST
    "2A35": "1E8A00580078000000041114293B3C00012700",  # Nordic's cuff
    "2A36": "00 FF07 FF07 FF07",
    "2A49": "3F00",
    "2A37": "0E 48 1000",  # contact, 72 bpm, energy 16 kJ
    "2A38": "01",
    "2A1C": f"06 6E0100FF {TIME} 02",  # 36.6 °C, timestamp, body
    "2A1D": "02",
    "2A1E": "00 6E0100FF",
    "2A9D": f"0E 4C3A {TIME} 01 FA00 B406",  # 74.62 kg, user 1, BMI 25.0, 1.716 m
    "2A9E": "00000000",
    "2A5E": f"03 6200 4800 {TIME} 0000",  # SpO2 98 %, 72 bpm, timestamp, status
    "2A5F": "03 6200 4800 6100 4700 6000 4600",  # normal, fast and slow
    "2A60": "0300 0000 000000",  # status and device-status support fields
    "2A2B": f"{TIME} 01 80 01",
    "2A08": TIME,
    "2A23": "0102030405060708",
}

# (characteristic, value lacking a promised field, the field the error must name)
TRUNCATED: list[tuple[str, str, str]] = [
    ("2A18", f"01 0100 {TIME}", "time_offset"),
    ("2A18", f"02 0100 {TIME}", "glucose_concentration"),
    ("2A18", f"02 0100 {TIME} 64B0", "type_sample_location"),
    ("2A18", f"08 0100 {TIME}", "sensor_status_annunciation"),
    ("2A34", "80 0500", "extended_flags"),
    ("2A34", "01 0500 01", "carbohydrate"),
    ("2A34", "02 0500", "meal"),
    ("2A34", "04 0500", "tester_health"),
    ("2A34", "08 0500 1E00", "exercise_intensity"),
    ("2A34", "10 0500 01", "medication"),
    ("2A34", "40 0500", "hba1c"),
    ("2A51", "FF", "glucose_feature"),
    ("2A52", "01 03 01 05", "operand[0]"),  # "≥ sequence number" needs a uint16
    ("2A52", "06 00 01", "response_code"),
    ("2AA7", "06 01 6400 0500", "record[0].trend"),  # trend flag, Size without it
    ("2AA7", "06 80 6400 0500", "record[0].status"),
    ("2AA7", "06 00 6400 0500 08 03 6400 0500 0000", "record[1].quality"),
    ("2AA8", "000000 95 FF", "e2e_crc"),
    ("2AAA", f"{TIME} 20", "dst_offset"),
    ("2A35", "1E8A00580078000000041114293B3C000127", "measurement_status"),
    ("2A35", "1E8A0058007800", "time_stamp.year"),
    ("2A35", "048A0058007800", "pulse_rate"),
    ("2A35", "088A0058007800", "user_id"),
    ("2A36", "04 FF07 FF07 FF07", "pulse_rate"),
    ("2A49", "3F", "blood_pressure_feature"),
    ("2A37", "01 48", "heart_rate"),  # uint16 format
    ("2A37", "08 48", "energy_expended"),
    ("2A37", "10 48", "rr_interval[0]"),  # RR flag, no interval at all
    ("2A38", "", "body_sensor_location"),
    ("2A1C", "02 6E0100FF", "time_stamp.year"),
    ("2A1C", f"06 6E0100FF {TIME}", "temperature_type"),
    ("2A1D", "", "temperature_type"),
    ("2A1E", "04 6E0100FF", "temperature_type"),
    ("2A9D", "02 4C3A", "time_stamp.year"),
    ("2A9D", "04 4C3A", "user_id"),
    ("2A9D", "08 4C3A FA00", "height"),
    ("2A9E", "000000", "weight_scale_feature"),
    ("2A5E", "01 6200 4800", "timestamp.year"),
    ("2A5E", "02 6200 4800", "measurement_status"),
    ("2A5E", "04 6200 4800", "device_and_sensor_status"),
    ("2A5E", "08 6200 4800", "pulse_amplitude_index"),
    ("2A5F", "01 6200 4800", "spo2_fast"),
    ("2A5F", "02 6200 4800", "spo2_slow"),
    ("2A5F", "04 6200 4800", "measurement_status"),
    ("2A5F", "08 6200 4800", "device_and_sensor_status"),
    ("2A5F", "10 6200 4800", "pulse_amplitude_index"),
    ("2A60", "0100", "measurement_status"),
    ("2A60", "0200", "device_and_sensor_status"),
    ("2A2B", TIME + "01 80", "adjust_reason"),
    ("2A08", TIME[:-2], "date_time.seconds"),
    ("2A23", "01020304050607", "organizationally_unique_identifier"),
]

NO_TRAILING_BYTES: dict[str, str] = {
    "2AA7": "records are framed by their Size: bytes after one are the next record",
    **dict.fromkeys(
        ("2A29", "2A24", "2A25", "2A27", "2A26", "2A28"), "a DIS string fills the whole value"
    ),
}


def _short(uuid: str) -> str:
    return uuid[4:8].upper()


def test_every_parser_has_a_row_in_both_tables() -> None:
    shorts = {_short(uuid) for uuid in PARSERS}
    assert shorts == set(COMPLETE) | set(NO_TRAILING_BYTES)
    flagless = set(NO_TRAILING_BYTES) - {"2AA7"}  # strings: any length is whole
    assert shorts - flagless == {row[0] for row in TRUNCATED}


@pytest.mark.parametrize(("characteristic", "wire", "field"), TRUNCATED)
def test_a_promised_field_that_is_absent_is_a_truncated_value(
    characteristic: str, wire: str, field: str
) -> None:
    data = bytes.fromhex(wire)
    with pytest.raises(InvalidFrame) as caught:
        decode_characteristic(characteristic, data)
    assert caught.value.field == field
    assert caught.value.offset <= len(data)
    assert "truncated" in caught.value.reason


def _without_trailing(decoded: Any) -> Any:
    if isinstance(decoded, list):
        return [
            (m.kind, m.values, m.device_time, m.seq, m.flags, m.disposition, dict(m.context))
            for m in decoded
        ]
    return decoded


@pytest.mark.parametrize("characteristic", sorted(COMPLETE))
def test_bytes_after_the_last_field_are_ignored_and_counted(characteristic: str) -> None:
    data = bytes.fromhex(COMPLETE[characteristic])
    plain = decode_characteristic(characteristic, data)
    padded = decode_characteristic(characteristic, data + EXTRA)
    if isinstance(plain, list):
        assert plain, "a measurement characteristic decodes to at least one reading"
        assert all("trailing_bytes" not in m.context for m in plain)
        assert isinstance(padded, list)
        for measurement in padded:
            assert isinstance(measurement, Measurement)
            assert measurement.context["trailing_bytes"] == len(EXTRA)
        stripped = [
            (
                m.kind,
                m.values,
                m.device_time,
                m.seq,
                m.flags,
                m.disposition,
                {k: v for k, v in m.context.items() if k != "trailing_bytes"},
            )
            for m in padded
        ]
        assert stripped == _without_trailing(plain)
    else:
        assert "trailing_bytes" not in plain
        assert isinstance(padded, dict)
        assert padded == {**plain, "trailing_bytes": len(EXTRA)}


def test_cgm_bytes_after_a_record_are_a_record_not_trailing_bytes() -> None:
    record = bytes.fromhex("06 00 6400 0500")
    with pytest.raises(InvalidFrame) as caught:
        decode_characteristic(uuids.CGM_MEASUREMENT, record + EXTRA)
    assert (caught.value.field, caught.value.offset) == ("record[1].size", len(record))
