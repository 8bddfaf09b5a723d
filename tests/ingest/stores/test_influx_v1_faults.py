"""How the InfluxDB 1.x store meets a failing server (the answers in ``docs/storage.md``).

Real influxd wherever it can produce the answer (a paused server, a type conflict, a
body over ``max-body-size``, an unknown database). InfluxDB 1.x never answers 429, so
that answer comes from a small local HTTP server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest

from ingest.stores import RejectedPoint, StoreConfigError, StoreUnavailable, open_store
from ingest.stores.influx_v1 import InfluxV1Store
from readings.model import BloodPressureValues, GlucoseValues, Reading, new_reading
from readings.units import Unit
from tests.harness.ports import free_port
from tests.harness.services import InfluxDBFactory, InfluxDBServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PATIENT = "patient-0001"


def glucose(seq: int, **context: object) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=5.0 + seq / 10),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0 + timedelta(minutes=seq),
        received_at=T0 + timedelta(minutes=seq, seconds=30),
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id=PATIENT,
        gateway_id="gw-0001",
        seq=seq,
        context=context,
    )


def pressure(seq: int, *, mean_arterial: float | None) -> Reading:
    return new_reading(
        values=BloodPressureValues(systolic=130.0, diastolic=85.0, mean_arterial=mean_arterial),
        source_unit=Unit.MMHG,
        measured_at=T0 + timedelta(minutes=seq),
        received_at=T0 + timedelta(minutes=seq, seconds=30),
        device_id="Omron-HEM_7600T-20250001",
        patient_id=PATIENT,
        gateway_id="gw-0001",
        seq=seq,
    )


@pytest.mark.fault
def test_a_paused_server_makes_the_write_unavailable_and_the_retry_stores_the_batch(
    influxdb_fresh: InfluxDBServer,
) -> None:
    influxdb_fresh.create_database("vitalgate")
    with closing(
        open_store(
            f"influxdb-v1://{influxdb_fresh.host}:{influxdb_fresh.port}/vitalgate?timeout=0.5"
        )
    ) as store:
        batch = [glucose(1), glucose(2)]
        influxdb_fresh.pause()
        try:
            with pytest.raises(StoreUnavailable) as unavailable:
                store.write(batch)
        finally:
            influxdb_fresh.resume()

        retried = store.write(batch)

        assert "no answer in time" in unavailable.value.reason
        assert unavailable.value.retry_after_seconds is None
        assert retried.stored == (batch[0].id, batch[1].id)
        assert store.count() == 2


@pytest.mark.fault
def test_a_type_conflict_rejects_only_the_conflicting_point(
    influxdb: InfluxDBServer, influx_database: str
) -> None:
    # Someone wrote mean_arterial as a string into this shard: a later float is refused.
    influxdb.write_lines(
        influx_database,
        f'blood_pressure,patient_id=someone,device_id=a-b-c mean_arterial="n/a" '
        f"{int(T0.timestamp()) * 10**9}",
    )
    with closing(
        open_store(f"influxdb-v1://{influxdb.host}:{influxdb.port}/{influx_database}")
    ) as store:
        conflicting = pressure(3, mean_arterial=101.7)
        good = [glucose(1), pressure(2, mean_arterial=None), glucose(4)]

        result = store.write([good[0], good[1], conflicting, good[2]])

        assert result.stored == (good[0].id, good[1].id, good[2].id)
        assert [item.reading_id for item in result.rejected] == [conflicting.id]
        assert "field type conflict" in result.rejected[0].reason
        assert "HTTP 400" in result.rejected[0].reason
        assert store.ids(PATIENT) == {item.id for item in good}


@pytest.mark.fault
def test_a_body_over_the_server_limit_is_split_and_an_oversized_point_rejected(
    influxdb_factory: InfluxDBFactory,
) -> None:
    # One glucose line is ≈ 210 bytes: 600 bytes take two, so a batch of 6 splits twice.
    server = influxdb_factory(config_overrides={"http": {"max-body-size": 600}})
    server.create_database("vitalgate")
    with closing(open_store(f"influxdb-v1://{server.host}:{server.port}/vitalgate")) as store:
        small = [glucose(seq) for seq in range(1, 7)]
        oversized = glucose(7, note="x" * 128, more="y" * 128, extra="z" * 128)

        result = store.write([*small[:3], oversized, *small[3:]])

        assert result.stored == tuple(item.id for item in small)
        assert result.rejected == (
            RejectedPoint(
                oversized.id,
                "point larger than the server accepts (HTTP 413): Request Entity Too Large",
            ),
        )
        assert store.ids() == {item.id for item in small}


@pytest.mark.fault
def test_a_reading_older_than_the_retention_policy_is_rejected_and_the_rest_stored(
    influxdb: InfluxDBServer, influx_database: str
) -> None:
    influxdb.query(
        None, f'CREATE RETENTION POLICY "one_day" ON "{influx_database}" DURATION 1d REPLICATION 1'
    )
    recent_time = datetime.now(UTC) - timedelta(minutes=5)
    recent = new_reading(
        values=GlucoseValues(glucose=6.0),
        source_unit=Unit.MMOL_PER_L,
        measured_at=recent_time,
        received_at=recent_time,
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id=PATIENT,
        gateway_id="gw-0001",
        seq=99,
    )
    too_old = glucose(1)  # 2026-03-01: a re-downloaded meter memory
    url = f"influxdb-v1://{influxdb.host}:{influxdb.port}/{influx_database}?rp=one_day"
    with closing(open_store(url)) as store:
        result = store.write([too_old, recent])
        kept = store.ids()

    assert kept == {recent.id}
    assert result.stored == (recent.id,)
    assert [item.reading_id for item in result.rejected] == [too_old.id]
    assert "points beyond retention policy" in result.rejected[0].reason


def test_a_reading_that_cannot_be_a_point_is_rejected_and_the_rest_stored(
    influxdb: InfluxDBServer, influx_database: str
) -> None:
    # Built in Python around the contract's pattern checks: a backslash in a tag.
    broken = msgspec.structs.replace(glucose(2), patient_id="bad\\id")
    good = [glucose(1), glucose(3)]
    with closing(
        open_store(f"influxdb-v1://{influxdb.host}:{influxdb.port}/{influx_database}")
    ) as store:
        result = store.write([good[0], broken, good[1]])

        assert result.stored == (good[0].id, good[1].id)
        assert [item.reading_id for item in result.rejected] == [broken.id]
        assert "patient_id" in result.rejected[0].reason
        assert store.ids() == {item.id for item in good}


def test_an_unknown_database_is_a_configuration_error(influxdb: InfluxDBServer) -> None:
    with closing(
        open_store(f"influxdb-v1://{influxdb.host}:{influxdb.port}/no_such_database")
    ) as store:
        with pytest.raises(StoreConfigError) as error:
            store.write([glucose(1)])

        assert error.value.part == "database"


def test_a_refused_connection_is_unavailable() -> None:
    with closing(open_store(f"influxdb-v1://127.0.0.1:{free_port()}/vitalgate")) as store:
        with pytest.raises(StoreUnavailable):
            store.write([glucose(1)])
        with pytest.raises(StoreUnavailable):
            store.ping()


class _Overloaded(BaseHTTPRequestHandler):
    """Answers every write with the status and Retry-After the server was given."""

    server: _OverloadedServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        body = b'{"error":"too many requests"}'
        self.send_response(self.server.status)
        self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log on stderr."""


class _OverloadedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, retry_after: str) -> None:
        super().__init__(("127.0.0.1", 0), _Overloaded)
        self.status = status
        self.retry_after = retry_after
        self.requests = 0


@pytest.fixture
def overloaded(request: pytest.FixtureRequest) -> Iterator[_OverloadedServer]:
    status, retry_after = request.param
    server = _OverloadedServer(status, retry_after)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("overloaded", "expected_seconds"),
    [
        ((429, "7"), 7.0),
        ((503, "Sun, 01 Mar 2026 08:00:30 GMT"), 30.0),
    ],
    indirect=["overloaded"],
    ids=["429-delta-seconds", "503-http-date"],
)
def test_an_overloaded_server_is_unavailable_with_its_retry_after(
    overloaded: _OverloadedServer, expected_seconds: float
) -> None:
    host, port = overloaded.server_address[:2]
    with closing(
        InfluxV1Store(base_url=f"http://{host!s}:{port}", database="vitalgate", clock=lambda: T0)
    ) as store:
        with pytest.raises(StoreUnavailable) as unavailable:
            store.write([glucose(1), glucose(2)])

        # One request, no split, no retry of its own: the caller owns the retry loop.
        assert overloaded.requests == 1
        assert unavailable.value.retry_after_seconds == expected_seconds
