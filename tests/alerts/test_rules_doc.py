"""docs/alert-rules.md is what the default rule file generates."""

from __future__ import annotations

from alerts.rules import doc
from alerts.rules.model import RuleSet


def test_the_committed_document_matches_the_rule_file() -> None:
    assert doc.DOC_PATH.read_text(encoding="utf-8") == doc.render(), (
        "docs/alert-rules.md is stale: run `python -m alerts.rules.doc`"
    )


def test_every_rule_and_its_source_is_documented(rules: RuleSet) -> None:
    text = doc.render(rules)
    for rule in rules.rules:
        assert f"## {rule.id} — {rule.title} (version {rule.version})" in text
        assert f"Source: {rule.source}" in text
    assert "≥ 16.7 mmol/L / 300 mg/dL" in text
    assert "**deadline 15 min**" in text
