"""Rule files: the default set loads and ships; errors name the file, the rule and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.model import Severity
from alerts.rules.loader import RuleFileError, load_rules, parse_rules
from alerts.rules.model import RuleSet
from vitalgate.cli import app

DEFAULT = Path(__file__).resolve().parents[2] / "alerts" / "rules" / "default.yaml"
runner = CliRunner()


def test_the_default_set_is_table_a(rules: RuleSet) -> None:
    ids = [r.id for r in rules.rules]
    assert ids == [
        *("G1", "G2", "G3", "G4", "G5", "G6", "G7"),
        *("B1", "B2", "B3", "H1", "H2", "O1", "O2", "R1", "T1"),
        *("S1", "S2", "S3", "S4"),
        "SYS1",
        *("SYM1", "SYM2", "SYM3"),
    ]
    for rule in rules.rules:
        assert rule.source.strip(), rule.id
        assert rule.version >= 1
    assert rules.get("O2").replaces == "O1"
    assert {t.severity for t in rules.get("O1").tiers} == {Severity.P1, Severity.P2}
    g1 = rules.get("G1").tiers[0].conditions[0].bounds[0]
    assert dict(g1.by_unit) == {"mmol/L": 3.0, "mg/dL": 54.0}


def _document() -> dict[str, object]:
    loaded = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _broken(tmp_path: Path, rule_id: str, change: dict[str, object]) -> Path:
    document = _document()
    rules = document["rules"]
    assert isinstance(rules, list)
    for rule in rules:
        if rule["id"] == rule_id:
            for key, value in change.items():
                if value is None:
                    rule.pop(key)
                else:
                    rule[key] = value
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rule_id", "change", "message"),
    [
        ("G3", {"severity": "P9"}, r"rule G3: severity: 'P9' is not one of"),
        ("G1", {"version": None}, r"rule G1: version: required"),
        ("G1", {"late_after": "soon"}, r"rule G1: late_after: expected a duration"),
        ("B2", {"colour": "red"}, r"rule B2: colour: unknown key"),
        (
            "H1",
            {"applies_to": ["heartburn"]},
            r"rule H1: applies_to: unknown condition 'heartburn'",
        ),
        ("O2", {"replaces": "O9"}, r"rule O2: replaces: no rule 'O9'"),
        ("G6", {"params": {"below": {"mmol/L": 3.9}}}, r"rule G6: params.horizon: required"),
        ("S1", {"kind": "guess"}, r"rule S1: kind: 'guess' is not one of"),
        ("S2", {"severity": None}, r"rule S2: severity: required for kind missing"),
    ],
)
def test_errors_name_file_rule_and_key(
    tmp_path: Path, rule_id: str, change: dict[str, object], message: str
) -> None:
    path = _broken(tmp_path, rule_id, change)
    with pytest.raises(RuleFileError, match=rf"^{path}: {message}"):
        load_rules(path)


def test_a_unit_of_the_wrong_quantity_is_refused(tmp_path: Path) -> None:
    text = DEFAULT.read_text(encoding="utf-8").replace(
        "below: {mmol/L: 3.0, mg/dL: 54}", "below: {mmol/L: 3.0, kPa: 54}", 1
    )
    with pytest.raises(
        RuleFileError, match=r"rule G1: tiers\[0\]\.conditions\[0\]\.below: unit 'kPa'"
    ):
        parse_rules(text, "x.yaml")


def test_a_threshold_without_its_canonical_unit_is_refused() -> None:
    text = DEFAULT.read_text(encoding="utf-8").replace(
        "at_or_above: {mmol/L: 16.7, mg/dL: 300}", "at_or_above: {mg/dL: 300}", 1
    )
    with pytest.raises(RuleFileError, match=r"x\.yaml: rule G3: .*needs the canonical unit mmol/L"):
        parse_rules(text, "x.yaml")


def test_duplicate_ids_and_non_yaml() -> None:
    text = DEFAULT.read_text(encoding="utf-8").replace("- id: G2", "- id: G1", 1)
    with pytest.raises(RuleFileError, match=r"rule G1: id: defined twice"):
        parse_rules(text, "x.yaml")
    with pytest.raises(RuleFileError, match=r"^x\.yaml: not YAML"):
        parse_rules("rules: [", "x.yaml")


def test_rules_check_command(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["alerts", "rules", "check", str(DEFAULT)])
    assert ok.exit_code == 0, ok.output
    assert "24 rules OK" in ok.output
    bad = runner.invoke(
        app, ["alerts", "rules", "check", str(_broken(tmp_path, "B1", {"title": None}))]
    )
    assert bad.exit_code == 1
    assert "rule B1: title: required" in bad.output


def test_the_default_rules_ship_in_the_package() -> None:
    pyproject = (DEFAULT.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"*.yaml"' in pyproject
