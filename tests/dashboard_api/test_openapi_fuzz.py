"""schemathesis over the API's own OpenAPI document: every operation, as a family doctor and
without a token, against the real app on a real SQLite registry and SQLite reading store
(seeded as in ``conftest.py``).

Checks on every response: no 5xx, the status code is documented for the operation, the
content type is documented for that status, and the body conforms to the documented schema.
The operations come from the document at run time, so a route added later is fuzzed too.
Only operations that answer with an endless ``text/event-stream`` are left out: a stream
never completes a request (``test_stream.py`` covers it).

Bounded for CI: few examples per operation, derandomized (the same cases every run), no
deadline (argon2 and the first SQLite query are slow on a loaded machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from dashboard_api.config import API_PREFIX
from tests.dashboard_api.conftest import T0, Deployment, seeded_deployment

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 4
"""Enough to try each parameter's edge values once or twice; well under a minute in all."""


def _streams(ctx: Any) -> bool:
    """An operation whose success answer is an endless Server-Sent Events stream."""
    responses = ctx.operation.definition.raw.get("responses", {})
    return any(
        "text/event-stream" in answer.get("content", {})
        for code, answer in responses.items()
        if str(code).startswith("2")
    )


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One seeded deployment for the whole module (building one per operation is slow)."""
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    with seeded_deployment(
        f"sqlite:///{tmp_path / 'registry.db'}", tmp_path, login_attempts_per_minute=100_000
    ) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def doctor_token(fuzzed: Deployment) -> str:
    return fuzzed.login("dr.zhang")


@pytest.fixture(scope="module")
def api_schema(fuzzed: Deployment) -> Any:
    # The doctor's own patient in every path: a random id stops at the gate's 404 and
    # would never reach a route's body (not-your-patient is the authorization matrix's job).
    # A time range the seeded readings fall in: random date-times almost never make a
    # range the readings route accepts (start < end, at most 400 days, with an offset).
    pinned = {
        "path.patient_id": "p-wang",
        "query.start": (T0 - timedelta(days=3)).isoformat(),
        "query.end": T0.isoformat(),
    }
    config = SchemathesisConfig.from_dict({"parameters": pinned})
    return schemathesis.openapi.from_asgi(f"{API_PREFIX}/openapi.json", fuzzed.app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(_streams)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_a_doctor(case: Any, doctor_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {doctor_token}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_without_a_token(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
