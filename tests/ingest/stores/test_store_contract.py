"""One contract for every reading store, run against all three backends.

* ``sqlite``: a real SQLite file in a temporary directory.
* ``influx-v1``: the real InfluxDB 1.6.7 from the ``influxdb`` fixture, a fresh database
  per test.
* ``influx-v2``: recorded InfluxDB 2 HTTP exchanges (``recorded/influx_v2/contract_*.json``,
  written from the API documentation; no v2 server is installable here) replayed to the
  real ``influxdb-client``. This proves the requests the backend sends and how it reads
  the documented answers — not the server's own behaviour, which the other two prove.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.stores import (
    InvalidQuery,
    ReadingStore,
    StoredReading,
    WindowAggregate,
    WriteResult,
    open_store,
)
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Kind,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit
from tests.harness.services import InfluxDBServer
from tests.ingest.stores.replay import BUCKET, ORG, TOKEN, ReplayServer, load_exchanges

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PATIENT = "patient-0001"
OTHER_PATIENT = "patient-0002"
GATEWAY = "gw-0001"
METER = "Roche-Accu_Chek_Guide-92310000123"
CUFF = "Omron-HEM_7600T-20250001"

BACKENDS = [
    "sqlite",
    pytest.param("influx-v1", marks=pytest.mark.integration),
    "influx-v2",
]


def reading(
    values: Values,
    unit: str,
    at: datetime,
    *,
    seq: int,
    patient: str = PATIENT,
    device: str = METER,
    **extra: object,
) -> Reading:
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=at,
        received_at=at + timedelta(seconds=30),
        device_id=device,
        patient_id=patient,
        gateway_id=GATEWAY,
        seq=seq,
        **extra,  # type: ignore[arg-type]
    )


def glucose(value: float, at: datetime, *, seq: int, patient: str = PATIENT) -> Reading:
    return reading(GlucoseValues(glucose=value), Unit.MMOL_PER_L, at, seq=seq, patient=patient)


def blood_pressure(at: datetime, *, seq: int) -> Reading:
    return reading(
        BloodPressureValues(systolic=128.0, diastolic=84.0, pulse=71.0),
        Unit.MMHG,
        at,
        seq=seq,
        device=CUFF,
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadingStore]:
    backend = request.param
    if backend == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path}/readings.db")
        yield opened
        opened.close()
        return
    if backend == "influx-v1":
        server: InfluxDBServer = request.getfixturevalue("influxdb")
        database = request.getfixturevalue("influx_database")
        opened = open_store(f"influxdb-v1://{server.host}:{server.port}/{database}")
        yield opened
        opened.close()
        return
    replay = ReplayServer(load_exchanges(f"contract_{request.node.originalname}"))
    opened = open_store(f"influxdb://{TOKEN}@127.0.0.1:{replay.port}?org={ORG}&bucket={BUCKET}")
    try:
        yield opened
    finally:
        opened.close()
        replay.close()
    replay.verify()


def test_write_is_idempotent_by_reading_id(store: ReadingStore) -> None:
    first = glucose(5.6, T0, seq=1)
    second = glucose(6.1, T0 + timedelta(minutes=5), seq=2)

    assert store.write([first]) == WriteResult(stored=(first.id,))
    assert store.write([second, first]) == WriteResult(stored=(second.id, first.id))

    assert store.count() == 2
    assert store.ids() == {first.id, second.id}


def test_two_readings_in_the_same_millisecond_from_one_device_both_survive(
    store: ReadingStore,
) -> None:
    # Same device, same measured_at, different records: two points, never one.
    earlier_record = glucose(5.6, T0, seq=1)
    later_record = glucose(7.8, T0, seq=2)

    result = store.write([earlier_record, later_record])

    assert result == WriteResult(stored=(earlier_record.id, later_record.id))
    assert store.count(patient_id=PATIENT) == 2
    stored = store.readings(PATIENT, Kind.GLUCOSE, T0, T0 + timedelta(milliseconds=1))
    assert sorted(item.values["glucose"] for item in stored) == [5.6, 7.8]
    assert {item.id for item in stored} == {earlier_record.id, later_record.id}


def every_kind() -> list[Reading]:
    device_time = datetime(2026, 3, 1, 16, 0, 0, 250000)  # the device's own clock, UTC+8
    common: dict[str, Any] = {
        "device_time": device_time,
        "flags": ("clock_corrected", "irregular_pulse"),
        "context": {"meal": "fasting", "note": 'said "ok" \\ 空腹', "posture": 1, "repeat": True},
    }
    at = T0
    return [
        reading(GlucoseValues(glucose=5.6), Unit.MG_PER_DL, at, seq=11, **common),
        reading(
            CgmGlucoseValues(glucose=6.2, trend=-0.05, quality=97.5),
            Unit.MMOL_PER_L,
            at + timedelta(minutes=1),
            seq=12,
            device="Abbott-Libre3-0001",
            **common,
        ),
        reading(
            BloodPressureValues(systolic=141.0, diastolic=92.0, mean_arterial=108.3, pulse=77.0),
            Unit.KPA,
            at + timedelta(minutes=2),
            seq=13,
            device=CUFF,
            **common,
        ),
        reading(
            HeartRateValues(heart_rate=64.0, rr_intervals=(0.9375, 0.921875), energy_expended=12.0),
            Unit.PER_MIN,
            at + timedelta(minutes=3),
            seq=14,
            device="Polar-H10-0002",
            **common,
        ),
        reading(
            Spo2Values(spo2=96.0, pulse=70.0),
            Unit.PERCENT,
            at + timedelta(minutes=4),
            seq=15,
            device="Nonin-3230-0003",
            **common,
        ),
        reading(
            WeightValues(weight=71.35, bmi=24.1, height=1.72),
            Unit.POUND,
            at + timedelta(minutes=5),
            seq=16,
            device="Yuwell-YE890-0004",
            **common,
        ),
        reading(
            BodyTemperatureValues(temperature=36.85),
            Unit.FAHRENHEIT,
            at + timedelta(minutes=6),
            seq=17,
            device="Omron-MC_682-0005",
            **common,
        ),
    ]


def test_a_reading_of_every_kind_round_trips(store: ReadingStore) -> None:
    readings = every_kind()
    assert {item.kind for item in readings} == set(Kind)

    store.write(readings)

    assert store.last_readings(PATIENT) == {
        item.kind: StoredReading.from_reading(item) for item in readings
    }


def test_range_includes_start_excludes_end_oldest_first(store: ReadingStore) -> None:
    before = glucose(4.9, T0 - timedelta(milliseconds=1), seq=1)
    at_start = glucose(5.6, T0, seq=2)
    inside = glucose(6.3, T0 + timedelta(minutes=30), seq=3)
    at_end = glucose(7.0, T0 + timedelta(hours=1), seq=4)
    other_patient = glucose(8.8, T0 + timedelta(minutes=10), seq=5, patient=OTHER_PATIENT)
    other_kind = blood_pressure(T0 + timedelta(minutes=10), seq=6)
    store.write([at_end, inside, other_patient, other_kind, at_start, before])

    in_hour = store.readings(PATIENT, Kind.GLUCOSE, T0, T0 + timedelta(hours=1))
    # A bound between milliseconds: the reading 1 ms before T0 is still outside.
    finer = store.readings(
        PATIENT, Kind.GLUCOSE, T0 - timedelta(microseconds=999), T0 + timedelta(minutes=30)
    )

    assert in_hour == [StoredReading.from_reading(at_start), StoredReading.from_reading(inside)]
    assert finer == [StoredReading.from_reading(at_start)]


def test_aggregates_give_mean_min_max_count_per_window(store: ReadingStore) -> None:
    store.write(
        [
            glucose(5.0, T0 + timedelta(minutes=5), seq=1),
            glucose(7.0, T0 + timedelta(minutes=20), seq=2),
            glucose(9.0, T0 + timedelta(minutes=50), seq=3),
            glucose(6.0, T0 + timedelta(hours=2, minutes=10), seq=4),
            glucose(12.0, T0 + timedelta(minutes=20), seq=5, patient=OTHER_PATIENT),
        ]
    )
    hour = timedelta(hours=1)

    whole = store.aggregates(PATIENT, Kind.GLUCOSE, "glucose", T0, T0 + 3 * hour, hour)
    from_quarter_past = store.aggregates(
        PATIENT, Kind.GLUCOSE, "glucose", T0 + timedelta(minutes=15), T0 + 3 * hour, hour
    )

    # The empty 09:00 window is left out; windows are aligned to the hour (epoch).
    assert whole == [
        WindowAggregate(window_start=T0, mean=7.0, min=5.0, max=9.0, count=3),
        WindowAggregate(window_start=T0 + 2 * hour, mean=6.0, min=6.0, max=6.0, count=1),
    ]
    assert from_quarter_past == [
        WindowAggregate(window_start=T0, mean=8.0, min=7.0, max=9.0, count=2),
        WindowAggregate(window_start=T0 + 2 * hour, mean=6.0, min=6.0, max=6.0, count=1),
    ]


def test_last_readings_give_the_latest_of_each_kind(store: ReadingStore) -> None:
    older = glucose(5.6, T0, seq=1)
    latest = glucose(6.4, T0 + timedelta(hours=1), seq=2)
    pressure = blood_pressure(T0 + timedelta(minutes=30), seq=3)
    someone_else = glucose(9.9, T0 + timedelta(hours=2), seq=4, patient=OTHER_PATIENT)
    store.write([latest, older, pressure, someone_else])

    assert store.last_readings(PATIENT) == {
        Kind.GLUCOSE: StoredReading.from_reading(latest),
        Kind.BLOOD_PRESSURE: StoredReading.from_reading(pressure),
    }
    assert store.last_readings("patient-9999") == {}


def test_last_readings_of_many_patients_give_the_latest_of_each_kind_per_patient(
    store: ReadingStore,
) -> None:
    older = glucose(5.6, T0, seq=1)
    latest = glucose(6.4, T0 + timedelta(hours=1), seq=2)
    pressure = blood_pressure(T0 + timedelta(minutes=30), seq=3)
    other_latest = glucose(9.9, T0 + timedelta(hours=2), seq=4, patient=OTHER_PATIENT)
    other_older = glucose(7.1, T0 - timedelta(hours=1), seq=5, patient=OTHER_PATIENT)
    not_asked = glucose(4.4, T0 + timedelta(hours=3), seq=6, patient="patient-0003")
    store.write([latest, other_older, older, pressure, not_asked, other_latest])

    assert store.last_readings_of([PATIENT, OTHER_PATIENT, "patient-9999"]) == {
        PATIENT: {
            Kind.GLUCOSE: StoredReading.from_reading(latest),
            Kind.BLOOD_PRESSURE: StoredReading.from_reading(pressure),
        },
        OTHER_PATIENT: {Kind.GLUCOSE: StoredReading.from_reading(other_latest)},
        "patient-9999": {},
    }
    assert store.last_readings_of([]) == {}


def test_count_applies_every_filter(store: ReadingStore) -> None:
    store.write(
        [
            glucose(5.6, T0, seq=1),
            glucose(6.4, T0 + timedelta(hours=1), seq=2),
            glucose(7.1, T0, seq=3, patient=OTHER_PATIENT),
            blood_pressure(T0 + timedelta(minutes=30), seq=4),
        ]
    )

    assert store.count() == 4
    assert store.count(patient_id=PATIENT) == 3
    assert store.count(kind=Kind.GLUCOSE) == 3
    assert store.count(patient_id=PATIENT, kind=Kind.GLUCOSE) == 2
    assert store.count(start=T0 + timedelta(minutes=1), end=T0 + timedelta(hours=2)) == 2
    assert store.count(patient_id="patient-9999") == 0


def test_ids_of_everyone_and_of_one_patient(store: ReadingStore) -> None:
    mine = [glucose(5.6, T0, seq=1), blood_pressure(T0 + timedelta(minutes=30), seq=2)]
    theirs = glucose(7.1, T0, seq=3, patient=OTHER_PATIENT)
    store.write([*mine, theirs])

    assert store.ids() == {item.id for item in [*mine, theirs]}
    assert store.ids(PATIENT) == {item.id for item in mine}


def test_an_empty_batch_writes_nothing(store: ReadingStore) -> None:
    assert store.write([]) == WriteResult(stored=())
    assert store.count() == 0


def test_bad_query_arguments_are_refused_before_anything_is_sent(store: ReadingStore) -> None:
    hour = timedelta(hours=1)
    with pytest.raises(InvalidQuery) as not_numeric:
        store.aggregates(PATIENT, Kind.HEART_RATE, "rr_intervals", T0, T0 + hour, hour)
    with pytest.raises(InvalidQuery) as finer_than_a_millisecond:
        store.aggregates(
            PATIENT, Kind.GLUCOSE, "glucose", T0, T0 + hour, timedelta(microseconds=1500)
        )
    with pytest.raises(InvalidQuery) as naive:
        store.readings(PATIENT, Kind.GLUCOSE, T0.replace(tzinfo=None), T0 + hour)
    with pytest.raises(InvalidQuery) as backwards:
        store.count(start=T0 + hour, end=T0)

    assert not_numeric.value.parameter == "field"
    assert finer_than_a_millisecond.value.parameter == "every"
    assert naive.value.parameter == "start"
    assert backwards.value.parameter == "end"


@pytest.mark.integration
def test_influx_v1_latest_of_many_looks_back_in_steps_and_misses_nothing(
    influxdb: InfluxDBServer, influx_database: str
) -> None:
    # Series whose latest reading is recent, weeks old, and years old: each lookback step
    # (2 days, 60 days, unbounded) must find its own, and a recent one must win.
    from ingest.stores.influx_v1 import InfluxV1Store

    now = T0 + timedelta(days=1000)
    recent = glucose(6.1, now - timedelta(hours=5), seq=1)
    older_same_series = glucose(5.0, now - timedelta(days=30), seq=2)
    weeks_old = blood_pressure(now - timedelta(days=40), seq=3)
    years_old = glucose(7.7, T0, seq=4, patient=OTHER_PATIENT)
    ahead = glucose(8.8, now + timedelta(days=3), seq=5, patient="patient-0003")
    with closing(
        InfluxV1Store(
            base_url=f"http://{influxdb.host}:{influxdb.port}",
            database=influx_database,
            clock=lambda: now,
        )
    ) as store:
        store.write([recent, older_same_series, weeks_old, years_old, ahead])
        assert store.last_readings_of([PATIENT, OTHER_PATIENT, "patient-0003"]) == {
            PATIENT: {
                Kind.GLUCOSE: StoredReading.from_reading(recent),
                Kind.BLOOD_PRESSURE: StoredReading.from_reading(weeks_old),
            },
            OTHER_PATIENT: {Kind.GLUCOSE: StoredReading.from_reading(years_old)},
            "patient-0003": {Kind.GLUCOSE: StoredReading.from_reading(ahead)},
        }
