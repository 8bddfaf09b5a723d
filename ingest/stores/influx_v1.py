"""Reading store on InfluxDB 1.x through its HTTP API (``/write``, ``/query`` with InfluxQL).

Tested against a real InfluxDB 1.6.7 (Debian's ``influxdb``), the only InfluxDB server
installable here. ``influxdb-client`` cannot talk to 1.x (it needs ``/api/v2``), so this
backend speaks HTTP itself through httpx. Writes use ``precision=ns`` and return after
the server's 204, which 1.x sends once the WAL is fsynced (``wal-fsync-delay`` 0 s).
The schema is in ``docs/storage.md``; server answers are handled as described in
:mod:`ingest.stores._influx_write`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

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
    from_timestamp_ns,
    measurement,
    stored_reading,
)
from ingest.stores.retry import parse_retry_after
from readings.model import Kind, Reading

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
"""Per request. A healthy influxd answers a 5000-point write in tens of ms; 10 s lets a
busy one finish a compaction pause, and bounds how long a frozen one blocks the writer."""
LATEST_LOOKBACKS: Final[tuple[timedelta | None, ...]] = (
    timedelta(days=2),
    timedelta(days=60),
    None,
)
"""How far back :meth:`InfluxV1Store.last_readings_of` looks, in turn (None: unbounded).
Daily devices report within two days; a stale series costs one more statement."""
_IDS_PER_QUERY: Final = 500
"""Patient ids per batched query: keeps the InfluxQL text (an ``OR`` per id) a few tens of kB."""


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _conditions(patient_id: str | None, start: datetime | None, end: datetime | None) -> list[str]:
    conditions = []
    if patient_id is not None:
        conditions.append(f'"patient_id" = {quote_string(patient_id)}')
    if start is not None:
        conditions.append(f"time >= {bound_ns(start)}")
    if end is not None:
        conditions.append(f"time < {bound_ns(end)}")
    return conditions


def _select(
    columns: str,
    kind: Kind,
    conditions: Sequence[str],
    suffix: str = "",
    *,
    retention_policy: str | None,
) -> str:
    """One InfluxQL SELECT on a kind's measurement; conditions come from :func:`_conditions`.

    Reads the retention policy the store writes to (the database's default if None).
    """
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    source = quote_identifier(measurement(kind))
    if retention_policy:
        source = f"{quote_identifier(retention_policy)}.{source}"
    # Every value in the conditions went through quote_string or is an int.
    return f"SELECT {columns} FROM {source}{where}{suffix}"  # noqa: S608


def _any_patient(patient_ids: Sequence[str]) -> str:
    """``patient_id`` is one of ``patient_ids``, as one anchored regex: InfluxDB 1.x answers
    it ≈ 3× faster than the same ids as ``OR``-ed equalities (``docs/benchmarks.md``)."""
    alternatives = "|".join(re.escape(each).replace("/", "\\/") for each in patient_ids)
    return f'"patient_id" =~ /^(?:{alternatives})$/'


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one statement's result as column → value mappings (with the ``GROUP BY``
    tags of their series, which InfluxDB leaves out of the columns)."""
    rows: list[dict[str, Any]] = []
    for series in result.get("series", ()):
        columns = series["columns"]
        tags = series.get("tags") or {}
        rows.extend(
            {**tags, **dict(zip(columns, values, strict=True))} for values in series["values"]
        )
    return rows


class InfluxV1Store:
    """:class:`~ingest.stores.base.ReadingStore` on an InfluxDB 1.x database.

    Args:
        base_url: ``http(s)://host:port``.
        database: the database (created beforehand, see ``deploy/influxdb/README.md``).
        username: for HTTP basic auth, if the server has ``auth-enabled``.
        password: the user's password.
        retention_policy: write to this retention policy instead of the default one.
        timeout_seconds: per HTTP request.
        max_points_per_request: a larger batch is written in several requests.
        transport: an httpx transport (tests).
        clock: current UTC time, for ``Retry-After`` dates.
    """

    def __init__(
        self,
        *,
        base_url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        retention_policy: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_points_per_request: int = 5000,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not database:
            raise StoreConfigError("database", "no database named (the URL's path)")
        self.base_url = base_url
        self.database = database
        self.username = username
        self.retention_policy = retention_policy
        self.timeout_seconds = timeout_seconds
        self.max_points_per_request = max_points_per_request
        self._clock = clock
        auth = httpx.BasicAuth(username, password or "") if username else None
        # trust_env=False: readings never go through a proxy from the environment; the
        # store is inside the deployment, and health data never leaves it (docs/storage.md).
        self._http = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=timeout_seconds,
            transport=transport,
            trust_env=False,
        )
        self._target = f'InfluxDB database "{database}"'

    # -- writing ------------------------------------------------------------------------

    def write(self, readings: Sequence[Reading]) -> WriteResult:
        """Write ``readings``; return once the server answered 204 for every point kept.

        Raises:
            StoreUnavailable: the server did not answer, or answered 408/429/5xx.
            StoreConfigError: credentials refused, or the database does not exist.
        """
        if not readings:
            return WriteResult(stored=())
        return write_readings(
            readings,
            self,
            target=self._target,
            container="database",
            max_points_per_request=self.max_points_per_request,
        )

    def post(self, lines: Sequence[str]) -> WriteAnswer:
        """One ``POST /write``; the answer's status and message (part of ``PointSink``)."""
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        response = self._request(
            "POST",
            "/write",
            params=params,
            content="\n".join(lines).encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        if response.status_code == 204:
            return WriteAnswer(204)
        return WriteAnswer(
            response.status_code,
            server_message(response.content, response.reason_phrase),
            parse_retry_after(response.headers.get("Retry-After"), self._clock()),
        )

    def present_ids(self, points: Sequence[PendingPoint]) -> set[str]:
        """Which of ``points`` are in the database, looked up by time, device and id."""
        statements = []
        for kind, group in group_by_kind(points).items():
            devices = " OR ".join(
                f'"device_id" = {quote_string(device)}'
                for device in sorted({point.device_id for point in group})
            )
            first = min(point.timestamp_ns for point in group)
            last = max(point.timestamp_ns for point in group)
            statements.append(
                _select(
                    '"id"',
                    kind,
                    [f"time >= {first}", f"time <= {last}", f"({devices})"],
                    retention_policy=self.retention_policy,
                )
            )
        wanted = {point.reading_id for point in points}
        found = {row["id"] for result in self._query(statements) for row in _rows(result)}
        return wanted & found

    def refusal_keeps_valid_points(self, answer: WriteAnswer) -> bool:
        """Always: 1.x writes every point it could parse and fit (part of ``PointSink``)."""
        return True

    # -- queries ------------------------------------------------------------------------

    def readings(
        self, patient_id: str, kind: Kind, start: datetime, end: datetime
    ) -> list[StoredReading]:
        """A patient's readings of one kind with ``start <= measured_at < end``, oldest first."""
        check_time_range(start, end)
        statement = _select(
            "*",
            kind,
            _conditions(patient_id, start, end),
            " ORDER BY time ASC",
            retention_policy=self.retention_policy,
        )
        (result,) = self._query([statement])
        return [stored_reading(kind, from_timestamp_ns(row["time"]), row) for row in _rows(result)]

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
        column = quote_identifier(field)
        statement = _select(
            f"mean({column}), min({column}), max({column}), count({column})",
            kind,
            _conditions(patient_id, start, end),
            f" GROUP BY time({window}ms) fill(none)",
            retention_policy=self.retention_policy,
        )
        (result,) = self._query([statement])
        return [
            WindowAggregate(
                window_start=from_timestamp_ns(row["time"]),
                mean=float(row["mean"]),
                min=float(row["min"]),
                max=float(row["max"]),
                count=int(row["count"]),
            )
            for row in _rows(result)
            if row["count"]
        ]

    def last_readings(self, patient_id: str) -> dict[Kind, StoredReading]:
        """The latest reading of each kind the patient has (one request, a statement per kind)."""
        kinds = list(Kind)
        conditions = _conditions(patient_id, None, None)
        statements = [
            _select(
                "*",
                kind,
                conditions,
                " ORDER BY time DESC LIMIT 1",
                retention_policy=self.retention_policy,
            )
            for kind in kinds
        ]
        latest: dict[Kind, StoredReading] = {}
        for kind, result in zip(kinds, self._query(statements), strict=True):
            for row in _rows(result):
                latest[kind] = stored_reading(kind, from_timestamp_ns(row["time"]), row)
        return latest

    def last_readings_of(self, patient_ids: Sequence[str]) -> dict[str, dict[Kind, StoredReading]]:
        """The latest reading of each kind of each patient: per chunk of patients, a statement
        per kind grouped by ``patient_id`` (``LIMIT 1`` per group), in one request.

        InfluxDB 1.x reads every block of a series for ``ORDER BY time DESC LIMIT 1``, so 300
        patients with 90 days each take seconds. Most latest readings are recent: the
        statements look back :data:`LATEST_LOOKBACKS` first and only the (kind, patient)
        pairs still without a reading are asked again over a longer span, then unbounded.
        A reading found after ``now - lookback`` is the latest of its series, since every
        other reading of it is older (no upper bound: a device clock may run ahead).
        """
        latest: dict[str, dict[Kind, StoredReading]] = {
            patient_id: {} for patient_id in patient_ids
        }
        now = self._clock()
        missing = {kind: list(latest) for kind in Kind}
        for lookback in LATEST_LOOKBACKS:
            since = [] if lookback is None else [f"time >= {bound_ns(now - lookback)}"]
            asked = [
                (kind, ids[first : first + _IDS_PER_QUERY])
                for kind, ids in missing.items()
                for first in range(0, len(ids), _IDS_PER_QUERY)
            ]
            if not asked:
                break
            statements = [
                _select(
                    "*",
                    kind,
                    [_any_patient(chunk), *since],
                    ' GROUP BY "patient_id" ORDER BY time DESC LIMIT 1',
                    retention_policy=self.retention_policy,
                )
                for kind, chunk in asked
            ]
            for (kind, _), result in zip(asked, self._query(statements), strict=True):
                for row in _rows(result):
                    stored = stored_reading(kind, from_timestamp_ns(row["time"]), row)
                    latest[stored.patient_id][kind] = stored
            missing = {
                kind: [each for each in ids if kind not in latest[each]]
                for kind, ids in missing.items()
            }
            missing = {kind: ids for kind, ids in missing.items() if ids}
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
        conditions = _conditions(patient_id, start, end)
        statements = [
            _select('count("id")', each, conditions, retention_policy=self.retention_policy)
            for each in ([kind] if kind is not None else list(Kind))
        ]
        return sum(int(row["count"]) for result in self._query(statements) for row in _rows(result))

    def ids(self, patient_id: str | None = None) -> set[str]:
        """Ids of all stored readings (of one patient); scans every measurement."""
        conditions = _conditions(patient_id, None, None)
        statements = [
            _select('"id"', kind, conditions, retention_policy=self.retention_policy)
            for kind in Kind
        ]
        return {row["id"] for result in self._query(statements) for row in _rows(result)}

    def ping(self) -> None:
        """``GET /ping``; raise :class:`StoreUnavailable` unless it answers 204."""
        response = self._request("GET", "/ping")
        if response.status_code != 204:
            raise StoreUnavailable(f"/ping answered HTTP {response.status_code}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    # -- HTTP -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise StoreUnavailable(f"{path}: no answer in time ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise StoreUnavailable(f"{path}: {type(error).__name__}: {error}") from error

    def _query(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """Run InfluxQL statements in one request; one result per statement."""
        response = self._request(
            "POST",
            "/query",
            data={"db": self.database, "q": ";".join(statements), "epoch": "ns"},
        )
        status = response.status_code
        if status in (401, 403):
            raise StoreConfigError(
                "credentials", f"refused with HTTP {status} querying {self._target}"
            )
        if status == 429 or status >= 500:
            raise StoreUnavailable(
                f"/query answered HTTP {status}",
                retry_after_seconds=parse_retry_after(
                    response.headers.get("Retry-After"), self._clock()
                ),
            )
        if status != 200:
            raise StoreResponseError(
                server_message(response.content, response.reason_phrase), status=status
            )
        results: list[dict[str, Any]] = response.json().get("results", [])
        for result in results:
            error = result.get("error")
            if error is None:
                continue
            if str(error).startswith("database not found"):
                raise StoreConfigError("database", f"{self._target} not found")
            raise StoreResponseError(str(error), status=status)
        if len(results) != len(statements):
            raise StoreResponseError(
                f"{len(results)} results for {len(statements)} statements", status=status
            )
        return results
