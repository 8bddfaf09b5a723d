"""What docs/wire-protocol.md promises about duplicates, checked where it is decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.stores import open_store
from readings.codec import decode_readings_partial, encode_envelope
from readings.model import GlucoseValues, Reading, new_reading
from readings.units import Unit

NOW = datetime.now(UTC).replace(microsecond=0)


def _glucose(seq: int) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=5.5),
        source_unit=Unit.MMOL_PER_L,
        measured_at=NOW - timedelta(hours=1),
        device_time=(NOW - timedelta(hours=1)).replace(tzinfo=None),
        received_at=NOW,
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=seq,
    )


def test_one_id_twice_in_an_envelope_is_allowed() -> None:
    reading = _glucose(42)
    payload = encode_envelope("gw-0001", NOW, [reading, reading, _glucose(43)])
    decoded = decode_readings_partial(payload)
    assert decoded.rejected == ()
    assert [r.id for r in decoded.readings] == [reading.id, reading.id, _glucose(43).id]


def test_one_id_written_twice_is_stored_once(tmp_path: Path) -> None:
    reading = _glucose(42)
    store = open_store(f"sqlite:///{tmp_path / 'readings.db'}")
    try:
        first = store.write([reading, reading])
        again = store.write([reading])
        assert set(first.stored) == set(again.stored) == {reading.id}
        assert store.ids() == {reading.id}
        assert store.count(patient_id="patient-0001") == 1
    finally:
        store.close()
