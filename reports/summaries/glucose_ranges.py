"""The consensus glucose ranges, applied in the unit the device measured in.

The International Consensus on Time in Range (Battelino et al., Diabetes Care 2019) gives
every boundary in both units: 54/70/180/250 mg/dL and 3.0/3.9/10.0/13.9 mmol/L. The two
sets are not exact conversions of each other (70 mg/dL is 3.886 mmol/L), so a reading is
classified against the set of the unit its device reported in (``source_unit``): a meter
showing 70 mg/dL is in range, as the patient saw, and not "low" because 70 / 18.0156 < 3.9.
Readings store glucose in mmol/L; a mg/dL reading is converted back (rounded to 1e-6,
which removes the float noise of the round trip and nothing a device can send).

The five ranges are half-open as the consensus defines them::

    very_low  < 3.0          (< 54 mg/dL)
    low       [3.0, 3.9)     [54, 70)
    target    [3.9, 10.0]    [70, 180]
    high      (10.0, 13.9]   (180, 250]
    very_high > 13.9         (> 250)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from readings.model import Reading
from readings.units import MG_PER_DL_PER_MMOL_PER_L, Unit


class GlucoseRange(StrEnum):
    """The five consensus ranges, lowest first."""

    VERY_LOW = "very_low"
    LOW = "low"
    TARGET = "target"
    HIGH = "high"
    VERY_HIGH = "very_high"


RANGES: Final = tuple(GlucoseRange)


@dataclass(frozen=True, slots=True)
class Boundaries:
    """The four consensus boundaries in one unit."""

    very_low_below: float
    """Very low is strictly below this (level 2 hypoglycaemia)."""
    target_from: float
    """Low is ``[very_low_below, target_from)``; target starts here (inclusive)."""
    target_to: float
    """Target ends here (inclusive); high is above it."""
    very_high_above: float
    """High ends here (inclusive); very high is strictly above it."""


MMOL_L_BOUNDARIES: Final = Boundaries(3.0, 3.9, 10.0, 13.9)
"""mmol/L, International Consensus on Time in Range (Battelino 2019), Table 1."""

MG_DL_BOUNDARIES: Final = Boundaries(54.0, 70.0, 180.0, 250.0)
"""mg/dL, same source; ADA Standards §6 hypoglycaemia levels 1 (<70) and 2 (<54)."""

_ROUND_DECIMALS: Final = 6


def values_in_source_unit(
    readings: Sequence[Reading],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each reading's glucose in the unit set it is judged in, and which are mg/dL.

    mg/dL readings come back in mg/dL; every other unit (mmol/L, and the SI units GATT
    meters send, whose meters display mmol/L or mg/dL per their own setting and which the
    contract already converted) is judged in mmol/L.
    """
    mmol = np.fromiter(
        (reading.values.glucose for reading in readings),  # type: ignore[attr-defined]
        np.float64,
        len(readings),
    )
    is_mg = np.fromiter(
        (reading.source_unit == Unit.MG_PER_DL for reading in readings), np.bool_, len(readings)
    )
    judged = np.where(is_mg, np.round(mmol * MG_PER_DL_PER_MMOL_PER_L, _ROUND_DECIMALS), mmol)
    return judged, is_mg


def classify(judged: npt.NDArray[np.float64], is_mg: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
    """The range of each value as an index into :data:`RANGES` (0 = very low … 4)."""
    mg, mmol = MG_DL_BOUNDARIES, MMOL_L_BOUNDARIES
    very_low = np.where(is_mg, mg.very_low_below, mmol.very_low_below)
    target_from = np.where(is_mg, mg.target_from, mmol.target_from)
    target_to = np.where(is_mg, mg.target_to, mmol.target_to)
    very_high = np.where(is_mg, mg.very_high_above, mmol.very_high_above)
    index = np.full(judged.shape, 2, dtype=np.int8)
    index[judged < target_from] = 1
    index[judged < very_low] = 0
    index[judged > target_to] = 3
    index[judged > very_high] = 4
    return index


def below(
    judged: npt.NDArray[np.float64], is_mg: npt.NDArray[np.bool_], level: int
) -> npt.NDArray[np.bool_]:
    """Readings in hypoglycaemia: ``level`` 1 is < 3.9 mmol/L (< 70 mg/dL), 2 is < 3.0 (< 54)."""
    if level == 1:
        limit = np.where(is_mg, MG_DL_BOUNDARIES.target_from, MMOL_L_BOUNDARIES.target_from)
    else:
        limit = np.where(is_mg, MG_DL_BOUNDARIES.very_low_below, MMOL_L_BOUNDARIES.very_low_below)
    result: npt.NDArray[np.bool_] = judged < limit
    return result
