"""Every explanation key the rules can emit reads in zh-CN and en, with its numbers."""

from __future__ import annotations

import re
from pathlib import Path

from alerts.model import FindingStatus
from dashboard_api.explanations import LANGUAGES, PREFIX, catalogue, explain

RULES = Path(__file__).resolve().parents[2] / "alerts"
_LITERAL = re.compile(r'"((?:alert|system)\.[a-z_.]+)"')
_TOGGLED = re.compile(r'(?:_make|_result)\((?:[^()]|\([^()]*\))*?"(alert\.[a-z_.]+)"', re.S)
"""Keys handed to the helpers that emit ``key`` when firing and ``key.clear`` otherwise."""


def emitted_keys() -> set[str]:
    """The explanation keys in the rule code (and the escalation's SYS alert)."""
    keys: set[str] = set()
    for path in sorted((RULES / "rules").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        keys |= set(_LITERAL.findall(text))
        keys |= {f"{key}.clear" for key in _TOGGLED.findall(text)}
        if 'f"alert.threshold.{status.value}"' in text:
            keys |= {f"alert.threshold.{status.value}" for status in FindingStatus}
    escalation = (RULES / "escalation.py").read_text(encoding="utf-8")
    keys |= set(re.findall(r'Explanation\("([a-z_.]+)"', escalation))
    return keys


def test_the_scan_finds_the_keys_of_every_rule_kind() -> None:
    keys = emitted_keys()
    for expected in (
        "alert.threshold.firing",
        "alert.threshold.pending",
        "alert.threshold.clear",
        "alert.stale.clear",
        "alert.window_mean.pending",
        "alert.weight_change.clear",
        "alert.cgm_summary",
        "alert.late_review",
        "system.notify_failed",
    ):
        assert expected in keys


def test_every_emitted_key_has_both_translations() -> None:
    for language in LANGUAGES:
        messages = catalogue(language)
        missing = sorted(k for k in emitted_keys() if not messages.get(PREFIX + k, "").strip())
        assert missing == [], (language, missing)
    # English alone has singular forms (``key.one``, beside their plural key).
    english = {k for k in catalogue("en") if not (k.endswith(".one") and k[:-4] in catalogue("en"))}
    assert set(catalogue("zh-CN")) == english


def test_a_count_of_lows_reads_in_both_languages_with_the_threshold_in_force() -> None:
    text = explain(
        "alert.threshold.firing",
        {"events_7d": 3, "readings": 1, "severity": "P1"},
        rule_id="G1",
        metric="glucose",
        severity="P1",
        # A per-patient override of G1 (below 3.3 mmol/L) is what the text must show.
        thresholds={"below mmol/L": 3.3, "below mg/dL": 59},
    )
    assert text == {
        "zh-CN": "7 天内 3 次血糖 < 3.3 mmol/L",
        "en": "3 reading(s) of glucose < 3.3 mmol/L in 7 days",
    }


def test_every_emitted_key_renders_without_a_gap() -> None:
    for key in emitted_keys():
        rendered = explain(key, {}, rule_id="G1", metric="glucose", severity="P1", thresholds={})
        for language in LANGUAGES:
            assert "⟦" not in rendered[language], (language, key)
