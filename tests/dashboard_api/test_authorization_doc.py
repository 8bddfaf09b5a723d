"""docs/authorization.md states exactly the matrix the code applies."""

from __future__ import annotations

from pathlib import Path

from dashboard_api.authz import FAMILY_SCOPES, MATRIX, Action
from registry.access import Relationship
from registry.care_models import ConsentScope

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"


def _table() -> dict[tuple[str, str], bool]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- matrix:start", 1)[1].split("<!-- matrix:end", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    cells: dict[tuple[str, str], bool] = {}
    for line in lines[2:]:
        row = [cell.strip() for cell in line.strip("|").split("|")]
        action = row[0].strip("`")
        for column, mark in zip(header[1:], row[1:], strict=True):
            assert mark in ("✓", "—"), (action, column, mark)
            cells[(action, column)] = mark == "✓"
    return cells


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
