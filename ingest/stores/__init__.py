"""Reading stores: one interface (:class:`~ingest.stores.base.ReadingStore`), three backends.

:func:`open_store` picks the backend from a URL:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — embedded default;
* ``influxdb-v1://[user:password@]host:port/database[?rp=NAME&tls=1&timeout=SECONDS]`` —
  InfluxDB 1.x through its HTTP API;
* ``influxdb://TOKEN@host:port?org=ORG&bucket=BUCKET[&tls=1&timeout=SECONDS]`` —
  InfluxDB 2.x (and Cloud) through ``influxdb-client``.

The InfluxDB backends are imported only when asked for, so the SQLite store works
without httpx or influxdb-client installed.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from ingest.stores.base import (
    InvalidQuery,
    PointEncodingError,
    ReadingStore,
    RejectedPoint,
    StoreConfigError,
    StoredReading,
    StoreError,
    StoreResponseError,
    StoreUnavailable,
    WindowAggregate,
    WriteResult,
)

__all__ = [
    "InvalidQuery",
    "PointEncodingError",
    "ReadingStore",
    "RejectedPoint",
    "StoreConfigError",
    "StoreError",
    "StoreResponseError",
    "StoreUnavailable",
    "StoredReading",
    "WindowAggregate",
    "WriteResult",
    "open_store",
]

_SCHEMES = "sqlite:///PATH, influxdb-v1://HOST:PORT/DB or influxdb://TOKEN@HOST:PORT?org=&bucket="


def _options(query: str) -> dict[str, str]:
    options = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if len(values) > 1:
            raise StoreConfigError(name, "given more than once in the store URL")
        options[name] = values[0]
    return options


def _take_timeout(options: dict[str, str], default: float) -> float:
    if "timeout" not in options:
        return default
    text = options.pop("timeout")
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise StoreConfigError("timeout", f"{text!r} is not a positive number of seconds")
    return seconds


def _take_tls(options: dict[str, str]) -> bool:
    text = options.pop("tls", "0")
    if text not in ("0", "1"):
        raise StoreConfigError("tls", f"{text!r}: use tls=1 or tls=0")
    return text == "1"


def _refuse_unknown(options: dict[str, str], scheme: str) -> None:
    if options:
        raise StoreConfigError(sorted(options)[0], f"unknown option for a {scheme} store URL")


def _host_port(host: str | None, port: int | None, scheme: str) -> str:
    if not host:
        raise StoreConfigError("host", f"the {scheme} URL names no host")
    if port is None:
        raise StoreConfigError("port", f"the {scheme} URL names no port (InfluxDB: 8086)")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_store(url: str) -> ReadingStore:
    """Open the reading store that ``url`` names (see the module docstring).

    Raises:
        StoreConfigError: the URL is malformed; the error names the part at fault. Never
            contains the password or token.
    """
    scheme, separator, _ = url.partition("://")
    if not separator:
        raise StoreConfigError("scheme", f"not a URL; expected {_SCHEMES}")
    if scheme == "sqlite":
        return _open_sqlite(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise StoreConfigError("port", f"unreadable host or port: {error}") from None
    if scheme == "influxdb-v1":
        return _open_influx_v1(
            parts.hostname, port, parts.username, parts.password, parts.path, parts.query
        )
    if scheme == "influxdb":
        return _open_influx_v2(
            parts.hostname, port, parts.username, parts.password, parts.path, parts.query
        )
    raise StoreConfigError("scheme", f"{scheme!r} is not a store; expected {_SCHEMES}")


def _open_sqlite(url: str) -> ReadingStore:
    from ingest.stores.sqlite_store import SqliteReadingStore

    path, _, query = url.removeprefix("sqlite:///").partition("?")
    if query:
        raise StoreConfigError("query", "a sqlite store URL takes no options")
    if not path or path == ":memory:":
        raise StoreConfigError(
            "path",
            "name a database file, e.g. sqlite:///./vitalgate-data/readings.db "
            "(in-memory databases are not durable)",
        )
    return SqliteReadingStore(unquote(path))


def _open_influx_v1(
    host: str | None,
    port: int | None,
    username: str | None,
    password: str | None,
    path: str,
    query: str,
) -> ReadingStore:
    from ingest.stores.influx_v1 import DEFAULT_TIMEOUT_SECONDS, InfluxV1Store

    options = _options(query)
    timeout = _take_timeout(options, DEFAULT_TIMEOUT_SECONDS)
    tls = _take_tls(options)
    retention_policy = options.pop("rp", None)
    _refuse_unknown(options, "influxdb-v1")
    database = unquote(path.strip("/"))
    if not database or "/" in database:
        raise StoreConfigError("database", "name one database as the URL's path: /DB")
    return InfluxV1Store(
        base_url=f"{'https' if tls else 'http'}://{_host_port(host, port, 'influxdb-v1')}",
        database=database,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        retention_policy=retention_policy or None,
        timeout_seconds=timeout,
    )


def _open_influx_v2(
    host: str | None,
    port: int | None,
    username: str | None,
    password: str | None,
    path: str,
    query: str,
) -> ReadingStore:
    from ingest.stores.influx_v2 import DEFAULT_TIMEOUT_SECONDS, InfluxV2Store

    options = _options(query)
    timeout = _take_timeout(options, DEFAULT_TIMEOUT_SECONDS)
    tls = _take_tls(options)
    org = options.pop("org", "")
    bucket = options.pop("bucket", "")
    _refuse_unknown(options, "influxdb")
    if password is not None:
        raise StoreConfigError("token", "give the API token alone before the @, not user:password")
    if not username:
        raise StoreConfigError("token", "the URL carries no API token: influxdb://TOKEN@HOST:PORT")
    if path.strip("/"):
        raise StoreConfigError("path", "name the bucket with ?bucket=, not in the path")
    if not org:
        raise StoreConfigError("org", "missing: add ?org=ORG to the URL")
    if not bucket:
        raise StoreConfigError("bucket", "missing: add &bucket=BUCKET to the URL")
    return InfluxV2Store(
        url=f"{'https' if tls else 'http'}://{_host_port(host, port, 'influxdb')}",
        token=unquote(username),
        org=org,
        bucket=bucket,
        timeout_seconds=timeout,
    )
