"""Structured JSON logs that never carry health values.

Log records say *what happened to which readings*: ids, counts, device and gateway ids,
sizes, durations, reasons. Never a value, a unit reading, a patient id or a payload. Two
guards enforce it whatever a caller passes:

* :class:`HealthDataFilter` replaces any argument or extra field that is a reading, a
  measurement, a values struct or raw payload bytes with a ``<redacted …>`` marker.
* :class:`JsonFormatter` writes only extra fields whose names are in :data:`SAFE_FIELDS`;
  other names are listed under ``redacted_fields`` with their values left out.

Use fixed messages and put the facts in ``extra``::

    logger.info("batch acknowledged", extra={"count": 500, "device_id": device_id})
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

from device_drivers.measurement import Measurement
from readings.model import Reading, Values

SAFE_FIELDS: Final = frozenset(
    {
        "attempt",
        "batch_readings",
        "batches",
        "bytes",
        "ceiling_bytes",
        "client_id",
        "count",
        "delay_seconds",
        "depth",
        "device_id",
        "duplicates",
        "duration_seconds",
        "error",
        "event",
        "gateway_id",
        "host",
        "in_flight",
        "mid",
        "path",
        "port",
        "protocol",
        "quota_bytes",
        "reading_ids",
        "reason",
        "reason_code",
        "refused",
        "republished",
        "state",
        "topic",
        "window",
    }
)
"""Extra fields a log line may carry: identities, counts, sizes, timings and reasons."""

_SENSITIVE_TYPES: Final = (Reading, Values, Measurement, bytes, bytearray, memoryview)
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
MAX_IDS_PER_LINE: Final = 20
"""A batch acknowledgement can name 1,000 ids; a log line lists the first 20 and the count."""


def _redact(value: Any) -> Any:
    if isinstance(value, _SENSITIVE_TYPES):
        return f"<redacted {type(value).__name__}>"
    return value


class HealthDataFilter(logging.Filter):
    """Replaces readings, measurements, values and payload bytes in a record's arguments
    and extra fields with a ``<redacted …>`` marker. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; always keep the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact(arg) for key, arg in record.args.items()}
        record.msg = _redact(record.msg)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES:
                record.__dict__[key] = _redact(value)
        return True


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        shown = [_json_safe(item) for item in items[:MAX_IDS_PER_LINE]]
        if len(items) > MAX_IDS_PER_LINE:
            shown.append(f"… {len(items) - MAX_IDS_PER_LINE} more")
        return shown
    return f"<redacted {type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, safe extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record; extra fields outside :data:`SAFE_FIELDS` are named, not shown."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        redacted: list[str] = []
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRIBUTES:
                continue
            if key in SAFE_FIELDS:
                line[key] = _json_safe(value)
            else:
                redacted.append(key)
        if redacted:
            line["redacted_fields"] = sorted(redacted)
        if record.exc_info is not None and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send every log record of the process, as JSON lines, to ``stream`` (stderr).

    Replaces the root logger's handlers, so calling it twice does not double the lines.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(HealthDataFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
