"""Fixtures of the registry tests: one contract suite, run on SQLite and on PostgreSQL.

``registry_url`` is parametrised over both backends. PostgreSQL uses the session's fresh
database (``postgres_url`` from the root conftest, which skips when no server is
reachable) and gives every test its own schema through ``search_path``, so each test
migrates from scratch without creating a database per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from registry.db import create_engine_for, upgrade
from tests.fakes import ManualClock
from tests.registry_backends import BACKENDS, empty_registry

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
"""A fixed "now" for the tests' clocks."""


@dataclass
class StatementCounter:
    """Counts the SQL statements an engine sends."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, *args: object) -> None:
        self.statements.append(str(args[2]))

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty registry database (not migrated) on each backend."""
    with empty_registry(request, tmp_path, "t") as url:
        yield url


@pytest.fixture
def engine(registry_url: str) -> Iterator[Engine]:
    """An engine on a freshly migrated registry."""
    upgrade(registry_url)
    registry_engine = create_engine_for(registry_url)
    yield registry_engine
    registry_engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def statements(engine: Engine) -> Iterator[StatementCounter]:
    """Every statement ``engine`` sends from now on."""
    counter = StatementCounter()
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)
