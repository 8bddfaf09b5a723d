"""Is Chinese drawn with a Chinese font, and is every message translated? Checked in the
browser, on the page as it is shown.

**Fonts.** Over the DevTools protocol (a CDP session of the page) the whole DOM is read,
user-agent shadow roots included (the text an ``<input>`` or ``<select>`` shows lives
there), and for every rendered element whose own text holds CJK characters
``CSS.getPlatformFontsForNode`` says which fonts drew its glyphs and how many each. Each
font must be CJK-capable (a family ``fc-list :lang=zh-cn`` lists: what fonts-noto-cjk
installs). One exception: a symbol no CJK-capable font has (✕, ⟦) is necessarily drawn by
another font, so a non-CJK font may draw at most as many glyphs as the element's text
holds such characters. A Latin-only font named first for an element (its Latin letters
and digits then come from it), a missing CJK fallback, or no font at all fails, naming the
element's text and the fonts.

**Catalogue keys.** ``i18n.t()`` shows a key missing from the catalogue as ``⟦key⟧`` and
leaves a placeholder it was given no value for as ``{name}`` (it does not log). The shown
text — the page's text, its title, and the labels, titles and placeholders of its
elements — must hold neither, nor a bare key (``triage.bucket.x``: a namespace of the
catalogue, a dot, a key-shaped rest), which a page that bypassed ``t()`` would show.
"""

from __future__ import annotations

import bisect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

STATIC: Final = Path(__file__).resolve().parents[2] / "dashboard_api" / "static"
CJK: Final = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
)
"""CJK characters: radicals, CJK punctuation (、。), kana, bopomofo, ideographs (with
extension A and compatibility), hangul, vertical/compatibility forms, full-width forms (，；)."""
CJK_LETTER: Final = re.compile(
    "[\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
"""The CJK characters that are words (ideographs, kana, hangul), not punctuation (、・)."""
CJK_RUN: Final = re.compile(CJK.pattern + "+")
NOT_DRAWN: Final = frozenset({"HEAD", "TITLE", "SCRIPT", "STYLE", "TEMPLATE", "OPTION", "NOSCRIPT"})
"""Elements whose text is never laid out on the page (a ``<select>`` shows its chosen
option through its shadow root, which is checked)."""
UNTRANSLATED: Final = "⟦"
"""What ``i18n.t()`` puts before a key missing from the catalogue."""


class FontCheckError(AssertionError):
    """A page draws CJK text with a font that cannot, or shows an untranslated key."""


@dataclass(frozen=True)
class DrawnText:
    """One element's own text and the fonts that drew it (family → glyph count)."""

    tag: str
    text: str
    fonts: dict[str, int]


@dataclass(frozen=True)
class FontReport:
    """What the check saw on one page."""

    checked: tuple[DrawnText, ...]
    """Every rendered element whose own text holds CJK characters."""
    skipped: int
    """Elements with CJK text that are not rendered (hidden, or a ``<title>``)."""

    @property
    def families(self) -> frozenset[str]:
        """Every font family that drew CJK-bearing text on the page."""
        return frozenset(family for drawn in self.checked for family in drawn.fonts)


def _fc_list(pattern: str, element: str) -> str:
    if shutil.which("fc-list") is None:
        raise FontCheckError("fc-list is missing (fontconfig): the installed fonts are unknown")
    listed: str = subprocess.run(
        ["fc-list", pattern, element], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return listed


def _fc_families(pattern: str) -> frozenset[str]:
    listed = _fc_list(pattern, "family")
    return frozenset(name.strip() for line in listed.splitlines() for name in line.split(","))


@cache
def cjk_families() -> frozenset[str]:
    """The installed font families that cover Simplified Chinese (fontconfig's judgement)."""
    families = _fc_families(":lang=zh-cn")
    if not families:
        raise FontCheckError("no font covers zh-cn (fc-list :lang=zh-cn): install fonts-noto-cjk")
    return families


@cache
def _cjk_coverage() -> tuple[tuple[int, int], ...]:
    """The code points some CJK-capable font has, as sorted (first, last) ranges."""
    listed = _fc_list(":lang=zh-cn", "charset")
    ranges = sorted(
        (int(first, 16), int(last or first, 16))
        for line in listed.splitlines()
        for item in line.removeprefix(":charset=").split()
        for first, _, last in [item.partition("-")]
    )
    merged: list[tuple[int, int]] = []
    for first, last in ranges:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _no_cjk_font_has(char: str) -> bool:
    """True when no CJK-capable font has a glyph for ``char`` (✕ and ⟦ are in none)."""
    coverage = _cjk_coverage()
    index = bisect.bisect_right(coverage, (ord(char), sys.maxsize)) - 1
    return index < 0 or coverage[index][1] < ord(char)


def _own_text(node: dict[str, Any]) -> str:
    return "".join(c.get("nodeValue", "") for c in node.get("children", []) if c["nodeType"] == 3)


def _elements(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("nodeType") == 1:
        yield node
    for child in (
        node.get("children", []) + node.get("shadowRoots", []) + node.get("pseudoElements", [])
    ):
        yield from _elements(child)
    if "contentDocument" in node:
        yield from _elements(node["contentDocument"])


def _foreign_allowance(text: str) -> int:
    """How many glyphs of ``text`` a non-CJK font may draw: those no CJK font has."""
    return sum(
        1 for char in text if ord(char) > 0x7F and not char.isspace() and _no_cjk_font_has(char)
    )


ATTEMPTS: Final = 3
"""Walks of the DOM before giving up on a page that keeps redrawing itself (a live badge,
a reading arriving): a redraw between reading the tree and asking for a node's fonts drops
the node's id, and the walk starts over on the new tree."""


class _Redrawn(Exception):
    """The page replaced a node while it was being checked."""


def check_cjk_fonts(page: Any) -> FontReport:
    """Every CJK character on ``page`` is drawn by a CJK-capable font; what drew them.

    Raises FontCheckError naming each element (its text) and the fonts that drew it.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        for _ in range(ATTEMPTS):
            try:
                return _check_tree(cdp)
            except _Redrawn:
                continue
        raise FontCheckError(f"the page redrew itself during {ATTEMPTS} checks in a row")
    finally:
        cdp.detach()


def _send(cdp: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = cdp.send(method, params)
    except Exception as error:  # playwright's Error: the protocol's answer in words
        if "Could not find node" in str(error):
            raise _Redrawn from error
        raise
    return answer


def _check_tree(cdp: Any) -> FontReport:
    root = cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
    capable = cjk_families()
    checked: list[DrawnText] = []
    skipped = 0
    problems: list[str] = []
    for element in _elements(root):
        text = _own_text(element)
        if not CJK.search(text):
            continue
        tag = element["nodeName"]
        if tag in NOT_DRAWN:
            skipped += 1
            continue
        used = _send(cdp, "CSS.getPlatformFontsForNode", {"nodeId": element["nodeId"]})
        fonts = {f["familyName"]: int(f["glyphCount"]) for f in used["fonts"]}
        shown = " ".join(text.split())
        if not fonts:
            if _is_visible(cdp, element["nodeId"]):
                problems.append(f"<{tag.lower()}> {shown!r}: drawn with no font")
            else:
                skipped += 1
            continue
        checked.append(DrawnText(tag=tag, text=shown, fonts=fonts))
        foreign = {family: n for family, n in fonts.items() if family not in capable}
        if sum(foreign.values()) > _foreign_allowance(text):
            problems.append(
                f"<{tag.lower()}> {shown!r}: drawn with {fonts} — "
                f"{sorted(foreign)} cannot draw Chinese"
            )
    if problems:
        raise FontCheckError(
            f"CJK text drawn without a CJK font ({len(capable)} CJK-capable families "
            "installed, fc-list :lang=zh-cn):\n  " + "\n  ".join(problems)
        )
    return FontReport(checked=tuple(checked), skipped=skipped)


def _is_visible(cdp: Any, node_id: int) -> bool:
    """Whether the element is drawn: laid out, not hidden (a closed ``<details>``' content
    has boxes but is skipped, content-visibility: hidden)."""
    try:
        handle = _send(cdp, "DOM.resolveNode", {"nodeId": node_id})["object"]
    except _Redrawn:
        raise
    except Exception:  # a node of a user-agent shadow root the page's scripts cannot reach
        return True
    try:
        answer = cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": handle["objectId"],
                "functionDeclaration": "function () { return this.checkVisibility("
                "{ contentVisibilityAuto: true, visibilityProperty: true }); }",
                "returnByValue": True,
            },
        )
    finally:
        cdp.send("Runtime.releaseObject", {"objectId": handle["objectId"]})
    return bool(answer["result"]["value"])


@cache
def catalogue(language: str) -> dict[str, str]:
    """The app's message catalogue of ``language`` (as served under /static/i18n/)."""
    messages: dict[str, str] = json.loads(
        (STATIC / "i18n" / f"{language}.json").read_text(encoding="utf-8")
    )
    return messages


@cache
def _bare_key() -> re.Pattern[str]:
    namespaces = sorted({key.split(".")[0] for key in catalogue("en")}, key=len, reverse=True)
    return re.compile(
        r"(?<![\w.@/⟦-])(?:" + "|".join(map(re.escape, namespaces)) + r")\.[a-z][a-z0-9_]*"
        r"(?:[.-][a-z0-9_]+)*(?![\w@/-])"
    )


SHOWN_TEXT: Final = """() => {
    const parts = [document.title, document.body.innerText];
    for (const el of document.querySelectorAll("[aria-label], [title], [placeholder], [alt]")) {
        for (const name of ["aria-label", "title", "placeholder", "alt"]) {
            if (el.hasAttribute(name)) parts.push(el.getAttribute(name));
        }
    }
    return parts.join("\\n");
}"""
"""What a user (or a screen reader) is shown: the text, the title, names and hints."""


def shown_text(page: Any) -> str:
    """The page's text as shown, with its title, labels, titles and placeholders."""
    text: str = page.evaluate(SHOWN_TEXT)
    return text


def untranslated(page: Any, allowed: tuple[str, ...] = ()) -> list[str]:
    """The untranslated messages ``page`` shows: ``⟦key⟧``, ``{placeholder}``, bare keys.

    ``allowed`` are strings of data that look like a key and are not one (none so far).
    """
    text = shown_text(page)
    found = [line.strip() for line in text.splitlines() if UNTRANSLATED in line]
    # A placeholder after "/" is a route template the audit page shows as data
    # ("POST /api/v1/admin/teams/{team_code}/members"), not a message left unfilled.
    found += re.findall(r"(?<!/)\{[a-z_]+\}", text)
    found += [key for key in _bare_key().findall(text) if key not in allowed]
    return list(dict.fromkeys(found))


@cache
def _zh_phrases() -> frozenset[str]:
    """Every run of CJK letters in the zh-CN catalogue (its texts split at placeholders)."""
    runs: set[str] = set()
    for text in catalogue("zh-CN").values():
        for piece in re.split(r"\{\w+\}", text):
            runs.update(run for run in CJK_RUN.findall(piece) if CJK_LETTER.search(run))
    return frozenset(runs)


def chinese_on_english_page(page: Any) -> list[str]:
    """What CJK an English page shows that is not data: the app's own Chinese words.

    Allowed: the language switcher's "简体中文", and data — a patient's name, a team's name,
    a note someone typed. Not allowed: CJK punctuation with no CJK word (a list joined with
    "、" in English), and a run of CJK that is a phrase of the zh-CN catalogue (a message
    not translated, or Chinese written into a script).
    """
    texts: list[str] = page.evaluate(
        """() => {
            const out = [];
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                const el = node.parentElement;
                if (!el || el.closest("#pref-lang") || !el.checkVisibility()) continue;
                out.push(node.nodeValue);
            }
            return out;
        }"""
    )
    phrases = _zh_phrases()
    leaked = []
    for text in texts:
        for run in CJK_RUN.findall(text):
            if not CJK_LETTER.search(run) or run in phrases:
                leaked.append(f"{run!r} in {' '.join(text.split())!r}")
    return leaked
