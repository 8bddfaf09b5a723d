"""docs/authorization.md states exactly the matrix the code applies."""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import iter_route_contexts

from dashboard_api.app import create_app
from dashboard_api.authz import FAMILY_SCOPES, MATRIX, ROLE_MATRIX, Action, SystemAction
from dashboard_api.config import ApiSettings
from dashboard_api.deps import SYSTEM_ROUTE_MARKER
from dashboard_api.sms import FileSmsSender
from registry.access import Relationship
from registry.care_models import ConsentScope, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"


def _rows(marker: str) -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker}:start", 1)[1].split(f"<!-- {marker}:end", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _marks(marker: str) -> dict[tuple[str, str], bool]:
    header, _rule, *body = _rows(marker)
    cells: dict[tuple[str, str], bool] = {}
    for row in body:
        action = row[0].strip("`")
        for column, mark in zip(header[1:], row[1:], strict=True):
            assert mark in ("✓", "—"), (action, column, mark)
            cells[(action, column)] = mark == "✓"
    return cells


def _table() -> dict[tuple[str, str], bool]:
    return _marks("matrix")


def test_the_documented_matrix_is_the_code() -> None:
    expected = {}
    for action in Action:
        for relationship in Relationship:
            if relationship is not Relationship.FAMILY:
                expected[(action.value, relationship.value)] = action in MATRIX[relationship]
        for scope in ConsentScope:
            expected[(action.value, f"family: {scope.value}")] = action in FAMILY_SCOPES[scope]
    assert _table() == expected
    assert MATRIX[Relationship.FAMILY] == frozenset()  # family rights come from scopes only


def test_the_documented_role_matrix_is_the_code() -> None:
    expected = {
        (action.value, role.value): action in ROLE_MATRIX[role]
        for action in SystemAction
        for role in Role
    }
    assert _marks("roles") == expected


def test_every_route_of_the_role_gate_is_documented_with_its_action(tmp_path: Path) -> None:
    app = create_app(
        ApiSettings(token_secret="d" * 48),
        registry=None,  # type: ignore[arg-type]  # routes are listed, never called
        store=None,  # type: ignore[arg-type]
        sms=FileSmsSender(tmp_path / "sms.jsonl"),
    )
    served: dict[str, str] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        stack = list(dependant.dependencies) if dependant is not None else []
        while stack:
            dependency = stack.pop()
            action = getattr(dependency.call, SYSTEM_ROUTE_MARKER, None)
            if action is not None:
                for method in route.methods or ():
                    served[f"{method} {route.path}"] = action.value
            stack.extend(dependency.dependencies)
    _header, _rule, *body = _rows("system-routes")
    documented = {row[0].strip("`"): row[1].strip("`") for row in body}
    assert served == documented
    # Every route under these prefixes is behind the role gate (none escapes it).
    prefixed = {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        for method in getattr(route, "methods", None) or ()
        if route.path.startswith(("/api/v1/admin", "/api/v1/audit", "/api/v1/quarantine"))
        or route.path == "/api/v1/security-events"
    }
    assert prefixed == set(served)
