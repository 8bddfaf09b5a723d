"""Identity: stable ids for devices and readings.

A reading's id is derived, never drawn at random, so that every hop can re-send it and
every store can collapse the copies: downloading a meter's memory twice yields the same
ids, and two different records never share one.

The record key is the device's own key for the record:

* the sequence number **and** the raw device time when the device gives either. Both,
  not the sequence number alone, because a meter's uint16 sequence restarts after a
  memory clear or wraps (``docs/devices.md``, record keys): a record stored after the
  reset reuses an old number but not the old device time.
* otherwise (streaming measurements: heart-rate straps, continuous oximetry) the gateway's
  receipt time, to the millisecond; such a measurement is only ever received once.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import datetime
from typing import Final

READING_ID_NAMESPACE: Final = uuid.UUID("5b0f3c1e-6f43-4d0b-9a7e-2f1d9c3a7b10")
"""UUIDv5 namespace of VitalGate reading ids. Changing it changes every id: never do."""

DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._]{0,62}(-[A-Za-z0-9._]{1,63}){2}$"
"""``manufacturer-model-serial``: three slugs joined by ``-``."""

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")
_MAX_PART_LENGTH: Final = 63


def _slug(part: str) -> str:
    normalised = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_UNSAFE.sub("_", normalised.strip()).strip("_")
    return slug[:_MAX_PART_LENGTH]


def device_identity(manufacturer: str, model: str, serial: str) -> str:
    """The stable identity of a device: ``manufacturer-model-serial`` read from the device.

    Never a Bluetooth address: those may be random or resolvable and change. Each part is
    reduced to ASCII letters, digits, ``.`` and ``_`` so the id is safe in logs, topics and
    file names, e.g. ``device_identity("Roche", "Accu-Chek Guide", "92310000123")`` is
    ``Roche-Accu_Chek_Guide-92310000123``.

    Raises:
        ValueError: a part is empty after normalisation (a device that reports no serial
            cannot be told apart from its siblings).
    """
    parts = [_slug(manufacturer), _slug(model), _slug(serial)]
    for name, part in zip(("manufacturer", "model", "serial"), parts, strict=True):
        if not part:
            raise ValueError(f"device {name} is empty: cannot build a device identity")
    return "-".join(parts)


def format_device_time(value: datetime) -> str:
    """The raw device wall-clock time as it enters a record key and the wire."""
    return value.isoformat(timespec="milliseconds")


def record_key(*, seq: int | None, device_time: datetime | None, received_at: datetime) -> str:
    """The device's own key of a record (see the module docstring for the rule)."""
    if seq is not None or device_time is not None:
        time_part = format_device_time(device_time) if device_time is not None else ""
        seq_part = str(seq) if seq is not None else ""
        return f"seq={seq_part};device_time={time_part}"
    return "received_at=" + received_at.isoformat(timespec="milliseconds")


def reading_id(
    *,
    device_id: str,
    kind: str,
    seq: int | None,
    device_time: datetime | None,
    received_at: datetime,
) -> str:
    """Deterministic id of a reading: UUIDv5 over device identity, kind and record key."""
    key = record_key(seq=seq, device_time=device_time, received_at=received_at)
    return _uuid5(f"{device_id}\x1f{kind}\x1f{key}")


_NAMESPACE_BYTES: Final = READING_ID_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(READING_ID_NAMESPACE, name))``, four times faster.

    Every reading's id is checked at ingest, so this is on the hot path; the tests
    compare it with :func:`uuid.uuid5`.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])  # noqa: S324 - UUIDv5 is defined on SHA-1; not a security use
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
