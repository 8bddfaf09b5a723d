"""Summaries benchmark: the triage view's load and one long CGM patient.

Run from the repository root::

    python bench/reports.py            # 10,000 patients x 14 days; 1 patient x 90 days CGM
    python bench/reports.py --quick    # 500 patients, smoke run

Part 1 measures ``reports.summaries``; part 2 (``--pdf-only``) the one-page PDF report.

(a) **Triage load.** 10,000 patients x 14 days in Asia/Shanghai: every patient has a
    meter (4 readings a day with meal context, some low) and home BP (2 a day); 1 in 50
    also wears a 5-min CGM (4,032 readings each) and 1 in 5 weighs daily. The figure is
    the time of :func:`reports.summaries.summarise_patient` for every patient, readings
    already in memory and grouped by patient (as the triage view gets them from the store).
(b) **One patient x 90 days of CGM** (25,920 readings): :func:`summarise_cgm` over the
    90 days, and over each of the six 14-day windows in it (the report's history).

The **raw baseline** of each is a plain numpy pass over the same numbers, already in
arrays: per patient mean, SD, min/max and range counts with ``np.searchsorted``, and for
(b) also the hourly percentiles with ``np.percentile`` per hour. The ratio
``summaries / baseline`` is what ``docs/benchmarks.md`` records (absolute figures move on
a shared machine; the ratio measured in one run does much less). Memory: peak traced
allocation (``tracemalloc``) of the summary step with its results kept, on a
1,000-patient slice for (a), and the process's peak RSS (mostly the readings) for scale.
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from readings.model import (
    BloodPressureValues,
    CgmGlucoseValues,
    GlucoseValues,
    Reading,
    WeightValues,
    new_reading,
)
from reports.summaries import Period, Targets, summarise_cgm, summarise_patient

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, tzinfo=ZONE)
MEALS = ("fasting", "postprandial", "preprandial", "bedtime")
EDGES = np.array([3.0, 3.9, 10.0, 13.9])


def _template(values: Any, unit: str) -> Reading:
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=START,
        received_at=START.astimezone(UTC),
        device_id="acme-device-0001",
        patient_id="p-0",
        gateway_id="gw-1",
    )


TEMPLATES = {
    "cgm": _template(CgmGlucoseValues(glucose=6.0), "mmol/L"),
    "meter": _template(GlucoseValues(glucose=6.0), "mmol/L"),
    "bp": _template(BloodPressureValues(systolic=130, diastolic=80), "mm[Hg]"),
    "weight": _template(WeightValues(weight=70.0), "kg"),
}


def _clone(kind: str, values: Any, at: datetime, patient: str, **extra: Any) -> Reading:
    # structs.replace keeps the template's id: ids are irrelevant to summaries, and
    # deriving 1.5 million of them would dominate the set-up.
    return msgspec.structs.replace(
        TEMPLATES[kind], values=values, measured_at=at, patient_id=patient, **extra
    )


def cgm_series(patient: str, days: int, rng: np.random.Generator) -> list[Reading]:
    n = days * 288
    minutes = np.arange(n) * 5
    daily = 7.0 + 2.5 * np.sin(2 * np.pi * (minutes % 1440) / 1440)
    glucose = np.clip(daily + rng.normal(0, 1.2, n), 2.2, 22.0)
    return [
        _clone(
            "cgm", CgmGlucoseValues(glucose=float(g)), START + timedelta(minutes=int(m)), patient
        )
        for m, g in zip(minutes, glucose, strict=True)
    ]


def patient_readings(index: int, rng: np.random.Generator) -> list[Reading]:
    patient = f"p-{index}"
    out: list[Reading] = []
    for day in range(14):
        for slot, hour in enumerate((7, 10, 17, 22)):
            value = float(np.clip(rng.normal(7.5, 2.2), 2.5, 20.0))
            at = START + timedelta(days=day, hours=hour, minutes=int(rng.integers(0, 30)))
            out.append(
                _clone(
                    "meter",
                    GlucoseValues(glucose=value),
                    at,
                    patient,
                    context={"meal": MEALS[slot]},
                )
            )
        for hour in (7, 21):
            at = START + timedelta(days=day, hours=hour)
            sbp, dbp = rng.normal(135, 12), rng.normal(84, 8)
            out.append(_clone("bp", BloodPressureValues(systolic=sbp, diastolic=dbp), at, patient))
        if index % 5 == 0:
            at = START + timedelta(days=day, hours=6, minutes=50)
            out.append(_clone("weight", WeightValues(weight=70 + 0.05 * day), at, patient))
    if index % 50 == 0:
        out += cgm_series(patient, 14, rng)
    return out


def baseline_patient(arrays: dict[str, np.ndarray]) -> tuple[float, ...]:
    """The raw pass: the same statistics with plain numpy on arrays already extracted."""
    result: list[float] = []
    for key in ("meter", "cgm"):
        values = arrays.get(key)
        if values is None or values.size == 0:
            continue
        counts = np.bincount(np.searchsorted(EDGES, values, side="left"), minlength=5)
        result += [values.mean(), values.std(ddof=1), values.min(), values.max(), *counts]
    bp = arrays["bp"]
    result += [bp[:, 0].mean(), bp[:, 1].mean()]
    return tuple(float(x) for x in result)


def arrays_of(readings: list[Reading]) -> dict[str, np.ndarray]:
    meter = [r.values.glucose for r in readings if r.kind == "glucose"]  # type: ignore[attr-defined]
    cgm = [r.values.glucose for r in readings if r.kind == "cgm_glucose"]  # type: ignore[attr-defined]
    bp = [(r.values.systolic, r.values.diastolic) for r in readings if r.kind == "blood_pressure"]  # type: ignore[attr-defined]
    return {"meter": np.array(meter), "cgm": np.array(cgm), "bp": np.array(bp)}


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """median, min, max seconds over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def peak_mib(function: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def fmt(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.3f} s ({t[1]:.3f}–{t[2]:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pdf-only", action="store_true", help="only part 2: the PDF report")
    args = parser.parse_args()
    if args.pdf_only:
        pdf_report(np.random.default_rng(13), args.repeat)
        return
    patients = 500 if args.quick else args.patients
    repeat = 1 if args.quick else args.repeat
    rng = np.random.default_rng(13)
    period = Period(START, START + timedelta(days=14), ZONE)
    targets = Targets()

    started = time.perf_counter()
    grouped = [patient_readings(i, rng) for i in range(patients)]
    total = sum(len(g) for g in grouped)
    build_s = time.perf_counter() - started
    arrays = [arrays_of(g) for g in grouped]

    def summaries(count: int = patients) -> list[object]:
        # The results are kept, as the triage view keeps them to sort and page.
        return [
            summarise_patient(f"p-{index}", grouped[index], period, targets)
            for index in range(count)
        ]

    def baseline() -> None:
        for a in arrays:
            baseline_patient(a)

    a_summary = timed(summaries, repeat)
    a_base = timed(baseline, repeat)
    slice_ = min(1000, patients)
    a_peak = peak_mib(lambda: summaries(slice_))

    long = cgm_series("p-long", 90, rng)
    long_period = Period(START, START + timedelta(days=90), ZONE)
    values = np.array([r.values.glucose for r in long])  # type: ignore[attr-defined]
    hours = np.array([r.measured_at.astimezone(ZONE).hour for r in long])
    windows = [
        Period(START + timedelta(days=14 * w), START + timedelta(days=14 * (w + 1)), ZONE)
        for w in range(6)
    ]

    def long_summary() -> None:
        summarise_cgm(long, long_period)
        for window in windows:
            summarise_cgm(long, window)

    def long_baseline() -> None:
        for _ in range(7):
            np.bincount(np.searchsorted(EDGES, values), minlength=5)
            values.mean(), values.std(ddof=1)
            for hour in range(24):
                np.percentile(values[hours == hour], [5, 25, 50, 75, 95])

    b_summary = timed(long_summary, repeat)
    b_base = timed(long_baseline, repeat)
    b_peak = peak_mib(long_summary)

    print(f"python {platform.python_version()}, numpy {np.__version__}, cores 2 (shared)")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"set-up: {total:,} readings for {patients:,} patients built in {build_s:.1f} s")
    print(f"process peak RSS (readings in memory + everything): {rss_mib:,.0f} MiB\n")
    print("| measurement | summaries | raw numpy baseline | ratio | peak memory (summaries) |")
    print("|---|---|---|---|---|")
    print(
        f"| (a) {patients:,} patients × 14 d, {total:,} readings | {fmt(a_summary)} "
        f"= {1000 * a_summary[0] / patients:.2f} ms/patient | {fmt(a_base)} "
        f"| {a_summary[0] / a_base[0]:.0f}× | {a_peak:.1f} MiB per {slice_:,} patients |"
    )
    print(
        f"| (b) 1 patient × 90 d CGM ({len(long):,} readings), 90 d + six 14-d windows "
        f"| {fmt(b_summary)} | {fmt(b_base)} | {b_summary[0] / b_base[0]:.0f}× | {b_peak:.1f} MiB |"
    )


def pdf_report(rng: np.random.Generator, repeat: int) -> None:
    """Part 2: summaries + the one-page PDF for one patient × 90 days of CGM.

    Baseline, same run: WeasyPrint rendering a static A4 page with the same font and a
    few lines of Chinese and English text (no summaries, no template, no SVG), i.e. the
    fixed cost of HTML → PDF with an embedded CJK subset.
    """
    import weasyprint  # type: ignore[import-untyped]

    from reports.pdf import ReportInput, report_pdf

    long = cgm_series("p-long", 90, rng)
    period = Period(START, START + timedelta(days=90), ZONE)
    targets = Targets()
    made = datetime(2026, 6, 1, tzinfo=UTC)

    def report() -> None:
        summary = summarise_patient("p-long", long, period, targets)
        report_pdf(ReportInput(summary=summary, generated_at=made, readings=tuple(long)), "zh")

    def summaries_only() -> None:
        summarise_patient("p-long", long, period, targets)

    page = (
        '<html><head><style>@page{size:A4} html{font-family:"Noto Sans CJK SC"}</style>'
        "</head><body><h1>居家监测报告</h1><p>平均葡萄糖 7.5 mmol/L · Mean glucose</p>"
        "</body></html>"
    )

    def baseline() -> None:
        weasyprint.HTML(string=page).write_pdf()

    baseline()  # fonts loaded once, as in a running server
    t_report = timed(report, repeat)
    t_summary = timed(summaries_only, repeat)
    t_base = timed(baseline, repeat)
    print(f"python {platform.python_version()}, weasyprint {weasyprint.__version__}")
    print("| measurement | time | raw baseline (static page) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| (c) 1 patient × 90 d CGM ({len(long):,} readings): summaries + PDF (zh) "
        f"| {fmt(t_report)} (summaries alone {fmt(t_summary)}) | {fmt(t_base)} "
        f"| {t_report[0] / t_base[0]:.1f}× |"
    )


if __name__ == "__main__":
    main()
