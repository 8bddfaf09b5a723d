"""The InfluxDB 2.x store against recorded server answers (``docs/storage.md``).

No InfluxDB 2.x server is installable here; each test replays exchanges written from the
InfluxDB 2 API documentation (``recorded/influx_v2/*.json``) to the real
``influxdb-client`` over real HTTP, and the replay checks every request the client sent
(path, ``org``/``bucket``/``precision`` parameters, ``Authorization: Token``, body).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from ingest.stores import (
    RejectedPoint,
    StoreConfigError,
    StoreUnavailable,
    WriteResult,
    open_store,
)
from ingest.stores.influx_v2 import InfluxV2Store
from ingest.stores.points import to_line
from readings.model import BloodPressureValues, GlucoseValues, Reading, new_reading
from readings.units import Unit
from tests.harness.ports import free_port
from tests.ingest.stores.replay import BUCKET, ORG, TOKEN, ReplayServer, load_exchanges

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# The server's message for the refused point in partial_write_422.json and whole_batch_400.json.
TYPE_CONFLICT = (
    "failure writing points to database: partial write: field type conflict: input field "
    '"mean_arterial" on measurement "blood_pressure" is type float, already exists as type '
    "string dropped=1"
)


def glucose(seq: int) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=5.0 + seq / 10),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0 + timedelta(minutes=seq),
        received_at=T0 + timedelta(minutes=seq, seconds=30),
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=seq,
    )


def pressure(seq: int) -> Reading:
    return new_reading(
        values=BloodPressureValues(systolic=130.0, diastolic=85.0, mean_arterial=100.0),
        source_unit=Unit.MMHG,
        measured_at=T0 + timedelta(minutes=seq),
        received_at=T0 + timedelta(minutes=seq, seconds=30),
        device_id="Omron-HEM_7600T-20250001",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=seq,
    )


@pytest.fixture
def replay(request: pytest.FixtureRequest) -> Iterator[ReplayServer]:
    server = ReplayServer(load_exchanges(request.param))
    yield server
    server.close()
    server.verify()


def store_for(replay: ReplayServer) -> InfluxV2Store:
    return InfluxV2Store(url=replay.url, token=TOKEN, org=ORG, bucket=BUCKET, clock=lambda: T0)


@pytest.mark.parametrize("replay", ["write_204"], indirect=True)
def test_a_write_sends_line_protocol_with_token_org_bucket_and_ns_precision(
    replay: ReplayServer,
) -> None:
    batch = [glucose(1), pressure(2)]
    with closing(store_for(replay)) as store:
        result = store.write(batch)

    (sent,) = replay.seen
    assert result == WriteResult(stored=(batch[0].id, batch[1].id))
    assert (sent.method, sent.path) == ("POST", "/api/v2/write")
    assert sent.query == {"org": ORG, "bucket": BUCKET, "precision": "ns"}
    assert sent.headers["authorization"] == f"Token {TOKEN}"
    assert sent.headers["content-type"].startswith("text/plain")
    assert sent.body.decode().split("\n") == [to_line(item) for item in batch]


@pytest.mark.parametrize("replay", ["partial_write_422"], indirect=True)
def test_a_422_keeps_the_valid_points_and_rejects_the_ones_not_stored(
    replay: ReplayServer,
) -> None:
    good = [glucose(1), glucose(2), glucose(4)]
    conflicting = pressure(3)
    with closing(store_for(replay)) as store:
        result = store.write([good[0], good[1], conflicting, good[2]])

    assert result == WriteResult(
        stored=tuple(item.id for item in good),
        rejected=(
            RejectedPoint(conflicting.id, f"refused by the store (HTTP 422): {TYPE_CONFLICT}"),
        ),
    )


@pytest.mark.parametrize("replay", ["whole_batch_400"], indirect=True)
def test_a_400_that_refused_the_whole_batch_is_bisected_to_the_bad_point(
    replay: ReplayServer,
) -> None:
    # OSS 2.0–2.1: "The first rejected point in a batch causes InfluxDB to reject the
    # entire batch" — halves are written again until the refused point stands alone.
    batch = [glucose(1), glucose(2), pressure(3), glucose(4)]
    with closing(store_for(replay)) as store:
        result = store.write(batch)

    assert result == WriteResult(
        stored=(batch[0].id, batch[1].id, batch[3].id),
        rejected=(RejectedPoint(batch[2].id, f"refused by the store (HTTP 400): {TYPE_CONFLICT}"),),
    )
    assert len(replay.seen) == 5


@pytest.mark.parametrize("replay", ["too_large_413"], indirect=True)
def test_a_413_splits_the_batch(replay: ReplayServer) -> None:
    batch = [glucose(1), glucose(2)]
    with closing(store_for(replay)) as store:
        result = store.write(batch)

    assert result == WriteResult(stored=(batch[0].id, batch[1].id))
    assert [len(request.body.split(b"\n")) for request in replay.seen] == [2, 1, 1]


@pytest.mark.parametrize(
    ("replay", "retry_after_seconds"),
    [("too_many_requests_429", 12.0), ("unavailable_503", None)],
    indirect=["replay"],
)
def test_429_and_503_are_unavailable_with_the_servers_retry_after(
    replay: ReplayServer, retry_after_seconds: float | None
) -> None:
    with closing(store_for(replay)) as store, pytest.raises(StoreUnavailable) as unavailable:
        store.write([glucose(1), glucose(2)])

    assert unavailable.value.retry_after_seconds == retry_after_seconds


@pytest.mark.parametrize(
    ("replay", "part"),
    [("unauthorized_401", "credentials"), ("bucket_not_found_404", "bucket")],
    indirect=["replay"],
)
def test_a_refused_token_or_missing_bucket_is_a_configuration_error(
    replay: ReplayServer, part: str
) -> None:
    with closing(store_for(replay)) as store, pytest.raises(StoreConfigError) as error:
        store.write([glucose(1)])

    assert error.value.part == part
    assert TOKEN not in str(error.value)


@pytest.mark.parametrize("replay", ["ping_204"], indirect=True)
def test_ping_answers_when_the_server_does(replay: ReplayServer) -> None:
    with closing(store_for(replay)) as store:
        store.ping()


def test_a_refused_connection_is_unavailable() -> None:
    url = f"influxdb://{TOKEN}@127.0.0.1:{free_port()}?org={ORG}&bucket={BUCKET}&timeout=2"
    with closing(open_store(url)) as store:
        with pytest.raises(StoreUnavailable):
            store.write([glucose(1)])
        with pytest.raises(StoreUnavailable):
            store.count()
        with pytest.raises(StoreUnavailable):
            store.ping()
