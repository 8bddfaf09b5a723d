"""Seeded readings for the report and export tests: a fortnight of a typical patient."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from readings.model import Reading
from reports.summaries import Period, Targets, summarise_patient
from reports.summaries.patient import PatientSummary
from tests.reports.builders import SHANGHAI, T0, bp, cgm, meter, spo2, weight

PERIOD = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), SHANGHAI)


def fortnight(*, with_cgm: bool = True, days: int = 14, seed: int = 13) -> list[Reading]:
    """CGM every 15 min (or four meter readings a day), BP morning and evening, weight."""
    rng = random.Random(seed)
    out: list[Reading] = []
    for day in range(days):
        base = T0 + timedelta(days=day)
        if with_cgm:
            for slot in range(96):
                minute = slot * 15
                value = 7.5 + 3.0 * math.sin((minute - 420) / 1440 * 2 * math.pi)
                out.append(
                    cgm(round(value + rng.gauss(0, 0.8), 1), base + timedelta(minutes=minute))
                )
        else:
            for hour, meal in (
                (7, "fasting"),
                (10, "postprandial"),
                (17, "preprandial"),
                (22, "bedtime"),
            ):
                value = 6.2 if meal == "fasting" else 8.4
                out.append(
                    meter(
                        round(value + rng.gauss(0, 1.0), 1), base + timedelta(hours=hour), meal=meal
                    )
                )
        out.append(bp(138 + rng.randint(-6, 6), 86 + rng.randint(-4, 4), base + timedelta(hours=7)))
        out.append(
            bp(132 + rng.randint(-6, 6), 82 + rng.randint(-4, 4), base + timedelta(hours=21))
        )
        out.append(weight(72.0 + day * 0.05, base + timedelta(hours=6, minutes=30)))
        out.append(spo2(97 + rng.randint(-1, 1), base + timedelta(hours=8)))
    return out


def summary(readings: list[Reading], patient: str = "p-1") -> PatientSummary:
    return summarise_patient(patient, readings, PERIOD, Targets())
