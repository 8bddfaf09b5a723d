"""An empty registry on each backend, for the fixtures of the registry and API suites.

PostgreSQL gets a schema of its own per test in the session's database (``search_path`` in
the URL), so each test migrates from scratch without creating a database per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]


def postgres_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with its ``search_path`` set to ``schema``."""
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def empty_registry(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Iterator[str]:
    """The URL of an empty registry on the backend ``request.param`` names."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    base_url: str = request.getfixturevalue("postgres_url")
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield postgres_schema_url(base_url, schema)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
