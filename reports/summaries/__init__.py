"""Summaries of a patient's readings over a period: one implementation for every consumer.

The alert rules (G7 and the BP/weight rules), the triage view, the pages and the printable
report all call these functions; none computes a summary of its own.

Usage::

    from reports.summaries import Period, Targets, summarise_patient, Sufficient

    period = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), profile.time_zone)
    targets = Targets.from_overrides(profile.overrides, profile.conditions)
    summary = summarise_patient(profile.patient_id, readings, period, targets)
    match summary.cgm and summary.cgm.time_in_ranges_percent:
        case Sufficient(tir):
            ...  # tir.target, tir.low …
        case Insufficient(reason, have, need):
            ...  # print the reason instead of a number

Every function is pure: readings (any order, any kinds, any patients for
:func:`summarise_patient`) in, frozen dataclasses out. A section is ``None`` when the
period has no reading of its kind; a figure is :class:`Sufficient` or
:class:`Insufficient`. Definitions and sources: ``docs/summaries.md``.
"""

from reports.summaries.blood_pressure import (
    BloodPressureSummary,
    HomeMean,
    summarise_blood_pressure,
)
from reports.summaries.cgm import (
    CgmSummary,
    TimeInRanges,
    TimeOfDayBand,
    gmi_percent,
    summarise_cgm,
)
from reports.summaries.glucose_ranges import GlucoseRange
from reports.summaries.meter import MealContextSummary, MeterSummary, summarise_meter
from reports.summaries.patient import PatientSummary, summarise_patient, summary_json
from reports.summaries.period import Period
from reports.summaries.sufficiency import (
    Figure,
    Insufficient,
    Sufficient,
    map_figure,
    value_or_none,
)
from reports.summaries.targets import Targets
from reports.summaries.vitals import (
    HeartRateSummary,
    Spo2Summary,
    summarise_heart_rate,
    summarise_spo2,
)
from reports.summaries.weight import WeightSummary, summarise_weight

__all__ = [
    "BloodPressureSummary",
    "CgmSummary",
    "Figure",
    "GlucoseRange",
    "HeartRateSummary",
    "HomeMean",
    "Insufficient",
    "MealContextSummary",
    "MeterSummary",
    "PatientSummary",
    "Period",
    "Spo2Summary",
    "Sufficient",
    "Targets",
    "TimeInRanges",
    "TimeOfDayBand",
    "WeightSummary",
    "gmi_percent",
    "map_figure",
    "summarise_blood_pressure",
    "summarise_cgm",
    "summarise_heart_rate",
    "summarise_meter",
    "summarise_patient",
    "summarise_spo2",
    "summarise_weight",
    "summary_json",
    "value_or_none",
]
