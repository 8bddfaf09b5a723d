"""Daily CGM profiles and the visits of the period on the one-page report."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from readings.model import Reading
from registry.alert_models import AlertRow
from reports.daily_profiles import BIN_MINUTES, MAX_DAYS, daily_profiles
from reports.loading import PatientData
from reports.pdf import MAX_VISIT_ROWS, ReportInput, report_html, report_pdf
from reports.summaries import Period, Targets, summarise_patient
from tests.reports.builders import SHANGHAI, T0, cgm, heart_rate, meter
from tests.reports.seed import PERIOD, fortnight, summary
from tests.reports.test_pdf import GENERATED, _assert_one_page_not_blank, _pages, _text
from tests.reports.visit_builders import AT, visit

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils not installed"
)


def _days(html: str) -> list[str]:
    return re.findall(r'<g class="day" data-day="([0-9-]+)"', html)


# -- the pure profile ------------------------------------------------------------------------


def test_one_profile_per_local_day_of_a_fortnight() -> None:
    profiles = daily_profiles(fortnight(), PERIOD)
    assert [d.day for d in profiles.days] == [
        date(2026, 3, 1) + timedelta(days=i) for i in range(14)
    ]
    assert not profiles.truncated
    assert all(d.readings == 96 for d in profiles.days)
    assert all(len(d.segments) == 1 for d in profiles.days)  # 15-min data joins up


def test_days_are_local_and_gaps_break_the_trace() -> None:
    day = T0 + timedelta(days=2)  # 2026-03-03 local
    readings = [
        cgm(6.0, day + timedelta(hours=8)),
        cgm(6.2, day + timedelta(hours=8, minutes=30)),  # 30 min: still joined
        cgm(6.4, day + timedelta(hours=9, minutes=20)),  # next bin 45 min on: a gap
        cgm(9.0, day + timedelta(hours=23, minutes=50)),  # late evening: same local day
        cgm(5.0, day - timedelta(minutes=10)),  # 23:50 on the 2nd
    ]
    profiles = daily_profiles(readings, PERIOD)
    by_day = {d.day: d for d in profiles.days}
    third = by_day[date(2026, 3, 3)]
    assert third.readings == 4
    assert [len(s) for s in third.segments] == [2, 1, 1]
    assert third.segments[0][0][0] == pytest.approx(8 * 60 + BIN_MINUTES / 2)
    assert by_day[date(2026, 3, 2)].readings == 1
    assert by_day[date(2026, 3, 2)].segments[0][0][0] == pytest.approx(23 * 60 + 52.5)
    assert by_day[date(2026, 3, 5)].segments == ()  # no sensor that day: an empty frame


def test_one_minute_sensor_is_binned_to_five_minutes() -> None:
    readings = [cgm(6.0 + (i % 5) * 0.1, T0 + timedelta(minutes=i)) for i in range(1440)]
    first = daily_profiles(readings, PERIOD).days[0]
    assert first.readings == 1440
    points = [p for s in first.segments for p in s]
    assert len(points) == 1440 // BIN_MINUTES
    assert points[0][1] == pytest.approx(6.2)  # the mean of 6.0 … 6.4


def test_a_long_period_shows_its_last_days_only() -> None:
    period = Period.local_days(date(2026, 1, 1), date(2026, 4, 1), SHANGHAI)  # 90 days
    readings = [
        cgm(7.0, datetime(2026, 1, 1, tzinfo=SHANGHAI) + timedelta(hours=h)) for h in range(90 * 24)
    ]
    profiles = daily_profiles(readings, period)
    assert profiles.period_days == 90
    assert profiles.truncated
    assert len(profiles.days) == MAX_DAYS
    assert profiles.days[0].day == date(2026, 3, 18)
    assert profiles.days[-1].day == date(2026, 3, 31)


# -- on the page ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cgm_readings() -> list[Reading]:
    return fortnight()


def _input(readings: list[Reading], **kw: object) -> ReportInput:
    return ReportInput(summary=summary(readings), generated_at=GENERATED, readings=readings, **kw)  # type: ignore[arg-type]


def test_fourteen_small_charts_with_the_target_band(cgm_readings: list[Reading]) -> None:
    html = report_html(_input(cgm_readings), "en")
    assert _days(html) == [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(14)]
    assert "Daily glucose profiles" in html
    assert "only the last" not in html
    daily = html.split('class="daily"')[1]
    # each panel has the band 3.9–10.0 on the 0–22.2 axis: height (10.0-3.9)/22.2 of 38 px
    assert daily.count('fill="#dff0d8"') == 14
    assert 'height="10.44"' in daily
    assert daily.count("<polyline") == 14
    assert "AGP" not in html


def test_no_profiles_without_sufficient_cgm_or_without_readings(
    cgm_readings: list[Reading],
) -> None:
    short = fortnight(days=2)
    assert _days(report_html(_input(short), "en")) == []
    meter_only = fortnight(with_cgm=False)
    assert _days(report_html(_input(meter_only), "en")) == []
    no_readings = ReportInput(summary=summary(cgm_readings), generated_at=GENERATED)
    assert _days(report_html(no_readings, "zh")) == []


@pytest.fixture(scope="module")
def ninety_days() -> tuple[Period, list[Reading]]:
    period = Period.local_days(date(2026, 1, 1), date(2026, 4, 1), SHANGHAI)
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    readings = [
        cgm(7.0 + (i % 40) * 0.1, start + timedelta(minutes=15 * i)) for i in range(90 * 96)
    ]
    return period, readings


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", "only the last 14 of 90 days are shown"),
        ("zh", "仅显示本时段最后 14 天（共 90 天）"),
    ],
)
def test_a_ninety_day_report_says_it_shows_the_last_fortnight(
    ninety_days: tuple[Period, list[Reading]], lang: str, words: str
) -> None:
    period, readings = ninety_days
    s = summarise_patient("p-1", readings, period, Targets())
    html = report_html(ReportInput(summary=s, generated_at=GENERATED, readings=readings), lang)
    assert len(_days(html)) == 14
    assert _days(html)[0] == "2026-03-18"
    assert words in html


def _alert(i: int) -> AlertRow:
    return AlertRow(
        id=i, patient_id="p-1", rule_id="G7", rule_version=1, metric="glucose", severity="P2",
        state="open", confirmed=True, late=False, reading_ids="[]", thresholds="{}",
        explanation_key="alert.g7", explanation_params="{}", opened_at=AT + timedelta(hours=i),
        fired_at=None, acknowledged_at=None, acknowledged_by=None, resolved_at=None,
        last_notified_at=None, muted_by=None, assignee=None,
    )  # fmt: skip


def _visits() -> list[object]:
    done = [
        visit(task_id=i, check_in_at=AT + timedelta(days=i),
              classification="not_controlled" if i % 2 else "controlled")
        for i in range(1, 6)
    ]  # fmt: skip
    missed = visit(
        task_id=20, status="missed", check_in_at=None, closed_at=AT + timedelta(days=6, hours=1),
        closing_reason="家里没人", classification=None, programme=None,
    )  # fmt: skip
    pending = visit(
        task_id=21, status="requested", check_in_at=None, closed_at=None, scheduled_at=None,
        created_at=AT - timedelta(days=10), latest=datetime(2026, 3, 20, 2, tzinfo=UTC),
        classification=None, programme=None,
    )  # fmt: skip
    return [*done, missed, pending]


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ["Visits in this period", "home visit · completed · hypertension · not controlled",
                "home visit · requested · due by 03-20", "+1"]),
        ("zh", ["本时段随访", "入户随访 · 已完成 · 高血压 · 控制不满意",
                "入户随访 · 待安排 · 截止 03-20", "+1"]),
    ],
)  # fmt: skip
def test_visits_are_listed_beside_the_alerts(
    cgm_readings: list[Reading], lang: str, words: list[str]
) -> None:
    html = report_html(_input(cgm_readings, visits=_visits()), lang)
    for w in words:
        assert w in html
    listed = html.split(words[0])[1]
    # oldest first: the pending request of 02-22 before the visits of March
    assert listed.index("02-22 10:00") < listed.index("03-05 10:00")
    assert listed.count('<td class="when">') == MAX_VISIT_ROWS


def test_no_visits_says_none(cgm_readings: list[Reading]) -> None:
    html = report_html(_input(cgm_readings), "en")
    section = html.split("Visits in this period</h2>")[1]
    assert section.lstrip().startswith("<div>none</div>")


def test_report_input_of_loaded_data_carries_visits_and_readings(
    cgm_readings: list[Reading],
) -> None:
    data = PatientData(
        patient_id="p-1", display_name="李强", period=PERIOD, targets=Targets(),
        readings=tuple(cgm_readings), alerts=(_alert(1),), visits=(visit(),),
    )  # fmt: skip
    made = ReportInput.of(data, summary(cgm_readings), GENERATED)
    assert made.visits == (visit(),)
    assert made.readings == tuple(cgm_readings)
    assert made.alerts == data.alerts
    assert made.patient_name == "李强"


@needs_poppler
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_everything_at_once_stays_one_page(
    tmp_path: Path, cgm_readings: list[Reading], lang: str
) -> None:
    # CGM and a meter, BP, weight, SpO2, heart rate, a full alert list and a full visit list
    extra = [meter(6.0 + (i % 4), T0 + timedelta(hours=7 + i * 6)) for i in range(40)]
    extra += [heart_rate(70, T0 + timedelta(days=d, hours=9)) for d in range(14)]
    readings = cgm_readings + extra
    report = _input(readings, visits=_visits(), alerts=[_alert(i) for i in range(9)])
    pdf = tmp_path / f"all-{lang}.pdf"
    pdf.write_bytes(report_pdf(report, lang))
    _assert_one_page_not_blank(pdf, tmp_path)
    text = _text(pdf)
    assert ("每日葡萄糖曲线" if lang == "zh" else "Daily glucose profiles") in text
    assert ("本时段随访" if lang == "zh" else "Visits in this period") in text
    for day in ("03-01", "03-07", "03-14"):
        assert day in text
    assert "AGP" not in text


@needs_poppler
def test_ninety_day_pdf_is_one_page(
    tmp_path: Path, ninety_days: tuple[Period, list[Reading]]
) -> None:
    period, readings = ninety_days
    s = summarise_patient("p-1", readings, period, Targets())
    pdf = tmp_path / "ninety.pdf"
    pdf.write_bytes(
        report_pdf(ReportInput(summary=s, generated_at=GENERATED, readings=readings), "en")
    )
    assert _pages(pdf) == 1
    assert "only the last 14" in _text(pdf).replace("\n", " ")
