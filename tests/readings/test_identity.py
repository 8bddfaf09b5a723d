"""Reading identity: deterministic, and distinct for distinct records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readings.identity import (
    READING_ID_NAMESPACE,
    _uuid5,
    device_identity,
    reading_id,
)

RECEIVED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DEVICE_TIME = datetime(2026, 11, 23, 16, 0)


def _id(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "device_id": "Roche-Accu_Chek_Guide-92310000123",
        "kind": "glucose",
        "seq": 42,
        "device_time": DEVICE_TIME,
        "received_at": RECEIVED,
    }
    arguments.update(overrides)
    return reading_id(**arguments)  # type: ignore[arg-type]


def test_same_record_read_twice_gives_the_same_id() -> None:
    # A re-download happens later: the gateway's receipt time differs, the id must not.
    assert _id() == _id(received_at=RECEIVED + timedelta(days=3))


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "Roche-Accu_Chek_Guide-92310000124"},
        {"kind": "cgm_glucose"},
        {"seq": 43},
        {"device_time": DEVICE_TIME + timedelta(minutes=1)},
        # a meter whose memory was cleared reuses sequence 42 for a new record
        {"device_time": DEVICE_TIME + timedelta(days=30)},
    ],
)
def test_different_records_get_different_ids(change: dict[str, object]) -> None:
    assert _id(**change) != _id()


def test_streaming_readings_are_keyed_by_receipt_time() -> None:
    first = _id(seq=None, device_time=None)
    assert first == _id(seq=None, device_time=None)
    assert first != _id(seq=None, device_time=None, received_at=RECEIVED + timedelta(seconds=1))


@given(
    records=st.sets(
        st.tuples(st.integers(0, 65535), st.integers(0, 10**8)), min_size=2, max_size=200
    )
)
def test_ids_are_unique_across_many_records(records: set[tuple[int, int]]) -> None:
    ids = {
        _id(seq=seq, device_time=DEVICE_TIME + timedelta(seconds=offset)) for seq, offset in records
    }
    assert len(ids) == len(records)


@given(name=st.text())
def test_fast_uuid5_equals_the_standard_library(name: str) -> None:
    assert _uuid5(name) == str(uuid.uuid5(READING_ID_NAMESPACE, name))


def test_device_identity_is_manufacturer_model_serial() -> None:
    assert device_identity("Roche", "Accu-Chek Guide", "92310000123") == (
        "Roche-Accu_Chek_Guide-92310000123"
    )
    assert device_identity(" OMRON ", "HEM-7361T", "2003\x00") == "OMRON-HEM_7361T-2003"


def test_device_without_serial_has_no_identity() -> None:
    with pytest.raises(ValueError, match="serial"):
        device_identity("Roche", "Guide", "  ")
