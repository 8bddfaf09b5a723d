"""The one-page report, checked on the PDF itself with poppler's tools.

Real WeasyPrint, real Debian Noto CJK fonts, real ``pdftoppm``/``pdffonts``/``pdftotext``.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from reports.pdf import ReportInput, UnknownLanguage, report_html, report_pdf
from reports.summaries import Sufficient
from reports.summaries.patient import PatientSummary
from tests.reports.seed import fortnight, summary

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils not installed"
)

GENERATED = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


def _render(tmp: Path, s: PatientSummary, lang: str, name: str) -> Path:
    path = tmp / f"{name}-{lang}.pdf"
    path.write_bytes(report_pdf(ReportInput(summary=s, generated_at=GENERATED), lang))
    return path


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True)
    return out.stdout.decode()


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True).stdout.decode()
    return int(next(line for line in info.splitlines() if line.startswith("Pages:")).split()[1])


def _assert_one_page_not_blank(pdf: Path, tmp: Path) -> None:
    assert _pages(pdf) == 1
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp / "page")], check=True)
    pngs = sorted(tmp.glob("page*.png"))
    assert len(pngs) == 1
    with Image.open(pngs[0]) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
        dark = sum(histogram[:200])
        assert dark > 0.01 * grey.width * grey.height  # text and charts, not a blank page
        assert image.width < image.height  # portrait A4
    pngs[0].unlink()


@pytest.fixture(scope="module")
def cgm_summary() -> PatientSummary:
    return summary(fortnight())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cgm_report_one_page_cjk_embedded_and_metrics(
    tmp_path: Path, cgm_summary: PatientSummary, lang: str
) -> None:
    pdf = _render(tmp_path, cgm_summary, lang, "cgm")
    _assert_one_page_not_blank(pdf, tmp_path)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, check=True)
    cjk = [line for line in fonts.stdout.decode().splitlines() if "CJK" in line]
    assert cjk, fonts.stdout
    assert all(" yes " in line for line in cjk)  # emb column
    text = _text(pdf)
    cgm = cgm_summary.cgm
    assert cgm is not None
    tir = cgm.time_in_ranges_percent
    gmi = cgm.gmi_percent
    assert isinstance(tir, Sufficient)
    assert isinstance(gmi, Sufficient)
    assert f"{tir.value.target:.1f} %" in text
    assert f"{gmi.value:.1f} %" in text
    bp = cgm_summary.blood_pressure
    assert bp is not None
    assert isinstance(bp.home_mean, Sufficient)
    assert f"{bp.home_mean.value.systolic:.0f}/{bp.home_mean.value.diastolic:.0f} mmHg" in text
    if lang == "zh":
        for words in ("居家监测报告", "目标范围内时间", "葡萄糖管理指标", "家庭血压", "体重"):
            assert words in text
    else:
        for words in ("Home monitoring report", "Time in range", "GMI", "blood pressure"):
            assert words in text
    assert "AGP" not in text


def test_meter_variant_without_cgm(tmp_path: Path) -> None:
    s = summary(fortnight(with_cgm=False))
    assert s.cgm is None
    assert s.meter is not None
    pdf = _render(tmp_path, s, "en", "meter")
    _assert_one_page_not_blank(pdf, tmp_path)
    text = _text(pdf)
    assert "Meter (fingerstick) glucose" in text
    assert "CGM" not in text.split("Data sufficiency")[1].split("\n", 1)[1]
    assert isinstance(s.meter.mean_mmol_l, Sufficient)
    assert f"{s.meter.mean_mmol_l.value:.1f} mmol/L" in text
    assert "fasting" in text


@pytest.mark.parametrize(("lang", "statement"), [("zh", "数据不足"), ("en", "Not enough data")])
def test_too_little_data_says_so_and_draws_no_chart(
    tmp_path: Path, lang: str, statement: str
) -> None:
    s = summary(fortnight(days=2))
    html = report_html(ReportInput(summary=s, generated_at=GENERATED), lang)
    assert "<svg" not in html
    pdf = _render(tmp_path, s, lang, "short")
    assert _pages(pdf) == 1
    text = _text(pdf)
    assert statement in text
    assert ("不绘制图表" if lang == "zh" else "charts are not drawn") in text


def test_no_readings_at_all() -> None:
    html = report_html(ReportInput(summary=summary([]), generated_at=GENERATED), "en")
    assert "There are no readings in this period" in html


def test_unknown_language_refused(cgm_summary: PatientSummary) -> None:
    with pytest.raises(UnknownLanguage):
        report_html(ReportInput(summary=cgm_summary, generated_at=GENERATED), "fr")


def test_every_word_in_both_languages() -> None:
    from reports.report_text import TEXT

    for key, words in TEXT.items():
        assert set(words) == {"zh", "en"}, key
        assert all(words.values()), key
