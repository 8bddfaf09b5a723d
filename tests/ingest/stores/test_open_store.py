"""open_store: one URL names the backend and its settings; bad URLs name the bad part."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ingest.stores import StoreConfigError, open_store
from ingest.stores.influx_v1 import InfluxV1Store
from ingest.stores.influx_v2 import InfluxV2Store
from ingest.stores.sqlite_store import SqliteReadingStore


def test_sqlite_url_opens_a_file_creating_its_directory(tmp_path: Path) -> None:
    with closing(open_store(f"sqlite:///{tmp_path}/data/readings.db")) as store:
        assert isinstance(store, SqliteReadingStore)
        assert (tmp_path / "data" / "readings.db").is_file()


def test_influx_v1_url_with_credentials_options_and_tls() -> None:
    url = "influxdb-v1://ingest:s%40cret@influx.local:8086/vitalgate?rp=two_years&tls=1&timeout=2.5"
    with closing(open_store(url)) as store:
        assert isinstance(store, InfluxV1Store)
        assert store.database == "vitalgate"
        assert store.retention_policy == "two_years"
        assert store.base_url == "https://influx.local:8086"
        assert store.timeout_seconds == 2.5
        assert store.username == "ingest"


def test_influx_v2_url() -> None:
    url = "influxdb://my-token@influx.local:8086?org=clinic&bucket=readings"
    with closing(open_store(url)) as store:
        assert isinstance(store, InfluxV2Store)
        assert (store.url, store.org, store.bucket) == (
            "http://influx.local:8086",
            "clinic",
            "readings",
        )


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("readings.db", "scheme"),
        ("postgres://host/db", "scheme"),
        ("sqlite:///", "path"),
        ("sqlite:///:memory:", "path"),
        ("sqlite:///x.db?mode=ro", "query"),
        ("influxdb-v1://host:8086/", "database"),
        ("influxdb-v1://host/db", "port"),
        ("influxdb-v1://:8086/db", "host"),
        ("influxdb-v1://host:port/db", "port"),
        ("influxdb-v1://host:8086/db?tls=yes", "tls"),
        ("influxdb-v1://host:8086/db?timeout=0", "timeout"),
        ("influxdb-v1://host:8086/db?colour=red", "colour"),
        ("influxdb://host:8086?org=o&bucket=b", "token"),
        ("influxdb://user:secret-password@host:8086?org=o&bucket=b", "token"),
        ("influxdb://secret-token@host:8086?bucket=b", "org"),
        ("influxdb://secret-token@host:8086?org=o", "bucket"),
        ("influxdb://secret-token@host:8086/b?org=o&bucket=b", "path"),
        ("influxdb://secret-token@host:8086?org=o&org=p&bucket=b", "org"),
    ],
)
def test_a_bad_url_names_the_part_and_never_the_secret(url: str, part: str) -> None:
    with pytest.raises(StoreConfigError) as error:
        open_store(url)

    assert error.value.part == part
    assert "secret" not in str(error.value)


def test_a_file_that_is_not_a_database_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    path.write_bytes(b"this is not an SQLite database" * 100)

    with pytest.raises(StoreConfigError) as error:
        open_store(f"sqlite:///{path}")

    assert error.value.part == "path"


def test_a_database_from_a_newer_vitalgate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version=99")

    with pytest.raises(StoreConfigError) as error:
        open_store(f"sqlite:///{path}")

    assert "upgrade VitalGate" in error.value.problem
