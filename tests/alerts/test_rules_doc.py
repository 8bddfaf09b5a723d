"""docs/alert-rules.md is what the default rule file generates."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_an_option_is_not_taken_for_the_output_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        doc.main(["--help"])
    assert exit_.value.code == 0
    assert "usage" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
