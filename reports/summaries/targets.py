"""The patient's targets, passed into the summaries as a plain value.

The summaries do not look targets up: the command line builds :class:`Targets` from the
patient file's ``overrides`` (:meth:`Targets.from_overrides`), the server from the
registry's ``PatientTarget`` rows in force at the period's end (:meth:`Targets.from_bounds`).
Every bound is in the canonical unit (mmol/L, mmHg, %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reports.errors import InvalidTarget

DEFAULT_GLUCOSE_LOW_MMOL_L: Final = 3.9
"""mmol/L (70 mg/dL). Lower end of the consensus target range (International Consensus
on Time in Range, Battelino, Diabetes Care 2019); a doctor sets a personal one."""

DEFAULT_GLUCOSE_HIGH_MMOL_L: Final = 10.0
"""mmol/L (180 mg/dL). Upper end of the consensus target range (same source); equal to the
Chinese T2DM guideline's non-fasting goal (<10.0, CDS 2020)."""

DEFAULT_SYSTOLIC_HIGH_MMHG: Final = 135.0
"""mmHg. Home blood pressure is above target at >= 135 systolic (ESH 2023 and the Chinese
hypertension guideline 2018/2024: home hypertension threshold 135/85)."""

DEFAULT_DIASTOLIC_HIGH_MMHG: Final = 85.0
"""mmHg. Home diastolic threshold 85 (same sources)."""

DEFAULT_SPO2_LOW_PERCENT: Final = 94.0
"""%. Lower end of the BTS 2017 target range 94-98 % for patients not at risk of
hypercapnia."""

COPD_SPO2_LOW_PERCENT: Final = 88.0
"""%. Lower end of the BTS 2017 range 88-92 % for patients at risk of hypercapnic failure."""

OVERRIDE_KEYS: Final[Mapping[str, str]] = {
    "target.glucose_low_mmol_l": "glucose_low_mmol_l",
    "target.glucose_high_mmol_l": "glucose_high_mmol_l",
    "target.systolic_high_mmhg": "systolic_high_mmhg",
    "target.diastolic_high_mmhg": "diastolic_high_mmhg",
    "target.spo2_low_percent": "spo2_low_percent",
}
"""Keys of a patient file's ``overrides`` that set targets, and the field each sets."""


@dataclass(frozen=True, slots=True)
class Targets:
    """The targets a summary measures against.

    Attributes:
        glucose_low_mmol_l: meter glucose in target from here (inclusive).
        glucose_high_mmol_l: meter glucose in target up to here (inclusive).
        systolic_high_mmhg: a BP reading is above target at or above this systolic…
        diastolic_high_mmhg: …or at or above this diastolic.
        spo2_low_percent: SpO₂ below this is below target.
    """

    glucose_low_mmol_l: float = DEFAULT_GLUCOSE_LOW_MMOL_L
    glucose_high_mmol_l: float = DEFAULT_GLUCOSE_HIGH_MMOL_L
    systolic_high_mmhg: float = DEFAULT_SYSTOLIC_HIGH_MMHG
    diastolic_high_mmhg: float = DEFAULT_DIASTOLIC_HIGH_MMHG
    spo2_low_percent: float = DEFAULT_SPO2_LOW_PERCENT

    def __post_init__(self) -> None:
        if not self.glucose_low_mmol_l < self.glucose_high_mmol_l:
            raise InvalidTarget(
                f"glucose target low {self.glucose_low_mmol_l} must be below "
                f"high {self.glucose_high_mmol_l}"
            )

    @classmethod
    def for_conditions(cls, conditions: frozenset[str]) -> Targets:
        """The defaults for a patient with these care-model conditions (COPD: SpO₂ 88 %)."""
        if "copd" in conditions:
            return cls(spo2_low_percent=COPD_SPO2_LOW_PERCENT)
        return cls()

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, Any], conditions: frozenset[str] = frozenset()
    ) -> Targets:
        """Targets from a patient file's ``overrides`` (keys in :data:`OVERRIDE_KEYS`).

        Other keys (rule thresholds) are ignored: they belong to the alert rules.

        Raises:
            InvalidTarget: a target key has a value that is not a number, or low >= high.
        """
        values: dict[str, float] = {}
        for key, field_name in OVERRIDE_KEYS.items():
            if key not in overrides:
                continue
            value = overrides[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidTarget(f"overrides.{key}: expected a number, got {value!r}")
            values[field_name] = float(value)
        base = cls.for_conditions(conditions)
        return cls(
            glucose_low_mmol_l=values.get("glucose_low_mmol_l", base.glucose_low_mmol_l),
            glucose_high_mmol_l=values.get("glucose_high_mmol_l", base.glucose_high_mmol_l),
            systolic_high_mmhg=values.get("systolic_high_mmhg", base.systolic_high_mmhg),
            diastolic_high_mmhg=values.get("diastolic_high_mmhg", base.diastolic_high_mmhg),
            spo2_low_percent=values.get("spo2_low_percent", base.spo2_low_percent),
        )

    @classmethod
    def from_bounds(
        cls,
        bounds: Mapping[str, tuple[float | None, float | None]],
        conditions: frozenset[str] = frozenset(),
    ) -> Targets:
        """Targets from ``metric -> (low, high)`` in canonical units, e.g. the registry's
        ``PatientTarget`` rows in force (metrics ``glucose``, ``systolic``, ``diastolic``,
        ``spo2``). A missing metric or bound keeps the default."""
        base = cls.for_conditions(conditions)
        glucose = bounds.get("glucose", (None, None))
        return cls(
            glucose_low_mmol_l=_pick(glucose[0], base.glucose_low_mmol_l),
            glucose_high_mmol_l=_pick(glucose[1], base.glucose_high_mmol_l),
            systolic_high_mmhg=_pick(
                bounds.get("systolic", (None, None))[1], base.systolic_high_mmhg
            ),
            diastolic_high_mmhg=_pick(
                bounds.get("diastolic", (None, None))[1], base.diastolic_high_mmhg
            ),
            spo2_low_percent=_pick(bounds.get("spo2", (None, None))[0], base.spo2_low_percent),
        )


def _pick(value: float | None, default: float) -> float:
    return default if value is None else float(value)
