"""G7 through the summaries module: one implementation of time in ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.model import FindingStatus
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from alerts.summary_adapter import cgm_summary_for_rules
from readings.files import PatientProfile
from readings.model import CgmGlucoseValues, Reading, new_reading

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
PROFILE = PatientProfile(patient_id="patient-0001", conditions=frozenset({"diabetes_type1"}))


def cgm_series(low_every: int) -> list[Reading]:
    """14 days at 5-minute intervals; every ``low_every``-th value at 3.5 mmol/L."""
    readings = []
    start = NOW - timedelta(days=14)
    for i in range(14 * 288):
        at = start + timedelta(minutes=5 * i)
        value = 3.5 if i % low_every == 0 else 6.5
        readings.append(
            new_reading(
                values=CgmGlucoseValues(glucose=value),
                source_unit="mmol/L",
                measured_at=at,
                received_at=at,
                device_id="DEXCOM-G7-000001",
                patient_id=PROFILE.patient_id,
                gateway_id="gw-0001",
                seq=i,
            )
        )
    return readings


def test_time_below_range_comes_from_the_summaries_module() -> None:
    summary = cgm_summary_for_rules(cgm_series(10), PROFILE, NOW)
    assert summary is not None
    assert round(summary.tbr_below_3_9_percent) == 10
    assert summary.tbr_below_3_0_percent == 0
    assert summary.wear_percent > 99


def test_g7_fires_above_4_percent_below_range_and_not_below() -> None:
    def g7(readings: list[Reading]) -> list[FindingStatus]:
        findings = evaluate(readings, PROFILE, default_rules(), NOW, summary=cgm_summary_for_rules)
        return [f.status for f in findings if f.rule_id == "G7"]

    assert g7(cgm_series(10)) == [FindingStatus.FIRING]  # 10 % below 3.9
    assert g7(cgm_series(50)) == [FindingStatus.CLEAR]  # 2 % below 3.9, TIR 98 %


def test_too_little_wear_gives_no_summary() -> None:
    assert cgm_summary_for_rules(cgm_series(10)[:2000], PROFILE, NOW) is None
