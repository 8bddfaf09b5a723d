"""Root conftest: fixtures that start real services from :mod:`tests.harness`.

Real Mosquitto and InfluxDB are required: if a binary is missing the fixture
fails (it does not skip). PostgreSQL is an existing server; ``postgres_url``
skips if none is reachable or no driver is installed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.harness.services import (
    INFLUXD_BINARY,
    MOSQUITTO_BINARY,
    InfluxDBFactory,
    InfluxDBServer,
    MissingBinaryError,
    MosquittoFactory,
    MosquittoServer,
    PostgresUnavailable,
    ServiceFactory,
    ServiceProcess,
    find_postgres,
    kill_all_services,
    postgres_driver,
    require_binary,
    unique_name,
)


def _require(binary: Path) -> None:
    try:
        require_binary(binary)
    except MissingBinaryError as error:
        message = str(error)
    else:
        return
    # Fail, never skip: a skipped integration suite looks green and proves nothing.
    pytest.fail(message, pytrace=False)


class _MakeDir:
    """Fresh numbered directory per server, under pytest's basetemp (kept for debugging)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._factory = tmp_path_factory

    def __call__(self, basename: str) -> Path:
        return self._factory.mktemp(basename, numbered=True)


# -- Mosquitto ----------------------------------------------------------------------------


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    """Start extra brokers: ``mosquitto_factory(extra_config=[...], allow_anonymous=False)``.

    Every broker it started is stopped at teardown, whatever the test did to it.
    """
    _require(MOSQUITTO_BINARY)
    factory = MosquittoFactory(_MakeDir(tmp_path_factory))
    yield factory
    factory.close()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    """A fresh, started Mosquitto broker for this test (anonymous access, persistence on)."""
    return mosquitto_factory()


# -- InfluxDB -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDBServer]:
    """One InfluxDB shared by the session; use ``influx_database`` for isolation.

    Do not kill or pause it (use ``influxdb_fresh``); ``influx_database`` revives it if
    a test did, so one bad test does not fail all later ones.
    """
    _require(INFLUXD_BINARY)
    server = InfluxDBServer(tmp_path_factory.mktemp("influxdb-session"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxdb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDBFactory]:
    """Start private InfluxDB servers: ``influxdb_factory(config_overrides={...})``."""
    _require(INFLUXD_BINARY)
    factory = InfluxDBFactory(_MakeDir(tmp_path_factory))
    yield factory
    factory.close()


@pytest.fixture
def influxdb_fresh(influxdb_factory: InfluxDBFactory) -> InfluxDBServer:
    """A private InfluxDB for this test, free to kill, pause and restart."""
    return influxdb_factory()


@pytest.fixture
def influx_database(influxdb: InfluxDBServer) -> Iterator[str]:
    """Name of a new, empty database on the session InfluxDB (dropped afterwards)."""
    if influxdb.paused:
        influxdb.resume()
    if not influxdb.is_running():
        influxdb.start()
    name = unique_name("vg_test")
    influxdb.create_database(name)
    yield name
    if influxdb.is_running() and not influxdb.paused:
        influxdb.drop_database(name)


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Generator[str, None, None]:
    """SQLAlchemy URL of a fresh database on an existing server (dropped at session end).

    ``$VITALGATE_TEST_POSTGRES_URL`` if set, else ``postgres@127.0.0.1:5432`` (trust auth).
    Skips if no psycopg/psycopg2 driver is installed or no server is reachable.
    """
    driver = postgres_driver()
    if driver is None:
        pytest.skip("PostgreSQL tests need psycopg (v3) or psycopg2; neither is installed")
    try:
        database = find_postgres()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    database.create()
    try:
        yield database.sqlalchemy_url(driver)
    finally:
        database.drop()


# -- diagnostics and cleanup ----------------------------------------------------------------


def _services_in(value: object) -> list[ServiceProcess]:
    if isinstance(value, ServiceProcess):
        return [value]
    if isinstance(value, ServiceFactory):
        return list(value.servers)
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the log tail of every service a failed test used to its report."""
    report = yield
    if report.failed and isinstance(item, pytest.Function):
        seen: set[int] = set()
        for value in item.funcargs.values():
            for service in _services_in(value):
                if id(service) in seen:
                    continue
                seen.add(id(service))
                report.sections.append((f"service log: {service.describe()}", service.log_tail()))
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last line of defence: no service process outlives the test run."""
    kill_all_services()
