"""All summaries of one patient over one period, and their JSON form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from readings.model import Reading
from reports.summaries.blood_pressure import BloodPressureSummary, summarise_blood_pressure
from reports.summaries.cgm import CgmSummary, TimeInRanges, summarise_cgm
from reports.summaries.meter import MeterSummary, summarise_meter
from reports.summaries.period import Period
from reports.summaries.sufficiency import Figure, Insufficient, map_figure
from reports.summaries.targets import Targets
from reports.summaries.vitals import (
    HeartRateSummary,
    Spo2Summary,
    summarise_heart_rate,
    summarise_spo2,
)
from reports.summaries.weight import WeightSummary, summarise_weight

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """Every summary of one patient; a section is ``None`` when there is no such data."""

    patient_id: str
    period: Period
    targets: Targets
    cgm: CgmSummary | None
    meter: MeterSummary | None
    blood_pressure: BloodPressureSummary | None
    weight: WeightSummary | None
    spo2: Spo2Summary | None
    heart_rate: HeartRateSummary | None


def summarise_patient(
    patient_id: str, readings: Iterable[Reading], period: Period, targets: Targets
) -> PatientSummary:
    """All summaries of ``patient_id``'s readings in ``period``.

    ``readings`` may hold other patients' readings; only ``patient_id``'s are used.
    """
    own = [reading for reading in readings if reading.patient_id == patient_id]
    return PatientSummary(
        patient_id=patient_id,
        period=period,
        targets=targets,
        cgm=summarise_cgm(own, period),
        meter=summarise_meter(own, period, targets),
        blood_pressure=summarise_blood_pressure(own, period, targets),
        weight=summarise_weight(own, period),
        spo2=summarise_spo2(own, period, targets),
        heart_rate=summarise_heart_rate(own, period),
    )


def figure_json(figure: Figure[float], digits: int) -> float | dict[str, Any]:
    """A figure as JSON: the rounded number, or ``{"insufficient", "have", "need"}``."""
    if isinstance(figure, Insufficient):
        return {"insufficient": figure.reason, "have": round(figure.have, 2), "need": figure.need}
    return round(figure.value, digits)


def summary_json(summary: PatientSummary) -> dict[str, Any]:
    """The patient's entry of ``vitalgate summary --format json`` (issue 13, item 6).

    Glucose in mmol/L to 2 decimals, percentages to 1, mmHg to 1, kg to 2.
    """
    return {
        "patient_id": summary.patient_id,
        "cgm": _cgm_json(summary.cgm),
        "bgm": _meter_json(summary.meter),
        "bp": _bp_json(summary.blood_pressure),
        "weight": _weight_json(summary.weight),
    }


def _cgm_json(cgm: CgmSummary | None) -> dict[str, Any] | None:
    if cgm is None:
        return None
    tir = cgm.time_in_ranges_percent
    ranges: dict[str, Any] | dict[str, float | dict[str, Any]]
    if isinstance(tir, Insufficient):
        ranges = {name: figure_json(tir, 1) for name in TimeInRanges.__slots__}
    else:
        ranges = {name: round(getattr(tir.value, name), 1) for name in TimeInRanges.__slots__}
    return {
        "mean_mmol_l": figure_json(cgm.mean_mmol_l, 2),
        "gmi_percent": figure_json(cgm.gmi_percent, 2),
        "cv_percent": figure_json(cgm.cv_percent, 1),
        "active_percent": round(cgm.active_percent, 1),
        "time_in_ranges_percent": ranges,
    }


def _meter_json(meter: MeterSummary | None) -> dict[str, Any] | None:
    if meter is None:
        return None
    return {
        "readings": meter.readings,
        "readings_per_day": round(meter.readings_per_day, 2),
        "mean_mmol_l": figure_json(meter.mean_mmol_l, 2),
        "sd_mmol_l": figure_json(meter.sd_mmol_l, 2),
        "in_target_percent": figure_json(meter.in_target_percent, 1),
        "below_3_0": meter.events_below_3_0,
        "below_3_9": meter.events_below_3_9,
    }


def _bp_json(bp: BloodPressureSummary | None) -> dict[str, Any] | None:
    if bp is None:
        return None
    return {
        "home_mean_systolic": figure_json(map_figure(bp.home_mean, lambda m: m.systolic), 1),
        "home_mean_diastolic": figure_json(map_figure(bp.home_mean, lambda m: m.diastolic), 1),
        "readings_used": bp.readings_used,
    }


def _weight_json(weight: WeightSummary | None) -> dict[str, Any] | None:
    if weight is None:
        return None
    return {
        "change_3d_kg": figure_json(weight.change_3d_kg, 2),
        "change_7d_kg": figure_json(weight.change_7d_kg, 2),
    }
