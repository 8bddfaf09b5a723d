"""``GET /api/v1/patients/{patient_id}/summary``: the figures of the patient page.

The page draws the readings itself (``/readings``); what it cannot compute honestly in the
browser — the 7-day home BP mean with its first day dropped, the weight change against the
patient's own earlier weight, the CGM time-of-day percentiles, each with the data it needs —
comes from :mod:`reports.summaries`, the one implementation the rules, triage and the PDF
report use, so the page never disagrees with the report.

Glucose is in mmol/L (the page converts for a mg/dL user); a figure without enough data
says what it lacks instead of showing a number.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.routes.reports import load_for_route
from reports.summaries import summarise_patient
from reports.summaries.blood_pressure import HomeMean
from reports.summaries.cgm import CgmSummary, TimeInRanges
from reports.summaries.patient import PatientSummary
from reports.summaries.sufficiency import Figure, Insufficient

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["patients"])

ReadReadings = Annotated[PatientGrant, Depends(patient_access(Action.READ_READINGS))]

MAX_SUMMARY_DAYS: Final = 90
"""The page's longest period; the CGM consensus report itself asks for 14 days."""


class FigurePublic(BaseModel):
    """A number, or why there is none: ``value`` is null and ``insufficient`` says what is
    missing (``have`` of ``need``)."""

    value: float | None
    insufficient: str | None = None
    have: float | None = None
    need: float | None = None


class TimeOfDayBandPublic(BaseModel):
    """Glucose percentiles (mmol/L) of the readings in one local time-of-day bin."""

    start_minute: int
    readings: int
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float


class CgmSummaryPublic(BaseModel):
    """CGM figures of the period (consensus definitions, ``docs/summaries.md``)."""

    readings: int
    active_percent: float
    mean_mmol_l: FigurePublic
    gmi_percent: FigurePublic
    cv_percent: FigurePublic
    time_in_ranges_percent: dict[str, FigurePublic]
    bands: list[TimeOfDayBandPublic]
    bands_insufficient: str | None
    """Why there are no percentile bands (too few days or too little wear), or null."""


class MeterSummaryPublic(BaseModel):
    """Meter (finger-stick) glucose figures of the period."""

    readings: int
    readings_per_day: float
    mean_mmol_l: FigurePublic
    in_target_percent: FigurePublic
    below_3_0: int
    below_3_9: int


class BloodPressureSummaryPublic(BaseModel):
    """Home BP: the mean of the last 7 days with their first day dropped (ESH)."""

    readings: int
    home_mean_systolic: FigurePublic
    home_mean_diastolic: FigurePublic
    readings_used: int
    above_target_percent: FigurePublic


class WeightSummaryPublic(BaseModel):
    """The day's (first, morning) weight, its change and the baseline it is measured from."""

    readings: int
    days_with_weight: int
    latest_kg: float
    change_3d_kg: FigurePublic
    baseline_3d_kg: float | None
    """The day's weight 3 days before the latest: what the 3-day change is measured from."""
    change_7d_kg: FigurePublic
    trend_kg_per_week: FigurePublic


class PatientSummaryPublic(BaseModel):
    """The patient page's figures over the local days ``first_day`` … ``last_day``."""

    patient_id: str
    time_zone: str
    first_day: date
    last_day: date
    cgm: CgmSummaryPublic | None
    meter: MeterSummaryPublic | None
    blood_pressure: BloodPressureSummaryPublic | None
    weight: WeightSummaryPublic | None


@router.get("/{patient_id}/summary", response_model=PatientSummaryPublic)
def get_summary(
    grant: ReadReadings,
    context: ContextDep,
    days: Annotated[int, Query(ge=1, le=MAX_SUMMARY_DAYS)] = 14,
) -> PatientSummaryPublic:
    """The summaries of the last ``days`` local days (today included) in the patient's zone."""
    data = load_for_route(grant, context, None, None, days)
    summary = summarise_patient(data.patient_id, data.readings, data.period, data.targets)
    return summary_public(summary)


def summary_public(summary: PatientSummary) -> PatientSummaryPublic:
    """The API form of ``summary`` (glucose mmol/L, percentages, mmHg, kg unrounded)."""
    period = summary.period
    bp = summary.blood_pressure
    weight = summary.weight
    meter = summary.meter
    return PatientSummaryPublic(
        patient_id=summary.patient_id,
        time_zone=period.zone.key,
        first_day=period.start.astimezone(period.zone).date(),
        # The period ends at the midnight after its last day.
        last_day=(period.end - timedelta(microseconds=1)).astimezone(period.zone).date(),
        cgm=_cgm(summary.cgm),
        meter=None
        if meter is None
        else MeterSummaryPublic(
            readings=meter.readings,
            readings_per_day=meter.readings_per_day,
            mean_mmol_l=_figure(meter.mean_mmol_l),
            in_target_percent=_figure(meter.in_target_percent),
            below_3_0=meter.events_below_3_0,
            below_3_9=meter.events_below_3_9,
        ),
        blood_pressure=None
        if bp is None
        else BloodPressureSummaryPublic(
            readings=bp.readings,
            home_mean_systolic=_pair(bp.home_mean, systolic=True),
            home_mean_diastolic=_pair(bp.home_mean, systolic=False),
            readings_used=bp.readings_used,
            above_target_percent=_figure(bp.above_target_percent),
        ),
        weight=None
        if weight is None
        else WeightSummaryPublic(
            readings=weight.readings,
            days_with_weight=weight.days_with_weight,
            latest_kg=weight.latest_kg,
            change_3d_kg=_figure(weight.change_3d_kg),
            baseline_3d_kg=None
            if isinstance(weight.change_3d_kg, Insufficient)
            else weight.latest_kg - weight.change_3d_kg.value,
            change_7d_kg=_figure(weight.change_7d_kg),
            trend_kg_per_week=_figure(weight.trend_kg_per_week),
        ),
    )


def _figure(figure: Figure[float]) -> FigurePublic:
    if isinstance(figure, Insufficient):
        return FigurePublic(
            value=None, insufficient=figure.reason, have=figure.have, need=figure.need
        )
    return FigurePublic(value=figure.value)


def _pair(figure: Figure[HomeMean], *, systolic: bool) -> FigurePublic:
    if isinstance(figure, Insufficient):
        return _figure(figure)
    mean = figure.value
    return FigurePublic(value=mean.systolic if systolic else mean.diastolic)


def _cgm(cgm: CgmSummary | None) -> CgmSummaryPublic | None:
    if cgm is None:
        return None
    tir = cgm.time_in_ranges_percent
    ranges = {
        name: _figure(tir)
        if isinstance(tir, Insufficient)
        else FigurePublic(value=getattr(tir.value, name))
        for name in TimeInRanges.__slots__
    }
    bands = cgm.percentile_bands
    return CgmSummaryPublic(
        readings=cgm.readings,
        active_percent=cgm.active_percent,
        mean_mmol_l=_figure(cgm.mean_mmol_l),
        gmi_percent=_figure(cgm.gmi_percent),
        cv_percent=_figure(cgm.cv_percent),
        time_in_ranges_percent=ranges,
        bands=[]
        if isinstance(bands, Insufficient)
        else [
            TimeOfDayBandPublic(
                start_minute=band.start_minute,
                readings=band.readings,
                p5=band.p5,
                p25=band.p25,
                p50=band.p50,
                p75=band.p75,
                p95=band.p95,
            )
            for band in bands.value
        ],
        bands_insufficient=bands.reason if isinstance(bands, Insufficient) else None,
    )
