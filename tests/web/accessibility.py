"""axe-core, run inside a page: the automated part of the accessibility check.

axe-core is installed at test time from ``tests/web/axe/package-lock.json`` (``scripts/test``
runs ``npm ci`` there) and never served by the app. It is injected as an init script through
the DevTools protocol, which the page's CSP does not govern — the app itself still runs
under its strict CSP, with no inline script of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

AXE_SCRIPT: Final = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
REPORTED_IMPACTS: Final = ("serious", "critical")
"""axe's two highest impacts: what blocks or seriously hinders a user (axe's own scale)."""
RULE_TAGS: Final = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
"""WCAG 2.1 A and AA: the level the app aims at (contrast, names, labels, keyboard)."""


def watch_accessibility(page: Any) -> None:
    """Make axe available in every document ``page`` loads from now on."""
    if not AXE_SCRIPT.exists():
        pytest.fail(
            f"{AXE_SCRIPT} is missing: scripts/test installs it (npm ci in tests/web/axe)",
            pytrace=False,
        )
    page.add_init_script(path=str(AXE_SCRIPT))


def serious_violations(page: Any) -> list[str]:
    """axe's serious and critical WCAG 2.1 AA violations on the page as it is now shown."""
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }));
        }""",
        RULE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(v['nodes'])}"
        for v in found
        if v["impact"] in REPORTED_IMPACTS
    ]
