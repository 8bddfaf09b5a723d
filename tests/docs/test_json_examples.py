"""Every JSON example in the docs and the README is a payload the codec accepts.

A vendor builds a gateway from these pages; an example the consumer refuses (a wrong id,
a field that does not exist) costs them a day. Each fenced ```json block is decoded as the
message its fields say it is. A block the page means to be wrong is marked on the line
before the fence with ``<!-- json-example: invalid -->``, and must then be refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from readings.codec import (
    AckMessage,
    EventMessage,
    PairCommand,
    StatusMessage,
    SyncTimeCommand,
    UnpairCommand,
    decode_envelope,
    decode_message,
    decode_readings_partial,
)
from readings.errors import PayloadError

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
INVALID_MARK = "<!-- json-example: invalid -->"
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Example:
    """One fenced JSON block of a page."""

    page: str
    line: int
    text: str
    invalid: bool

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def json_examples(text: str, page: str) -> list[Example]:
    """The ```json blocks of a Markdown page, with the line their fence opens on."""
    examples = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines) and not lines[index].startswith("```"):
            index += 1
        if opened.group(1) == "json":
            previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            examples.append(
                Example(
                    page=page,
                    line=start + 1,
                    text="\n".join(lines[start + 1 : index]),
                    invalid=previous.strip() == INVALID_MARK,
                )
            )
        index += 1
    return examples


def _examples() -> list[Example]:
    found = []
    for path in PAGES:
        found.extend(json_examples(path.read_text(encoding="utf-8"), path.relative_to(ROOT).name))
    return found


EXAMPLES = _examples()


def check_example(text: str) -> str:
    """Decode ``text`` as the contract message its fields make it; return which one.

    Raises:
        PayloadError: the codec refuses it.
        ValueError: not JSON, or no message of the contract has these fields.
    """
    document: Any = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("an example must be one JSON object")
    payload = text.encode("utf-8")
    if "readings" in document:
        decoded = decode_readings_partial(payload)
        if decoded.rejected:
            error = decoded.rejected[0].error
            raise PayloadError(error.field, error.problem)
        decode_envelope(payload)
        return "envelope"
    if "acked_at" in document:
        decode_message(payload, AckMessage)
        return "ack"
    if "event" in document:
        decode_message(payload, EventMessage)
        return "event"
    if "state" in document:
        decode_message(payload, StatusMessage)
        return "status"
    if "window_seconds" in document or "patient_id" in document:
        decode_message(payload, PairCommand)
        return "pair"
    if "device_id" in document:
        decode_message(payload, UnpairCommand)
        return "unpair"
    if set(document) == {"v"}:
        decode_message(payload, SyncTimeCommand)
        return "sync_time"
    raise ValueError(f"no message of the contract has the fields {sorted(document)}")


def test_the_pages_have_examples_of_every_message() -> None:
    kinds = {check_example(example.text) for example in EXAMPLES if not example.invalid}
    assert kinds >= {"envelope", "ack", "status", "event", "pair"}, kinds


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_each_json_example_is_what_the_codec_says(example: Example) -> None:
    if example.invalid:
        with pytest.raises((PayloadError, ValueError)):
            check_example(example.text)
        return
    try:
        check_example(example.text)
    except (PayloadError, ValueError) as error:
        pytest.fail(f"{example}: the codec refuses the example: {error}")


def test_the_extractor_finds_blocks_and_marks() -> None:
    page = "\n".join(
        [
            "text",
            "```json",
            '{"v": 1}',
            "```",
            "",
            INVALID_MARK,
            "",
            "```json",
            '{"v": 2}',
            "```",
            "```console",
            "$ vitalgate wire check -",
            "```",
        ]
    )
    found = json_examples(page, "page.md")
    assert [(e.line, e.text, e.invalid) for e in found] == [
        (2, '{"v": 1}', False),
        (8, '{"v": 2}', True),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"v": 1, "gateway_id": "gw-1", "acked_at": "…", "ids": []}', "acked_at"),
        ('{"v": 1, "nonsense": true}', "no message of the contract"),
        ("{'v': 1}", "Expecting property name"),
    ],
)
def test_a_broken_example_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises((PayloadError, ValueError), match=problem):
        check_example(text)


ENVELOPES = [
    pytest.param(e, id=str(e)) for e in EXAMPLES if not e.invalid and '"readings"' in e.text
]


@pytest.mark.parametrize("example", ENVELOPES)
def test_vitalgate_wire_check_accepts_each_example_envelope(example: Example) -> None:
    from typer.testing import CliRunner

    from vitalgate.cli import app

    result = CliRunner().invoke(app, ["wire", "check", "-"], input=example.text)
    assert result.exit_code == 0, result.output
