"""The glossary (docs/glossary.md) is what the catalogues say: every catalogue key listed
for a term holds that term in Chinese and in English."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports.report_text import text

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
WEB = ROOT / "dashboard_api" / "static" / "i18n"


def _core(term: str) -> str:
    """The term without its bracketed abbreviation: 目标范围内时间（TIR） → 目标范围内时间."""
    return re.sub(r"[（(][^）)]*[）)]", "", term).strip()


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[4].startswith("`"):
            continue
        for key in re.findall(r"`([^`]+)`", cells[4]):
            rows.append((cells[0], cells[1], key))
    return rows


ROWS = _rows()
CATALOGUES = {
    "zh": json.loads((WEB / "zh-CN.json").read_text(encoding="utf-8")),
    "en": json.loads((WEB / "en.json").read_text(encoding="utf-8")),
}


def test_the_glossary_lists_terms_with_catalogue_keys() -> None:
    assert len(ROWS) >= 20


@pytest.mark.parametrize(("zh", "en", "key"), ROWS, ids=[r[2] for r in ROWS])
def test_each_catalogue_entry_uses_the_glossary_term(zh: str, en: str, key: str) -> None:
    source, _, name = key.partition(":")
    for lang, term in (("zh", zh), ("en", en)):
        if source == "web":
            said = CATALOGUES[lang][name]
        else:
            assert source == "report", key
            said = text(name, lang)  # type: ignore[arg-type]
        assert _core(term).lower() in said.lower(), (key, lang, term, said)
