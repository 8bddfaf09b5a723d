"""The durable outbox: row states, identities, cursor transactions, quota, integrity, memory."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_drivers.base import RecordCursor
from gateway.errors import ConfigError, OutboxCorrupt, OutboxError, OutboxFull
from gateway.outbox import (
    STATE_PENDING,
    STATE_SENT,
    BatchBudget,
    SqliteOutbox,
    ack_timeout_seconds,
    is_clinical,
    runs_of,
)
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit
from tests.fakes import ManualClock
from tests.gateway.full_database import FullDatabase

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DEVICE = "Roche-Accu_Chek_Guide-92310000123"
STRAP = "Polar-H10-C0680226"
ACK_TIMEOUT = 10.0
UNLIMITED = 10**9


def glucose(seq: int, device_id: str = DEVICE) -> Reading:
    device_time = datetime(2026, 1, 1) + timedelta(minutes=seq)
    return new_reading(
        values=GlucoseValues(glucose=5.0 + seq % 30 / 10),
        source_unit=Unit.MMOL_PER_L,
        measured_at=device_time.replace(tzinfo=UTC),
        received_at=START,
        device_id=device_id,
        patient_id="patient-1",
        gateway_id="gw-1",
        device_time=device_time,
        seq=seq,
    )


def heart_rate(index: int) -> Reading:
    stamped = START + timedelta(milliseconds=index)
    return new_reading(
        values=HeartRateValues(heart_rate=70.0),
        source_unit=Unit.PER_MIN,
        measured_at=stamped,
        received_at=stamped,
        device_id=STRAP,
        patient_id="patient-1",
        gateway_id="gw-1",
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def outbox(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteOutbox]:
    box = SqliteOutbox(
        tmp_path / "outbox.db",
        quota_bytes=UNLIMITED,
        clock=clock,
        ack_timeout_seconds=ACK_TIMEOUT,
        max_ack_timeout_seconds=4 * ACK_TIMEOUT,
    )
    yield box
    box.close()


def states(path: Path) -> dict[str, tuple[str, int]]:
    """reading id -> (state, attempts), read through a second connection."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT reading_id, state, attempts FROM outbox_rows").fetchall()
    return {reading_id: (state, attempts) for reading_id, state, attempts in rows}


# -- adding ------------------------------------------------------------------------------


def test_added_readings_are_pending_and_duplicate_ids_are_ignored(outbox: SqliteOutbox) -> None:
    first = outbox.add([glucose(seq) for seq in range(10)])
    again = outbox.add([glucose(seq) for seq in range(5, 15)])

    assert (first.added, first.duplicates, first.refused_ids) == (10, 0, ())
    assert (again.added, again.duplicates) == (5, 5)
    assert outbox.stats().depth == 15
    assert set(states(outbox.path).values()) == {(STATE_PENDING, 0)}


def test_each_reading_is_stored_as_encoded_at_capture(outbox: SqliteOutbox) -> None:
    reading = glucose(1)
    outbox.add([reading])

    batch = outbox.begin_batch(10, UNLIMITED)

    assert batch is not None
    assert batch.reading_ids == (reading.id,)
    assert b'"glucose":5.1' in batch.encoded[0]
    assert reading.id.encode() in batch.encoded[0]


def test_cursor_is_committed_with_its_readings(outbox: SqliteOutbox) -> None:
    assert outbox.cursor(DEVICE) is None
    last = glucose(9)
    cursor = RecordCursor(last_seq=9, last_device_time=last.device_time)

    outbox.add([glucose(seq) for seq in range(10)], cursor=(DEVICE, cursor))

    assert outbox.cursor(DEVICE) == cursor
    assert outbox.cursor("Other-Meter-1") is None


def test_cursor_does_not_move_when_the_readings_are_refused(
    tmp_path: Path, clock: ManualClock
) -> None:
    # A call larger than SQLite's own page limit fails inside the transaction: the
    # readings and the cursor are rolled back together.
    with SqliteOutbox(
        tmp_path / "small.db", quota_bytes=64 * 1024, reserve_bytes=0, clock=clock
    ) as outbox:
        outbox.add([glucose(0)], cursor=(DEVICE, RecordCursor(last_seq=0)))
        huge = [glucose(seq) for seq in range(1, 6001)]

        with pytest.raises(OutboxFull) as raised:
            outbox.add(huge, cursor=(DEVICE, RecordCursor(last_seq=6000)))

        assert raised.value.refused == 6000
        assert outbox.cursor(DEVICE) == RecordCursor(last_seq=0)
        assert outbox.stats().depth == 1
    assert set(states(tmp_path / "small.db")) == {glucose(0).id}


# -- batches and states ----------------------------------------------------------------


def test_batches_are_oldest_first_and_never_handed_out_twice(outbox: SqliteOutbox) -> None:
    readings = [glucose(seq) for seq in range(25)]
    outbox.add(readings)

    first = outbox.begin_batch(10, UNLIMITED)
    second = outbox.begin_batch(10, UNLIMITED)
    third = outbox.begin_batch(10, UNLIMITED)

    assert first is not None
    assert second is not None
    assert third is not None
    ids = [r.id for r in readings]
    assert first.reading_ids == tuple(ids[:10])
    assert second.reading_ids == tuple(ids[10:20])
    assert third.reading_ids == tuple(ids[20:])
    assert outbox.begin_batch(10, UNLIMITED) is None


def test_requeued_rows_come_back_first_and_in_order(outbox: SqliteOutbox) -> None:
    readings = [glucose(seq) for seq in range(30)]
    outbox.add(readings)
    first = outbox.begin_batch(10, UNLIMITED)
    second = outbox.begin_batch(10, UNLIMITED)
    assert first is not None
    assert second is not None

    outbox.requeue(first)
    again = outbox.begin_batch(15, UNLIMITED)

    assert again is not None
    ids = [r.id for r in readings]
    # rows 0-9 again, then past the still-in-flight 10-19, on to 20-24
    assert again.reading_ids == tuple(ids[:10] + ids[20:25])


def test_sent_rows_wait_for_the_ack_then_are_republished_with_the_same_ids(
    outbox: SqliteOutbox, clock: ManualClock
) -> None:
    readings = [glucose(seq) for seq in range(5)]
    outbox.add(readings)
    batch = outbox.begin_batch(10, UNLIMITED)
    assert batch is not None

    outbox.mark_sent(batch)

    assert set(states(outbox.path).values()) == {(STATE_SENT, 1)}
    assert outbox.stats().depth == 5  # sent is not acknowledged
    clock.advance(ACK_TIMEOUT - 1)
    assert outbox.begin_batch(10, UNLIMITED) is None
    clock.advance(1)
    again = outbox.begin_batch(10, UNLIMITED)
    assert again is not None
    assert again.reading_ids == batch.reading_ids
    assert again.republished == 5
    assert outbox.begin_batch(10, UNLIMITED) is None  # in flight: not handed out twice


def test_ack_timeout_doubles_with_each_publish(outbox: SqliteOutbox, clock: ManualClock) -> None:
    outbox.add([glucose(1)])
    for expected_wait in (ACK_TIMEOUT, 2 * ACK_TIMEOUT, 4 * ACK_TIMEOUT, 4 * ACK_TIMEOUT):
        batch = outbox.begin_batch(1, UNLIMITED)
        assert batch is not None
        outbox.mark_sent(batch)
        clock.advance(expected_wait - 0.5)
        assert outbox.begin_batch(1, UNLIMITED) is None
        clock.advance(0.5)
    assert states(outbox.path)[glucose(1).id] == (STATE_SENT, 4)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 60.0), (2, 120.0), (3, 240.0), (4, 480.0), (5, 900.0), (40, 900.0)],
)
def test_ack_timeout_table(attempt: int, expected: float) -> None:
    assert ack_timeout_seconds(attempt, 60.0, 900.0) == expected


def test_ack_timeout_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        ack_timeout_seconds(0, 60.0, 900.0)


def test_acknowledge_deletes_exactly_the_named_rows(outbox: SqliteOutbox) -> None:
    readings = [glucose(seq) for seq in range(10)]
    outbox.add(readings)
    batch = outbox.begin_batch(10, UNLIMITED)
    assert batch is not None
    outbox.mark_sent(batch)

    deleted = outbox.acknowledge([r.id for r in readings[:4]] + ["not-an-id-we-have"])

    assert deleted == 4
    assert set(states(outbox.path)) == {r.id for r in readings[4:]}
    assert outbox.stats().depth == 6
    assert outbox.acknowledge([r.id for r in readings[:4]]) == 0


def test_an_ack_may_arrive_before_the_puback(outbox: SqliteOutbox) -> None:
    outbox.add([glucose(seq) for seq in range(3)])
    batch = outbox.begin_batch(10, UNLIMITED)
    assert batch is not None

    assert outbox.acknowledge(batch.reading_ids) == 3
    outbox.mark_sent(batch)

    assert outbox.stats().depth == 0
    assert outbox.begin_batch(10, UNLIMITED) is None


def test_rows_survive_a_restart_in_their_state(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(
        path, quota_bytes=UNLIMITED, clock=clock, ack_timeout_seconds=ACK_TIMEOUT
    ) as outbox:
        outbox.add([glucose(seq) for seq in range(6)])
        sent = outbox.begin_batch(3, UNLIMITED)
        in_flight = outbox.begin_batch(3, UNLIMITED)
        assert sent is not None
        assert in_flight is not None
        outbox.mark_sent(sent)

    with SqliteOutbox(
        path, quota_bytes=UNLIMITED, clock=clock, ack_timeout_seconds=ACK_TIMEOUT
    ) as reopened:
        assert reopened.stats().depth == 6
        # what was in flight at the "crash" is pending again; sent rows wait for their ack
        resumed = reopened.begin_batch(10, UNLIMITED)
        assert resumed is not None
        assert resumed.reading_ids == in_flight.reading_ids
        clock.advance(ACK_TIMEOUT)
        overdue = reopened.begin_batch(10, UNLIMITED)
        assert overdue is not None
        assert overdue.reading_ids == sent.reading_ids


def test_a_clock_stepping_back_does_not_strand_sent_rows(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(
        path, quota_bytes=UNLIMITED, clock=clock, ack_timeout_seconds=ACK_TIMEOUT
    ) as outbox:
        outbox.add([glucose(1)])
        batch = outbox.begin_batch(1, UNLIMITED)
        assert batch is not None
        outbox.mark_sent(batch)
    clock.advance(-86_400)  # the RTC lost a day

    with SqliteOutbox(
        path, quota_bytes=UNLIMITED, clock=clock, ack_timeout_seconds=ACK_TIMEOUT
    ) as reopened:
        again = reopened.begin_batch(1, UNLIMITED)
        assert again is not None
        assert again.reading_ids == batch.reading_ids


def test_batches_respect_count_and_byte_bounds(outbox: SqliteOutbox) -> None:
    outbox.add([glucose(seq) for seq in range(20)])
    one_size = len(outbox.begin_batch(1, UNLIMITED).encoded[0])  # type: ignore[union-attr]

    by_bytes = outbox.begin_batch(100, 3 * one_size + 2)
    by_count = outbox.begin_batch(4, UNLIMITED)

    assert by_bytes is not None
    assert by_count is not None
    assert len(by_bytes) == 3
    assert by_bytes.payload_bytes == 3 * one_size + 2
    assert len(by_count) == 4


@pytest.mark.parametrize(
    ("count", "joined", "sizes", "fitting"),
    [
        (0, 0, [10_000, 5], 1),  # the first reading always goes, whatever its size
        (0, 0, [50, 50, 50, 50], 3),  # 50 + 1 + 50 + 1 + 50 = 152; a fourth makes 203
        (1, 100, [99], 1),  # 100 + comma + 99 = 200: exactly the limit
        (1, 100, [100], 0),
        (9, 150, [1, 1], 1),  # the count bound
        (10, 150, [1], 0),
        (3, 152, [], 0),
    ],
)
def test_batch_budget(count: int, joined: int, sizes: list[int], fitting: int) -> None:
    assert BatchBudget(max_count=10, max_bytes=200).fits(count, joined, sizes) == fitting


def test_batch_budget_counts_the_commas() -> None:
    budget = BatchBudget(max_count=10, max_bytes=200)
    assert budget.joined(0, 0, [50, 50, 50]) == 152
    assert budget.joined(3, 152, [10]) == 163
    assert budget.joined(3, 152, []) == 152


@pytest.mark.parametrize(
    ("rowids", "attempts", "runs"),
    [
        ((), (), []),
        ((5, 6, 7), (0, 0, 0), [(5, 7, 0)]),
        ((7, 5, 6), (1, 1, 1), [(5, 7, 1)]),  # overdue rows come in retry order
        ((1, 2, 4, 5), (0, 0, 0, 0), [(1, 2, 0), (4, 5, 0)]),  # 3 was in another batch
        ((1, 2, 3), (2, 0, 0), [(1, 1, 2), (2, 3, 0)]),
    ],
)
def test_sent_rows_are_recorded_by_runs(
    rowids: tuple[int, ...], attempts: tuple[int, ...], runs: list[tuple[int, int, int]]
) -> None:
    assert runs_of(rowids, attempts) == runs


def test_batch_budget_refuses_empty_bounds() -> None:
    with pytest.raises(ValueError, match="max_count"):
        BatchBudget(max_count=0, max_bytes=100)


def test_batch_selection_memory_does_not_grow_with_the_backlog(
    tmp_path: Path, clock: ManualClock
) -> None:
    def peak_bytes_of_one_batch(backlog: int) -> int:
        with SqliteOutbox(
            tmp_path / f"backlog-{backlog}.db", quota_bytes=UNLIMITED, clock=clock
        ) as outbox:
            readings = [glucose(seq) for seq in range(backlog)]
            for start in range(0, backlog, 1000):
                outbox.add(readings[start : start + 1000])
            del readings
            tracemalloc.start()
            try:
                batch = outbox.begin_batch(100, UNLIMITED)
                assert batch is not None
                assert len(batch) == 100
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small = peak_bytes_of_one_batch(1_000)
    large = peak_bytes_of_one_batch(20_000)

    # 20,000 rows are ≈ 7 MB of JSON; a batch of 100 touches ≈ 40 kB of it.
    assert large < 200_000
    assert large < small * 2


# -- quota -----------------------------------------------------------------------------


def _values_reading(values: Values, unit: Unit, *, seq: int | None) -> Reading:
    device_time = datetime(2026, 1, 1) if seq is not None else None
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=START,
        received_at=START,
        device_id=DEVICE,
        patient_id="patient-1",
        gateway_id="gw-1",
        device_time=device_time,
        seq=seq,
    )


@pytest.mark.parametrize(
    ("values", "unit", "seq", "clinical"),
    [
        (GlucoseValues(glucose=5.5), Unit.MMOL_PER_L, 1, True),
        (CgmGlucoseValues(glucose=5.5), Unit.MMOL_PER_L, 1, True),
        (BloodPressureValues(systolic=120, diastolic=80), Unit.MMHG, None, True),
        (WeightValues(weight=70), Unit.KG, None, True),
        (BodyTemperatureValues(temperature=37), Unit.CELSIUS, None, True),
        (Spo2Values(spo2=97), Unit.PERCENT, 3, True),  # a stored spot check
        (Spo2Values(spo2=97), Unit.PERCENT, None, False),  # continuous, stamped on receipt
        (HeartRateValues(heart_rate=70), Unit.PER_MIN, None, False),
    ],
)
def test_which_readings_are_clinical(
    values: Values, unit: Unit, seq: int | None, clinical: bool
) -> None:
    assert is_clinical(_values_reading(values, unit, seq=seq)) is clinical


def test_over_quota_refuses_telemetry_but_keeps_clinical_readings(
    tmp_path: Path, clock: ManualClock
) -> None:
    quota = 128 * 1024
    with SqliteOutbox(
        tmp_path / "quota.db", quota_bytes=quota, reserve_bytes=64 * 1024, clock=clock
    ) as outbox:
        index = 0
        while not outbox.stats().over_quota:
            outbox.add([heart_rate(index + i) for i in range(50)])
            index += 50

        refused = outbox.add([heart_rate(index + i) for i in range(10)] + [glucose(1)])

        assert refused.added == 1
        assert refused.over_quota
        assert refused.refused_ids == tuple(heart_rate(index + i).id for i in range(10))
        stats = outbox.stats()
        assert stats.refused_low_value == 10
        assert stats.refused_clinical == 0
        assert glucose(1).id in states(outbox.path)


def test_at_the_ceiling_clinical_readings_are_refused_loudly_and_kept_on_the_device(
    tmp_path: Path, clock: ManualClock
) -> None:
    with SqliteOutbox(
        tmp_path / "ceiling.db", quota_bytes=64 * 1024, reserve_bytes=64 * 1024, clock=clock
    ) as outbox:
        seq = 0
        while not outbox.stats().full:
            chunk = [glucose(s) for s in range(seq, seq + 20)]
            outbox.add(chunk, cursor=(DEVICE, RecordCursor(last_seq=seq + 19)))
            seq += 20

        with pytest.raises(OutboxFull) as raised:
            outbox.add(
                [glucose(s) for s in range(seq, seq + 20)],
                cursor=(DEVICE, RecordCursor(last_seq=seq + 19)),
            )

        assert raised.value.refused == 20
        assert raised.value.ceiling_bytes == 128 * 1024
        assert outbox.cursor(DEVICE) == RecordCursor(last_seq=seq - 1)  # not moved
        stats = outbox.stats()
        assert stats.full
        assert stats.over_quota
        assert stats.refused_clinical == 20
        assert stats.depth == seq  # every reading stored before is still there

        # once the backlog is acknowledged, capture resumes where the device left off
        stored = outbox.begin_batch(1000, UNLIMITED)
        assert stored is not None
        outbox.acknowledge(stored.reading_ids)
        resumed = outbox.add(
            [glucose(s) for s in range(seq, seq + 20)],
            cursor=(DEVICE, RecordCursor(last_seq=seq + 19)),
        )
        assert resumed.added == 20
        assert not outbox.stats().over_quota
    with sqlite3.connect(tmp_path / "ceiling.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_backlog_larger_than_a_lowered_quota_still_drains(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock) as outbox:
        outbox.add([glucose(seq) for seq in range(3000)])
    # The quota was lowered in the configuration: the backlog is far above the ceiling.
    with SqliteOutbox(path, quota_bytes=64 * 1024, reserve_bytes=0, clock=clock) as outbox:
        assert outbox.stats().full
        with pytest.raises(OutboxFull):
            outbox.add([glucose(5000)])
        while (batch := outbox.begin_batch(500, UNLIMITED)) is not None:
            outbox.mark_sent(batch)  # progress is recorded, never refused
            outbox.acknowledge(batch.reading_ids)
        assert outbox.stats().depth == 0
        assert outbox.add([glucose(5000)]).added == 1


def test_over_quota_clears_only_below_the_hysteresis(tmp_path: Path, clock: ManualClock) -> None:
    quota = 128 * 1024
    with SqliteOutbox(tmp_path / "h.db", quota_bytes=quota, clock=clock) as outbox:
        readings = [glucose(seq) for seq in range(2000)]
        added: list[str] = []
        for reading in readings:
            outbox.add([reading])
            added.append(reading.id)
            if outbox.stats().over_quota:
                break
        # free one row's worth: still within 5 % of the quota
        outbox.acknowledge(added[:1])
        assert outbox.stats().over_quota
        outbox.acknowledge(added)
        assert not outbox.stats().over_quota


# -- opening ---------------------------------------------------------------------------


def test_outbox_uses_wal(outbox: SqliteOutbox) -> None:
    with sqlite3.connect(outbox.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_damaged_outbox_is_refused_with_the_integrity_check_output(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock) as outbox:
        outbox.add([glucose(seq) for seq in range(20)])
        batch = outbox.begin_batch(20, UNLIMITED)
        assert batch is not None
        outbox.mark_sent(batch)
    # Damage the kind integrity_check finds and a crash of bad hardware leaves: rows
    # changed behind an index's back (the index is hidden from SQLite meanwhile).
    db = sqlite3.connect(path, isolation_level=None)
    index = db.execute(
        "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master WHERE name = 'sent_retry'"
    ).fetchone()
    db.execute("PRAGMA writable_schema = ON")
    db.execute("DELETE FROM sqlite_master WHERE name = 'sent_retry'")
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE sent SET retry_at = 0")
    db.execute("PRAGMA writable_schema = ON")
    db.execute("INSERT INTO sqlite_master VALUES (?, ?, ?, ?, ?)", index)
    db.close()

    with pytest.raises(OutboxCorrupt) as raised:
        SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock)

    assert "row 1 missing from index sent_retry" in raised.value.check_output
    assert "integrity check" in str(raised.value)
    assert ".recover" in str(raised.value)


def test_an_unreadable_outbox_page_is_refused_as_corrupt(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "outbox.db"
    with SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock) as outbox:
        outbox.add([glucose(seq) for seq in range(20)])
    with sqlite3.connect(path) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + 40] = b"\xff" * 40  # the table's page header and cell pointers
    path.write_bytes(data)

    with pytest.raises(OutboxCorrupt, match="malformed"):
        SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"definitely not SQLite " * 300)

    with pytest.raises(OutboxCorrupt, match="not a database"):
        SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock)


def test_an_outbox_of_another_schema_version_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")

    with pytest.raises(OutboxError, match="schema version 7"):
        SqliteOutbox(path, quota_bytes=UNLIMITED, clock=clock)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quota_bytes": 0}, "quota_bytes"),
        ({"reserve_bytes": -1}, "reserve_bytes"),
        ({"ack_timeout_seconds": 0}, "ack_timeout_seconds"),
        ({"ack_timeout_seconds": 60, "max_ack_timeout_seconds": 30}, "max_ack_timeout_seconds"),
    ],
)
def test_bad_settings_name_the_field(
    tmp_path: Path, clock: ManualClock, kwargs: dict[str, float], field: str
) -> None:
    arguments: dict[str, float] = {"quota_bytes": UNLIMITED, **kwargs}
    with pytest.raises(ConfigError) as raised:
        SqliteOutbox(tmp_path / "o.db", clock=clock, **arguments)  # type: ignore[arg-type]
    assert raised.value.field == field


# -- durability after a failed write ------------------------------------------------------

FSYNC_FULL = 2
"""``PRAGMA synchronous`` value of FULL: every commit is fsynced."""


def test_a_real_full_disk_refuses_clinical_readings_and_keeps_the_cursor(
    outbox: SqliteOutbox,
) -> None:
    outbox.add([glucose(seq) for seq in range(200)], cursor=(DEVICE, RecordCursor(last_seq=199)))
    full = FullDatabase(outbox)
    full.fill()

    with pytest.raises(OutboxFull) as raised:
        outbox.add(
            [glucose(seq) for seq in range(200, 400)], cursor=(DEVICE, RecordCursor(last_seq=399))
        )

    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert raised.value.__cause__.sqlite_errorcode == sqlite3.SQLITE_FULL
    assert raised.value.refused == 200
    assert outbox.cursor(DEVICE) == RecordCursor(last_seq=199)
    assert outbox.stats().refused_clinical == 200
    assert outbox.stats().depth == 200
    full.release()
    assert outbox.add([glucose(seq) for seq in range(200, 400)]).added == 200


def test_fsync_is_restored_after_bookkeeping_fails_on_a_full_disk(outbox: SqliteOutbox) -> None:
    outbox.add([glucose(seq) for seq in range(3000)])
    batch = outbox.begin_batch(3000, UNLIMITED)
    assert batch is not None
    full = FullDatabase(outbox)
    full.fill()

    # 3000 PUBACK records need pages the database may not take: SQLite says SQLITE_FULL.
    with pytest.raises(OutboxError) as raised:
        outbox.mark_sent(batch)

    assert isinstance(raised.value.__cause__, sqlite3.Error)
    assert raised.value.__cause__.sqlite_errorcode == sqlite3.SQLITE_FULL
    # Every later reading and cursor must still be committed with an fsync.
    assert full.synchronous() == FSYNC_FULL
    full.release()
    outbox.mark_sent(batch)
    assert full.synchronous() == FSYNC_FULL
    assert set(states(outbox.path).values()) == {(STATE_SENT, 1)}


def test_fsync_is_restored_when_bookkeeping_cannot_even_begin(outbox: SqliteOutbox) -> None:
    outbox.add([glucose(seq) for seq in range(10)])
    full = FullDatabase(outbox)
    full.set_busy_timeout(50)
    # An operator's sqlite3 shell holding the write lock: BEGIN IMMEDIATE gets SQLITE_BUSY.
    other = sqlite3.connect(outbox.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OutboxError, match="cannot begin") as raised:
            outbox.acknowledge([glucose(0).id])
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert isinstance(raised.value.__cause__, sqlite3.Error)
    assert raised.value.__cause__.sqlite_errorcode == sqlite3.SQLITE_BUSY
    assert full.synchronous() == FSYNC_FULL
    assert outbox.acknowledge([glucose(0).id]) == 1


_FULL_FILESYSTEM_SCRIPT = """
import json, sys
from gateway.errors import OutboxFull
from gateway.outbox import SqliteOutbox
from device_drivers.base import RecordCursor
from tests.gateway.full_database import FullDatabase
from tests.fakes import ManualClock
from tests.gateway.test_outbox import DEVICE, START, glucose

box = SqliteOutbox(sys.argv[1] + "/outbox.db", quota_bytes=10**9, clock=ManualClock(START))
seq = 0
cause = None
while seq < 100_000:
    chunk = [glucose(s) for s in range(seq, seq + 100)]
    try:
        box.add(chunk, cursor=(DEVICE, RecordCursor(last_seq=seq + 99)))
    except OutboxFull as exc:
        cause = exc.__cause__
        break
    seq += 100
stats = box.stats()
print(json.dumps({
    "stored": seq,
    "cause": getattr(cause, "sqlite_errorcode", None),
    "cursor": box.cursor(DEVICE).last_seq,
    "depth": stats.depth,
    "refused_clinical": stats.refused_clinical,
    "synchronous": FullDatabase(box).synchronous(),
    "integrity": box._db.execute("PRAGMA integrity_check").fetchone()[0],
}))
"""
FILESYSTEM_BYTES = 2 * 1024 * 1024


def test_a_really_full_filesystem_refuses_readings_and_keeps_the_cursor(tmp_path: Path) -> None:
    # A 2 MiB tmpfs in a private mount namespace: the disk itself runs out (ENOSPC).
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a small filesystem")
    repo = Path(__file__).resolve().parents[2]
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(_FULL_FILESYSTEM_SCRIPT)
    command = (
        f"mount -t tmpfs -o size={FILESYSTEM_BYTES} vitalgate-test {mount_point} && "
        f"exec {sys.executable} {script} {mount_point}"
    )
    result = subprocess.run(
        [unshare, "--mount", "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=120,
        check=False,
    )
    if (
        result.returncode != 0
        and "mount" in result.stderr
        and "permission" in result.stderr.lower()
    ):
        pytest.skip(f"cannot mount a filesystem here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)

    assert outcome["cause"] == sqlite3.SQLITE_FULL
    assert outcome["stored"] > 0
    assert outcome["cursor"] == outcome["stored"] - 1  # the refused chunk did not move it
    assert outcome["depth"] == outcome["stored"]
    assert outcome["refused_clinical"] == 100
    assert outcome["synchronous"] == FSYNC_FULL
    assert outcome["integrity"] == "ok"
