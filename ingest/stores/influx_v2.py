"""Reading store on InfluxDB 2.x (OSS and Cloud) through ``influxdb-client``.

Writes go through ``WriteApi`` with ``SYNCHRONOUS`` (never the batching writer, which
buffers in memory and drops a batch after its last retry; ``docs/storage.md``) as
line-protocol strings from :mod:`ingest.stores.points` (a ``Point`` costs ≈ 7 µs).
Queries are Flux through ``QueryApi``. Server answers are handled as described in
:mod:`ingest.stores._influx_write`: 422 keeps the valid points; 400 may have refused
the whole batch (OSS 2.0–2.1), so the batch is bisected.

No InfluxDB 2.x server can be installed here: this backend is tested against recorded
InfluxDB 2 HTTP exchanges (``tests/ingest/stores/recorded/influx_v2``), written from the
InfluxDB 2 API documentation, served to the real client over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import urllib3
from influxdb_client.client.flux_table import TableList
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from ingest.stores._influx_write import (
    PendingPoint,
    WriteAnswer,
    group_by_kind,
    server_message,
    write_readings,
)
from ingest.stores.base import (
    StoreConfigError,
    StoredReading,
    StoreResponseError,
    StoreUnavailable,
    WindowAggregate,
    WriteResult,
    check_time_range,
    window_milliseconds,
)
from ingest.stores.points import (
    bound_ns,
    check_value_field,
    epoch_milliseconds,
    from_epoch_milliseconds,
    measurement,
    stored_reading,
)
from ingest.stores.retry import parse_retry_after
from readings.model import Kind, Reading

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
"""Per request, as for InfluxDB 1.x (:mod:`ingest.stores.influx_v1`)."""

EARLIEST_NS: Final = -2_208_988_800_000_000_000
"""1900-01-01T00:00:00Z: the start of an unbounded range (Flux needs a start)."""
LATEST_NS: Final = 9_214_646_400_000_000_000
"""2262-01-01T00:00:00Z: the stop of an unbounded range, near the end of Flux time;
``now()`` would miss readings from a device whose clock runs ahead."""

_IDS_PER_QUERY: Final = 500
"""Patient ids per batched query (the ``contains`` set grows the Flux text by id)."""
_AGGREGATES: Final = ("mean", "min", "max", "count")


def flux_string(value: str) -> str:
    """A Flux string literal: ``\\``, ``"`` and ``${`` (interpolation) escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def _time(nanoseconds: int) -> str:
    return f"time(v: {nanoseconds})"


def _kinds_condition(kind: Kind | None) -> str:
    if kind is not None:
        return f"r._measurement == {flux_string(measurement(kind))}"
    names = ", ".join(flux_string(measurement(each)) for each in Kind)
    return f"contains(value: r._measurement, set: [{names}])"


class InfluxV2Store:
    """:class:`~ingest.stores.base.ReadingStore` on an InfluxDB 2.x bucket.

    Args:
        url: ``http(s)://host:port``.
        token: API token with read and write permission on the bucket.
        org: organisation name or id.
        bucket: bucket name (created beforehand, see ``deploy/influxdb/README.md``).
        timeout_seconds: per HTTP request.
        max_points_per_request: a larger batch is written in several requests.
        clock: current UTC time, for ``Retry-After`` dates.
    """

    def __init__(
        self,
        *,
        url: str,
        token: str,
        org: str,
        bucket: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_points_per_request: int = 5000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url
        self.bucket = bucket
        self.org = org
        self.timeout_seconds = timeout_seconds
        self.max_points_per_request = max_points_per_request
        self._clock = clock
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=int(timeout_seconds * 1000)
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._query_api = self._client.query_api()
        self._target = f'InfluxDB bucket "{bucket}" of org "{org}"'

    # -- writing ------------------------------------------------------------------------

    def write(self, readings: Sequence[Reading]) -> WriteResult:
        """Write ``readings``; return once the server answered 204 for every point kept.

        Raises:
            StoreUnavailable: the server did not answer, or answered 408/429/5xx.
            StoreConfigError: token refused, or the org or bucket does not exist.
        """
        if not readings:
            return WriteResult(stored=())
        return write_readings(
            readings,
            self,
            target=self._target,
            container="bucket",
            max_points_per_request=self.max_points_per_request,
        )

    def post(self, lines: Sequence[str]) -> WriteAnswer:
        """One ``POST /api/v2/write``; the answer's status and message (``PointSink``)."""
        try:
            # Precision: the client's default, ns (its annotation types the constant as
            # str, so it cannot be passed); the recorded-exchange tests assert precision=ns.
            self._write_api.write(bucket=self.bucket, org=self.org, record=list(lines))
        except ApiException as error:
            return WriteAnswer(
                int(error.status or 0),
                server_message(error.body, str(error.reason)),
                parse_retry_after(error.retry_after, self._clock()),
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise StoreUnavailable(f"/api/v2/write: {type(error).__name__}") from error
        return WriteAnswer(204)

    def present_ids(self, points: Sequence[PendingPoint]) -> set[str]:
        """Which of ``points`` are in the bucket, looked up by time, device and id."""
        alternatives = []
        for kind, group in group_by_kind(points).items():
            devices = " or ".join(
                f"r.device_id == {flux_string(device)}"
                for device in sorted({point.device_id for point in group})
            )
            alternatives.append(
                f"(r._measurement == {flux_string(measurement(kind))} and ({devices}))"
            )
        first = min(point.timestamp_ns for point in points)
        last = max(point.timestamp_ns for point in points)
        query = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {_time(first)}, stop: {_time(last + 1)})\n"
            f'  |> filter(fn: (r) => r._field == "id" and ({" or ".join(alternatives)}))\n'
            '  |> keep(columns: ["_value"])'
        )
        wanted = {point.reading_id for point in points}
        return wanted & {str(record.get_value()) for record in self._records(query)}

    def refusal_keeps_valid_points(self, answer: WriteAnswer) -> bool:
        """422 keeps the valid points; a 400 may have refused them all (``PointSink``)."""
        return answer.status == 422

    # -- queries ------------------------------------------------------------------------

    def readings(
        self, patient_id: str, kind: Kind, start: datetime, end: datetime
    ) -> list[StoredReading]:
        """A patient's readings of one kind with ``start <= measured_at < end``, oldest first."""
        check_time_range(start, end)
        query = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {_time(bound_ns(start))}, stop: {_time(bound_ns(end))})\n"
            f"  |> filter(fn: (r) => {_kinds_condition(kind)}"
            f" and r.patient_id == {flux_string(patient_id)})\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> group()\n"
            '  |> sort(columns: ["_time"])'
        )
        return [
            stored_reading(kind, record.get_time(), record.values)
            for record in self._records(query)
        ]

    def aggregates(
        self,
        patient_id: str,
        kind: Kind,
        field: str,
        start: datetime,
        end: datetime,
        every: timedelta,
    ) -> list[WindowAggregate]:
        """Mean, min, max and count of ``field`` per epoch-aligned window of ``every``."""
        check_value_field(kind, field)
        check_time_range(start, end)
        window = window_milliseconds(every)
        lines = [
            f"data = from(bucket: {flux_string(self.bucket)})",
            f"  |> range(start: {_time(bound_ns(start))}, stop: {_time(bound_ns(end))})",
            f"  |> filter(fn: (r) => {_kinds_condition(kind)}"
            f" and r.patient_id == {flux_string(patient_id)} and r._field == {flux_string(field)})",
            "  |> group()",
        ]
        lines += [
            f"data |> aggregateWindow(every: {window}ms, fn: {name}, createEmpty: false,"
            f' timeSrc: "_start") |> yield(name: "{name}")'
            for name in _AGGREGATES
        ]
        by_window: dict[int, dict[str, Any]] = {}
        for record in self._records("\n".join(lines)):
            # Flux clamps the first window's start to the range start: floor it back to
            # the epoch-aligned boundary.
            milliseconds = epoch_milliseconds(record.get_time())
            window_start = milliseconds - milliseconds % window
            by_window.setdefault(window_start, {})[record.values["result"]] = record.get_value()
        return [
            WindowAggregate(
                window_start=from_epoch_milliseconds(window_start),
                mean=float(summary["mean"]),
                min=float(summary["min"]),
                max=float(summary["max"]),
                count=int(summary["count"]),
            )
            for window_start, summary in sorted(by_window.items())
            if all(summary.get(name) is not None for name in _AGGREGATES)
        ]

    def last_readings(self, patient_id: str) -> dict[Kind, StoredReading]:
        """The latest reading of each kind the patient has (one Flux query)."""
        query = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {_time(EARLIEST_NS)}, stop: {_time(LATEST_NS)})\n"
            f"  |> filter(fn: (r) => r.patient_id == {flux_string(patient_id)}"
            f" and {_kinds_condition(None)})\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group(columns: ["_measurement"])\n'
            '  |> sort(columns: ["_time"])\n'
            '  |> last(column: "_time")'
        )
        latest: dict[Kind, StoredReading] = {}
        for record in self._records(query):
            kind = Kind(record.get_measurement())
            latest[kind] = stored_reading(kind, record.get_time(), record.values)
        return latest

    def last_readings_of(self, patient_ids: Sequence[str]) -> dict[str, dict[Kind, StoredReading]]:
        """The latest reading of each kind of each patient: one Flux query per chunk of
        patients, grouped by measurement and patient (as :meth:`last_readings`)."""
        latest: dict[str, dict[Kind, StoredReading]] = {
            patient_id: {} for patient_id in patient_ids
        }
        wanted = list(latest)
        for first in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = ", ".join(flux_string(each) for each in wanted[first : first + _IDS_PER_QUERY])
            query = (
                f"from(bucket: {flux_string(self.bucket)})\n"
                f"  |> range(start: {_time(EARLIEST_NS)}, stop: {_time(LATEST_NS)})\n"
                f"  |> filter(fn: (r) => contains(value: r.patient_id, set: [{chunk}])"
                f" and {_kinds_condition(None)})\n"
                '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
                '  |> group(columns: ["_measurement", "patient_id"])\n'
                '  |> sort(columns: ["_time"])\n'
                '  |> last(column: "_time")'
            )
            for record in self._records(query):
                kind = Kind(record.get_measurement())
                stored = stored_reading(kind, record.get_time(), record.values)
                latest[stored.patient_id][kind] = stored
        return latest

    def count(
        self,
        *,
        patient_id: str | None = None,
        kind: Kind | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """How many readings match every filter given (counts the ``id`` field)."""
        check_time_range(start, end)
        first = bound_ns(start) if start is not None else EARLIEST_NS
        stop = bound_ns(end) if end is not None else LATEST_NS
        patient = f" and r.patient_id == {flux_string(patient_id)}" if patient_id else ""
        query = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {_time(first)}, stop: {_time(stop)})\n"
            f'  |> filter(fn: (r) => r._field == "id" and {_kinds_condition(kind)}{patient})\n'
            "  |> group()\n"
            "  |> count()"
        )
        return sum(int(record.get_value()) for record in self._records(query))

    def ids(self, patient_id: str | None = None) -> set[str]:
        """Ids of all stored readings (of one patient); scans the bucket."""
        patient = f" and r.patient_id == {flux_string(patient_id)}" if patient_id else ""
        query = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {_time(EARLIEST_NS)}, stop: {_time(LATEST_NS)})\n"
            f'  |> filter(fn: (r) => r._field == "id" and {_kinds_condition(None)}{patient})\n'
            '  |> keep(columns: ["_value"])'
        )
        return {str(record.get_value()) for record in self._records(query)}

    def ping(self) -> None:
        """``GET /ping``; raise :class:`StoreUnavailable` unless the server answers."""
        if not self._client.ping():
            raise StoreUnavailable("/ping got no answer")

    def close(self) -> None:
        """Close the client's connection pool."""
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]

    # -- HTTP -----------------------------------------------------------------------------

    def _records(self, query: str) -> list[Any]:
        """Run a Flux query; every record of every table of every result."""
        try:
            tables: TableList = self._query_api.query(query, org=self.org)
        except ApiException as error:
            status = int(error.status or 0)
            message = server_message(error.body, str(error.reason))
            if status in (401, 403):
                raise StoreConfigError(
                    "credentials", f"refused with HTTP {status} querying {self._target}"
                ) from error
            if status == 404:
                raise StoreConfigError("bucket", f"{self._target}: {message}") from error
            if status in (408, 429) or status >= 500:
                raise StoreUnavailable(
                    f"/api/v2/query answered HTTP {status}",
                    retry_after_seconds=parse_retry_after(error.retry_after, self._clock()),
                ) from error
            raise StoreResponseError(message, status=status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise StoreUnavailable(f"/api/v2/query: {type(error).__name__}") from error
        return [record for table in tables for record in table.records]
