"""What a parser makes of a device record, before the gateway binds it to a patient."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from readings.model import Kind, Values
from readings.units import Unit


class Disposition(StrEnum):
    """What the gateway may do with a decoded record."""

    PATIENT_READING = "patient_reading"
    """A measurement of the patient: forwarded. HI/LO glucose results are forwarded too,
    flagged ``result_high``/``result_low`` with the meter's range limit as the value,
    because they are the most urgent readings a meter produces."""
    CONTROL_SOLUTION = "control_solution"
    """A meter check with control solution: never forwarded as a reading."""
    DEVICE_ERROR = "device_error"
    """The device reported no valid value (NaN/NRes, sensor fault, unsuccessful
    measurement): never forwarded as a reading; the gateway reports a device event."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """A decoded device record.

    Attributes:
        kind: what it measures.
        values: the values in canonical units; ``None`` when the device gave no valid
            primary value (then ``disposition`` is ``DEVICE_ERROR``).
        source_unit: the unit the device sent the primary value in.
        device_time: the device's wall-clock time of the record (user-facing time where
            the protocol has an offset), naive; ``None`` when the device sent none or an
            unknown date.
        seq: the device's record sequence number, if any.
        context: circumstances reported by the device (meal, sample site, user id …).
        flags: named status bits.
        disposition: whether this may be forwarded as a patient reading.
    """

    kind: Kind
    values: Values | None
    source_unit: Unit
    device_time: datetime | None = None
    seq: int | None = None
    context: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    disposition: Disposition = Disposition.PATIENT_READING

    def to_json_dict(self) -> dict[str, Any]:
        """The contract's form of this record, for ``vitalgate decode`` and logs."""
        return {
            "kind": self.kind.value,
            "values": self.values.as_dict() if self.values is not None else None,
            "source_unit": self.source_unit.value,
            "device_time": (
                self.device_time.isoformat(timespec="milliseconds")
                if self.device_time is not None
                else None
            ),
            "seq": self.seq,
            "context": dict(self.context),
            "flags": sorted(self.flags),
            "disposition": self.disposition.value,
        }
