"""Inline SVG for the one-page report: pure functions from summary values to markup.

The report is HTML rendered to PDF, so charts are SVG strings embedded in the page; no
plotting library, no raster images, and the text in them stays selectable in the PDF.
Numbers are formatted here; nothing that comes from outside (names, ids) enters an SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from reports.daily_profiles import DayProfile
from reports.summaries import TimeInRanges, TimeOfDayBand

RANGE_COLOURS: Final = {
    "very_low": "#a3001e",
    "low": "#e8453c",
    "target": "#3a9b4a",
    "high": "#f2b632",
    "very_high": "#e07b00",
}
"""Colours of the five consensus ranges, ordered very low → very high (red for lows,
green for target, amber/orange for highs, as in the consensus report's bar)."""

RANGE_ORDER: Final = ("very_high", "high", "target", "low", "very_low")
"""Top to bottom in the bar, as the consensus report stacks it."""

CHART_MAX_MMOL_L: Final = 22.2
"""Top of the glucose axis: 400 mg/dL, the upper reporting limit of most CGMs."""

TARGET_BAND_MMOL_L: Final = (3.9, 10.0)
"""The consensus target range drawn as a band behind the percentiles (Battelino 2019)."""


def time_in_ranges_bar(tir: TimeInRanges, labels: dict[str, str]) -> str:
    """A stacked vertical bar of the five ranges, with the percentage of each beside it."""
    width, height, bar_width = 135, 150, 30
    y = 0.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for name in RANGE_ORDER:
        share = getattr(tir, name)
        h = height * share / 100
        parts.append(
            f'<rect x="0" y="{y:.2f}" width="{bar_width}" height="{h:.2f}" '
            f'fill="{RANGE_COLOURS[name]}"/>'
        )
        y += h
    # labels at evenly spaced rows so small shares stay readable
    row = height / len(RANGE_ORDER)
    for index, name in enumerate(RANGE_ORDER):
        share = getattr(tir, name)
        ty = row * index + row / 2 + 4
        parts.append(
            f'<text x="{bar_width + 5}" y="{ty:.1f}" font-size="8">'
            f"{labels[name]} {share:.0f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def percentile_band_chart(
    bands: Sequence[TimeOfDayBand],
    band_minutes: int,
    target: tuple[float, float] = TARGET_BAND_MMOL_L,
    *,
    width: int = 440,
    height: int = 170,
) -> str:
    """Glucose by time of day: 5–95 % and 25–75 % bands, the median, and the target band.

    Bins without readings leave a gap (the polygons are drawn per contiguous run), so a
    night with no sensor does not appear as a straight line across it.
    """
    left, bottom = 28, 16
    plot_w, plot_h = width - left - 4, height - bottom - 4

    def x(minute: float) -> float:
        return left + plot_w * minute / 1440

    def y(mmol: float) -> float:
        return 4 + plot_h * (1 - min(mmol, CHART_MAX_MMOL_L) / CHART_MAX_MMOL_L)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    low, high = target
    parts.append(
        f'<rect x="{left}" y="{y(high):.2f}" width="{plot_w}" height="{y(low) - y(high):.2f}" '
        'fill="#dff0d8" stroke="#3a9b4a" stroke-width="0.6"/>'
    )
    for mark in (3.9, 10.0, 13.9, 20.0):
        parts.append(
            f'<text x="{left - 3}" y="{y(mark) + 3:.1f}" font-size="7" text-anchor="end">'
            f"{mark:g}</text>"
        )
    for hour in range(0, 25, 6):
        # the last label ends at the frame, so it is not clipped at the chart's edge
        anchor = "end" if hour == 24 else "middle"
        parts.append(
            f'<text x="{x(hour * 60):.1f}" y="{height - 4}" font-size="7" '
            f'text-anchor="{anchor}">{hour:02d}:00</text>'
        )
    for run in _runs(bands, band_minutes):
        centres = [b.start_minute + band_minutes / 2 for b in run]
        for lower, upper, colour in (("p5", "p95", "#c6d9ec"), ("p25", "p75", "#7fa7d0")):
            top = [
                f"{x(c):.2f},{y(getattr(b, upper)):.2f}" for c, b in zip(centres, run, strict=True)
            ]
            bot = [
                f"{x(c):.2f},{y(getattr(b, lower)):.2f}"
                for c, b in reversed(list(zip(centres, run, strict=True)))
            ]
            parts.append(f'<polygon points="{" ".join(top + bot)}" fill="{colour}"/>')
        median = " ".join(f"{x(c):.2f},{y(b.p50):.2f}" for c, b in zip(centres, run, strict=True))
        parts.append(
            f'<polyline points="{median}" fill="none" stroke="#1f3f66" stroke-width="1.4"/>'
        )
    parts.append(
        f'<rect x="{left}" y="4" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _runs(bands: Sequence[TimeOfDayBand], band_minutes: int) -> list[list[TimeOfDayBand]]:
    """Consecutive bins grouped; a run of one bin is widened to a flat segment later."""
    runs: list[list[TimeOfDayBand]] = []
    for band in sorted(bands, key=lambda b: b.start_minute):
        if runs and band.start_minute - runs[-1][-1].start_minute == band_minutes:
            runs[-1].append(band)
        else:
            runs.append([band])
    return runs


DAILY_COLUMNS: Final = 7
"""Small multiples per row: a week a row."""


def daily_profiles_chart(days: Sequence[DayProfile], no_data: str) -> str:
    """Small multiples: one tiny chart per day (00–24 h, 0–22.2 mmol/L) with the target band.

    Each day is a ``<g class="day" data-day="YYYY-MM-DD">``; a day without readings shows
    ``no_data`` in an empty frame. A single point (one reading between gaps) is a dot.
    """
    panel_w, panel_h, gap, label_h = 96.0, 38.0, 4.0, 9.0
    rows = max(1, -(-len(days) // DAILY_COLUMNS))
    width = DAILY_COLUMNS * (panel_w + gap)
    height = rows * (panel_h + label_h + gap)
    low, high = TARGET_BAND_MMOL_L

    def y(mmol: float) -> float:
        return panel_h * (1 - min(mmol, CHART_MAX_MMOL_L) / CHART_MAX_MMOL_L)

    def x(minute: float) -> float:
        return panel_w * minute / 1440

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}">']
    for index, profile in enumerate(days):
        left = (index % DAILY_COLUMNS) * (panel_w + gap)
        top = (index // DAILY_COLUMNS) * (panel_h + label_h + gap)
        parts.append(
            f'<g class="day" data-day="{profile.day.isoformat()}" '
            f'transform="translate({left:.1f},{top:.1f})">'
        )
        parts.append(f'<text x="1" y="7" font-size="7">{profile.day.strftime("%m-%d")}</text>')
        parts.append(f'<g transform="translate(0,{label_h})">')
        parts.append(
            f'<rect x="0" y="{y(high):.2f}" width="{panel_w}" height="{y(low) - y(high):.2f}" '
            'fill="#dff0d8"/>'
        )
        for segment in profile.segments:
            if len(segment) == 1:
                ((minute, mmol),) = segment
                parts.append(
                    f'<circle cx="{x(minute):.2f}" cy="{y(mmol):.2f}" r="0.9" fill="#1f3f66"/>'
                )
                continue
            points = " ".join(f"{x(m):.2f},{y(v):.2f}" for m, v in segment)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="#1f3f66" stroke-width="0.7"/>'
            )
        if not profile.segments:
            parts.append(
                f'<text x="{panel_w / 2:.1f}" y="{panel_h / 2 + 3:.1f}" font-size="7" '
                f'text-anchor="middle" fill="#8a4b00">{escape(no_data)}</text>'
            )
        parts.append(
            f'<line x1="{panel_w / 2:.1f}" y1="0" x2="{panel_w / 2:.1f}" y2="{panel_h}" '
            'stroke="#ccc" stroke-width="0.4"/>'
        )
        parts.append(
            f'<rect x="0" y="0" width="{panel_w}" height="{panel_h}" fill="none" '
            'stroke="#999" stroke-width="0.5"/>'
        )
        parts.append("</g></g>")
    parts.append("</svg>")
    return "".join(parts)
