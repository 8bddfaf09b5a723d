"""The one-page report: a patient's summaries over a period as an A4 PDF, zh-CN or en.

The page is HTML from a Jinja2 template (``reports/templates/report.html.j2``) with inline
SVG charts, rendered by WeasyPrint. WeasyPrint embeds Debian's Noto Sans CJK outlines
(CFF) as a font subset, which ReportLab cannot do; the template asks for
"Noto Sans CJK SC" (package ``fonts-noto-cjk``), so a Chinese page never falls back to
boxes. The percentile chart is called "glucose by time of day", never "AGP" (a licensed
name).

Every figure comes from :mod:`reports.summaries`; a figure that lacks data shows the
statement "not enough data (have …, need …)" and a CGM section without sufficient data
draws no chart at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar
from zoneinfo import ZoneInfo

import jinja2

from readings.model import Reading
from registry.alert_models import AlertRow
from reports.charts import daily_profiles_chart, percentile_band_chart, time_in_ranges_bar
from reports.daily_profiles import daily_profiles
from reports.errors import ReportsError
from reports.report_text import LANGS, TEXT, Lang, text
from reports.summaries import (
    Figure,
    HomeMean,
    Insufficient,
    PatientSummary,
    Sufficient,
    TimeInRanges,
)
from reports.summaries.cgm import DEFAULT_BAND_MINUTES
from reports.visits import VisitLine

if TYPE_CHECKING:
    from reports.loading import PatientData

T = TypeVar("T")

MAX_ALERT_ROWS: Final = 6
"""Alerts listed on the page; more are counted, so the report stays one page."""

BAND_WIDTH_PX: Final = 270
BAND_HEIGHT_PX: Final = 165
"""CSS px (1/96 in) of the glucose-by-time-of-day chart: beside the CGM metrics and the
time-in-ranges bar, so the daily profiles below still fit on the one page."""

MAX_VISIT_ROWS: Final = 6
"""Visits listed on the page, like the alerts; more are counted."""

MAX_MEAL_ROWS: Final = 6
"""There are six meal contexts (fasting … unspecified), so all of them fit."""

CONSENSUS_GOALS: Final = {
    "cgm_active": "≥ 70 %",
    "tir": "> 70 %",
    "tbr1": "< 4 %",
    "tbr2": "< 1 %",
    "tar1": "< 25 %",
    "tar2": "< 5 %",
    "cv": "≤ 36 %",
}
"""Goals for most adults with type 1 or type 2 diabetes (Battelino et al., Diabetes Care
2019, International Consensus on Time in Range). GMI and the mean have no common goal."""


class UnknownLanguage(ReportsError, ValueError):
    """A report was asked for in a language other than zh or en."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a metrics table: a label, the value or the shortfall, and the goal."""

    label: str
    value: str
    goal: str = ""
    missing: bool = False


@dataclass(frozen=True, slots=True)
class ReportInput:
    """What one report shows.

    Attributes:
        summary: the patient's summaries over the period (``summarise_patient``).
        patient_name: shown in the header if given; the id is always shown.
        generated_at: when the report was made (aware), shown in the patient's zone.
        alerts: the patient's alerts opened in the period, any order.
        visits: the period's visit tasks (``reports.visits.visits_of_period``).
        readings: the period's readings; the CGM ones draw the daily profiles (the
            summary alone has no per-day trace). Without them no profiles are drawn.
    """

    summary: PatientSummary
    generated_at: datetime
    patient_name: str | None = None
    alerts: Sequence[AlertRow] = ()
    visits: Sequence[VisitLine] = ()
    readings: Sequence[Reading] = ()

    @classmethod
    def of(cls, data: PatientData, summary: PatientSummary, generated_at: datetime) -> ReportInput:
        """Everything the page shows from what :func:`reports.loading.load_patient_data`
        loaded: name, alerts, visits and readings, with the summary made from them."""
        return cls(
            summary=summary,
            generated_at=generated_at,
            patient_name=data.display_name,
            alerts=data.alerts,
            visits=data.visits,
            readings=data.readings,
        )


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _shortfall(missing: Insufficient, lang: Lang) -> str:
    have_need = text("have_need", lang).format(have=f"{missing.have:g}", need=f"{missing.need:g}")
    if lang == "en":
        return f"{text('not_enough', lang)}: {missing.reason} ({have_need})"
    return f"{text('not_enough', lang)}（{have_need}）"


def _row(
    key: str,
    figure: Figure[T],
    fmt: Callable[[T], str],
    lang: Lang,
    goal: str = "",
) -> Row:
    match figure:
        case Sufficient(value):
            return Row(text(key, lang), fmt(value), goal)
        case Insufficient() as missing:
            return Row(text(key, lang), _shortfall(missing, lang), goal, missing=True)
    raise AssertionError(figure)  # pragma: no cover - Figure has two cases


def _fixed(digits: int, unit: str = "") -> Callable[[float], str]:
    return lambda v: f"{_number(v, digits)}{(' ' + unit) if unit else ''}"


def _signed(unit: str) -> Callable[[float], str]:
    return lambda v: f"{v:+.1f} {unit}"


def _bp(mean: HomeMean) -> str:
    return f"{mean.systolic:.0f}/{mean.diastolic:.0f} mmHg (n={mean.readings})"


def _cgm_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    cgm = summary.cgm
    assert cgm is not None
    rows = [
        Row(text("cgm_active", lang), f"{cgm.active_percent:.0f} %", CONSENSUS_GOALS["cgm_active"]),
        _row("mean_glucose", cgm.mean_mmol_l, _fixed(1, "mmol/L"), lang),
        _row("gmi", cgm.gmi_percent, _fixed(1, "%"), lang),
        _row("cv", cgm.cv_percent, _fixed(1, "%"), lang, CONSENSUS_GOALS["cv"]),
    ]
    tir = cgm.time_in_ranges_percent
    shares: dict[str, Callable[[TimeInRanges], float]] = {
        "tir": lambda t: t.target,
        "tbr1": lambda t: t.low + t.very_low,
        "tbr2": lambda t: t.very_low,
        "tar1": lambda t: t.high + t.very_high,
        "tar2": lambda t: t.very_high,
    }
    for key, share in shares.items():
        match tir:
            case Sufficient(value):
                rows.append(Row(text(key, lang), f"{share(value):.1f} %", CONSENSUS_GOALS[key]))
            case Insufficient() as missing:
                rows.append(
                    Row(text(key, lang), _shortfall(missing, lang), CONSENSUS_GOALS[key], True)
                )
    return rows


def _meter_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    meter = summary.meter
    assert meter is not None
    goal = f"{summary.targets.glucose_low_mmol_l:g}–{summary.targets.glucose_high_mmol_l:g} mmol/L"
    return [
        Row(text("readings", lang), str(meter.readings)),
        Row(text("per_day", lang), f"{meter.readings_per_day:.1f}"),
        _row("mean_glucose", meter.mean_mmol_l, _fixed(1, "mmol/L"), lang),
        _row("sd", meter.sd_mmol_l, _fixed(1, "mmol/L"), lang),
        _row("in_target", meter.in_target_percent, _fixed(0, "%"), lang, goal),
        Row(text("min_max", lang), f"{meter.min_mmol_l:.1f} / {meter.max_mmol_l:.1f} mmol/L"),
        Row(text("hypo_events", lang), f"{meter.events_below_3_9} / {meter.events_below_3_0}"),
    ]


def _meal_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    assert summary.meter is not None
    rows = []
    for meal in summary.meter.by_meal[:MAX_MEAL_ROWS]:
        label = TEXT.get(meal.context, {}).get(lang, meal.context)
        mean = _row("mean_glucose", meal.mean_mmol_l, _fixed(1), lang)
        hit = _row("in_target", meal.in_target_percent, _fixed(0, "%"), lang)
        value = "—" if mean.missing else f"{mean.value} mmol/L, {hit.value}"
        rows.append(Row(f"{label} (n={meal.readings})", value, missing=mean.missing))
    return rows


def _bp_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    bp = summary.blood_pressure
    assert bp is not None
    t = summary.targets
    goal = f"< {t.systolic_high_mmhg:g}/{t.diastolic_high_mmhg:g}"
    return [
        _row("home_mean", bp.home_mean, _bp, lang, goal),
        _row("morning", bp.morning_mean, _bp, lang, goal),
        _row("evening", bp.evening_mean, _bp, lang, goal),
        _row("above_target", bp.above_target_percent, _fixed(0, "%"), lang),
    ]


def _weight_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    w = summary.weight
    assert w is not None
    return [
        Row(text("latest", lang), f"{w.latest_kg:.1f} kg"),
        _row("change_3d", w.change_3d_kg, _signed("kg"), lang, "≤ +2 kg"),
        _row("change_7d", w.change_7d_kg, _signed("kg"), lang),
        _row("trend", w.trend_kg_per_week, _signed("kg/wk"), lang),
    ]


def _vital_rows(summary: PatientSummary, lang: Lang) -> list[Row]:
    rows = []
    if summary.spo2 is not None:
        s = summary.spo2
        rows.append(_row("spo2", s.mean_percent, _fixed(0, "%"), lang))
        rows.append(
            _row(
                "spo2_below",
                s.below_target_percent,
                _fixed(0, "%"),
                lang,
                f"≥ {summary.targets.spo2_low_percent:g} %",
            )
        )
    if summary.heart_rate is not None:
        rows.append(_row("heart_rate", summary.heart_rate.mean_per_min, _fixed(0, "/min"), lang))
    return rows


def _sufficiency_line(summary: PatientSummary, lang: Lang) -> str:
    parts = []
    ok, short = text("sufficient", lang), text("insufficient", lang)
    if summary.cgm is not None:
        state = ok if isinstance(summary.cgm.time_in_ranges_percent, Sufficient) else short
        parts.append(f"CGM {summary.cgm.active_percent:.0f} % — {state}")
    if summary.meter is not None:
        state = ok if isinstance(summary.meter.mean_mmol_l, Sufficient) else short
        parts.append(f"{text('meter', lang)} n={summary.meter.readings} — {state}")
    if summary.blood_pressure is not None:
        state = ok if isinstance(summary.blood_pressure.home_mean, Sufficient) else short
        parts.append(f"{text('bp', lang)} n={summary.blood_pressure.readings} — {state}")
    if summary.weight is not None:
        state = ok if isinstance(summary.weight.change_7d_kg, Sufficient) else short
        parts.append(f"{text('weight', lang)} {summary.weight.days_with_weight} d — {state}")
    return "; ".join(parts)


def _visit_outcome(visit: VisitLine, zone: ZoneInfo, lang: Lang) -> str:
    if visit.status == "completed":
        parts = []
        if visit.programme:
            parts.append(_word(f"visit_prog_{visit.programme}", visit.programme, lang))
        if visit.classification:
            parts.append(_word(f"visit_class_{visit.classification}", visit.classification, lang))
        return " · ".join(parts) if parts else text("visit_no_class", lang)
    if visit.is_open:
        due = visit.latest.astimezone(zone).strftime("%m-%d")
        return text("visit_due_by", lang).format(date=due)
    return ""


def _word(key: str, fallback: str, lang: Lang) -> str:
    return TEXT[key][lang] if key in TEXT else fallback


def _visit_rows(visits: Sequence[VisitLine], zone: ZoneInfo, lang: Lang) -> list[Row]:
    rows = []
    for visit in visits[:MAX_VISIT_ROWS]:
        kind = _word(f"visit_kind_{visit.kind}", visit.kind, lang)
        status = _word(f"visit_status_{visit.status}", visit.status, lang)
        outcome = _visit_outcome(visit, zone, lang)
        value = f"{kind} · {status}" + (f" · {outcome}" if outcome else "")
        rows.append(Row(visit.when.astimezone(zone).strftime("%m-%d %H:%M"), value))
    return rows


def _daily_svg(report: ReportInput, lang: Lang) -> tuple[str | None, str]:
    """The daily profiles and their caption; None when no CGM reading was given."""
    profiles = daily_profiles(report.readings, report.summary.period)
    if not any(day.readings for day in profiles.days):
        return None, ""
    caption = text("daily_profiles", lang)
    if profiles.truncated:
        caption += " — " + text("daily_last", lang).format(
            shown=len(profiles.days), total=profiles.period_days
        )
    return daily_profiles_chart(profiles.days, text("no_data_day", lang)), caption


def report_html(report: ReportInput, lang: str) -> str:
    """The report as a self-contained HTML page (what :func:`report_pdf` renders).

    Raises:
        UnknownLanguage: ``lang`` is neither ``zh`` nor ``en``.
    """
    if lang not in LANGS:
        raise UnknownLanguage(f"no report language {lang!r}; use zh or en")
    language: Lang = "zh" if lang == "zh" else "en"
    summary = report.summary
    period = summary.period
    zone = period.zone
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    cgm = summary.cgm
    tir_svg = band_svg = daily_svg = None
    daily_caption = ""
    cgm_shortfall = None
    if cgm is not None:
        match cgm.time_in_ranges_percent, cgm.percentile_bands:
            case Sufficient(tir), Sufficient(bands):
                assert isinstance(tir, TimeInRanges)
                labels = {k: text(k, language) for k in ("very_low", "low", "target", "high")}
                labels["very_high"] = text("very_high", language)
                tir_svg = time_in_ranges_bar(tir, labels)
                band_svg = percentile_band_chart(
                    bands, DEFAULT_BAND_MINUTES, width=BAND_WIDTH_PX, height=BAND_HEIGHT_PX
                )
                # daily profiles only beside sufficient CGM data: a fortnight of traces
                # over two days of wear would show twelve empty frames as if meaningful
                daily_svg, daily_caption = _daily_svg(report, language)
            case Insufficient() as missing, _:
                cgm_shortfall = _shortfall(missing, language)
            case _, Insufficient() as missing:
                cgm_shortfall = _shortfall(missing, language)
    alerts = sorted(report.alerts, key=lambda a: a.opened_at)
    visits = sorted(report.visits, key=lambda v: (v.when, v.task_id))
    alert_rows = [
        Row(
            a.opened_at.astimezone(zone).strftime("%m-%d %H:%M"),
            f"{a.rule_id} · {a.severity} · {a.state}",
        )
        for a in alerts[:MAX_ALERT_ROWS]
    ]
    empty = all(
        section is None
        for section in (
            summary.cgm,
            summary.meter,
            summary.blood_pressure,
            summary.weight,
            summary.spo2,
            summary.heart_rate,
        )
    )
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            lang=language,
            t=lambda key: text(key, language),
            patient_id=summary.patient_id,
            patient_name=report.patient_name,
            first=first.isoformat(),
            last=last.isoformat(),
            days=round(period.days),
            generated=report.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            zone=str(zone),
            sufficiency=_sufficiency_line(summary, language),
            empty=empty,
            cgm_rows=_cgm_rows(summary, language) if cgm is not None else None,
            cgm_shortfall=cgm_shortfall,
            tir_svg=tir_svg,
            band_svg=band_svg,
            meter_rows=_meter_rows(summary, language) if summary.meter is not None else None,
            meal_rows=_meal_rows(summary, language) if summary.meter is not None else None,
            meter_first=cgm is None,
            bp_rows=_bp_rows(summary, language) if summary.blood_pressure is not None else None,
            weight_rows=_weight_rows(summary, language) if summary.weight is not None else None,
            vital_rows=_vital_rows(summary, language),
            alert_rows=alert_rows,
            more_alerts=max(0, len(alerts) - MAX_ALERT_ROWS),
            daily_svg=daily_svg,
            daily_caption=daily_caption,
            visit_rows=_visit_rows(visits, zone, language),
            more_visits=max(0, len(visits) - MAX_VISIT_ROWS),
        )
    )


def report_pdf(report: ReportInput, lang: str) -> bytes:
    """The report as A4 PDF bytes (one page), fonts embedded.

    Raises:
        UnknownLanguage: ``lang`` is neither ``zh`` nor ``en``.
    """
    # imported here: it loads Pango and fonts, which only reports need
    import weasyprint  # type: ignore[import-untyped]

    document = weasyprint.HTML(string=report_html(report, lang)).render()
    pdf: bytes = document.write_pdf()
    return pdf
