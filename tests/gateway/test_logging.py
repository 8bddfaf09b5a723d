"""Structured logs: JSON lines with ids and counts, never a health value."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.logging import HealthDataFilter, JsonFormatter
from readings.codec import encode_reading
from readings.model import BloodPressureValues, Reading, new_reading
from readings.units import Unit


def _reading() -> Reading:
    return new_reading(
        values=BloodPressureValues(systolic=187.25, diastolic=111.75, pulse=93.5),
        source_unit=Unit.MMHG,
        measured_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        received_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        device_id="Omron-HEM_7361T-20230001",
        patient_id="patient-secret-42",
        gateway_id="gw-1",
        seq=1,
    )


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(HealthDataFilter())
    log = logging.getLogger("test.gateway.logging")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, stream
    log.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_safe_fields_are_structured(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = capture
    log.info("batch acknowledged", extra={"count": 500, "device_id": "Omron-HEM_7361T-1"})

    (line,) = _lines(stream)
    assert line["message"] == "batch acknowledged"
    assert line["level"] == "INFO"
    assert line["count"] == 500
    assert line["device_id"] == "Omron-HEM_7361T-1"
    assert line["ts"].endswith("+00:00")


@pytest.mark.parametrize(
    "leak",
    [
        lambda log, r: log.info("got %s", r),
        lambda log, r: log.info("got %r", r.values),
        lambda log, r: log.info("payload %s", encode_reading(r)),
        lambda log, r: log.info("reading", extra={"reading": r}),
        lambda log, r: log.info("reading", extra={"values": r.values.as_dict()}),
        lambda log, r: log.info("reading", extra={"patient_id": r.patient_id}),
        lambda log, r: log.info(r),
    ],
)
def test_health_values_never_reach_the_log(
    capture: tuple[logging.Logger, io.StringIO], leak: Any
) -> None:
    log, stream = capture
    reading = _reading()

    leak(log, reading)

    text = stream.getvalue()
    assert text
    for secret in ("187.25", "111.75", "93.5", "patient-secret-42"):
        assert secret not in text


def test_unknown_fields_are_named_not_shown(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = capture
    log.warning("odd", extra={"systolic": 187.25})

    (line,) = _lines(stream)
    assert line["redacted_fields"] == ["systolic"]
    assert "187.25" not in stream.getvalue()


def test_long_id_lists_are_cut(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = capture
    log.info("acked", extra={"reading_ids": [f"id-{n}" for n in range(50)]})

    (line,) = _lines(stream)
    assert line["reading_ids"][:2] == ["id-0", "id-1"]
    assert line["reading_ids"][-1] == "… 30 more"
