"""Alerts benchmark, part A: the backtest of a synthetic cohort and its alert burden.

Run from the repository root::

    python bench/alerts.py                         # 1,000 patients x 90 days
    python bench/alerts.py --patients 100 --days 30   # a quick run

**Cohort** (seeded, :func:`make_cohort`): each patient gets conditions independently —
type 2 diabetes on a meter (4 readings a day around meals, 1 in 6 meters in mg/dL, some lows
with a re-test 10–15 min later as the patient is told, a high-prone subset), type 1 on a
5-min CGM (a small subset: 288 readings a day each), hypertension (2 home readings a day with
pulse, a quarter with a home mean above 135/85, rare crises), heart failure (a daily weight
with an occasional gain of ~0.8 kg a day for three days) and COPD (SpO₂ spot checks twice a
day around 92 %, occasional dips). Time zone Asia/Shanghai.

**Measured**: :func:`alerts.backtest.run_backtest` with the default rules, in this process
(wall time, CPU time, peak RSS). Its findings also go, evaluation by evaluation, through the
real lifecycle (:func:`alerts.lifecycle.decide`, kept in memory as the registry would keep
it) to count what inhibition muted; nobody acknowledges in a backtest, so the acknowledged-G1
mute never applies here. The **raw baseline** is the naive rule: one pass over the same
readings testing each against each rule's threshold (:func:`naive_counts`), the "fire on every
out-of-range reading" system the burden table compares against.

**Alert-burden table**: per rule, alerts per patient-week from the backtest, notifications per
patient-week after the lifecycle (inhibition, repeat interval), and the naive count.
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.backtest import BacktestResult, run_backtest
from alerts.lifecycle import AlertState, OpenAlert, TransitionKind, decide
from alerts.model import Finding
from alerts.rules.common import condition_holds, field_value, kind_of
from alerts.rules.loader import default_rules
from alerts.rules.model import RuleSet
from alerts.rules.overrides import active_rules
from alerts.rules.thresholds import tier_matches
from readings.files import PatientProfile
from readings.model import (
    BloodPressureValues,
    CgmGlucoseValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit, to_canonical

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, tzinfo=ZONE).astimezone(UTC)
MINUTE = timedelta(minutes=1)

# Condition mix (independent draws; a patient with none is given hypertension, the
# commonest condition in the family-doctor programme).
P_T2 = 0.45
P_T1_CGM = 0.03
P_HTN = 0.45
P_HF = 0.10
P_COPD = 0.10


@dataclass
class _Devices:
    patient: str
    gateway: str
    seq: Counter[str] = field(default_factory=Counter)
    out: list[Reading] = field(default_factory=list)

    def add(self, device: str, values: Values, unit: str, at: datetime) -> None:
        device_id = f"acme-{device}-{self.patient}"
        self.seq[device_id] += 1
        self.out.append(
            new_reading(
                values=values,
                source_unit=unit,
                measured_at=at,
                received_at=at,
                device_id=device_id,
                patient_id=self.patient,
                gateway_id=self.gateway,
                seq=self.seq[device_id],
            )
        )


def _local(day: int, hour: float, rng: random.Random, jitter_min: float = 20) -> datetime:
    return START + timedelta(days=day, hours=hour, minutes=rng.uniform(-jitter_min, jitter_min))


def _meter(dev: _Devices, rng: random.Random, days: int) -> None:
    unit = Unit.MG_PER_DL if rng.random() < 1 / 6 else Unit.MMOL_PER_L
    high_prone = rng.random() < 0.2
    mean = rng.gauss(12.0 if high_prone else 8.0, 1.2)
    p_low = rng.choice((0.0, 0.005, 0.01, 0.03))
    for day in range(days):
        for hour in (7.0, 11.5, 17.5, 21.5):
            at = _local(day, hour, rng)
            if rng.random() < p_low:
                value = rng.uniform(2.4, 3.8)
            else:
                value = max(3.9, rng.gauss(mean, 2.2 if high_prone else 1.6))
            _glucose(dev, value, unit, at)
            if value < 3.9 and rng.random() < 0.7:  # told to re-test in 15 min after sugar
                _glucose(dev, rng.uniform(3.6, 6.0), unit, at + rng.uniform(10, 15) * MINUTE)
            elif value >= 16.7 and rng.random() < 0.5:  # G3 asks for a re-test within 1 h
                _glucose(dev, value + rng.gauss(-1.0, 1.5), unit, at + rng.uniform(60, 90) * MINUTE)


def _glucose(dev: _Devices, value: float, unit: str, at: datetime) -> None:
    shown = round(value * 18.016) if unit == Unit.MG_PER_DL else round(value, 1)
    dev.add("meter", GlucoseValues(glucose=to_canonical(shown, unit)), unit, at)


def _cgm(dev: _Devices, rng: random.Random, days: int) -> None:
    level = 8.0
    start = START + timedelta(minutes=rng.uniform(0, 5))
    dip = 0  # remaining 5-min steps of a nocturnal dip
    for step in range(days * 288):
        at = start + step * 5 * MINUTE
        hour = (at.astimezone(ZONE).hour + at.minute / 60) % 24
        target = 7.5 + 3.0 * max(0.0, _meal_bump(hour))
        if dip == 0 and rng.random() < 1 / 600:  # ~ one low episode every two days
            dip = rng.randint(6, 18)
        if dip:
            target = 3.0
            dip -= 1
        level += 0.25 * (target - level) + rng.gauss(0, 0.25)
        level = min(max(level, 2.3), 22.0)
        dev.add("cgm", CgmGlucoseValues(glucose=round(level, 1)), Unit.MMOL_PER_L, at)


def _meal_bump(hour: float) -> float:
    return max(1 - abs(hour - h) / 2 for h in (8.5, 13.0, 19.0))


def _bp(dev: _Devices, rng: random.Random, days: int) -> None:
    high = rng.random() < 0.25
    sys_mean = rng.gauss(146 if high else 126, 6)
    dia_mean = rng.gauss(90 if high else 78, 4)
    pulse_mean = rng.gauss(72, 8)
    for day in range(days):
        for hour in (7.0, 20.0):
            if rng.random() < 0.08:  # a missed measurement
                continue
            at = _local(day, hour, rng)
            if rng.random() < 0.002:  # a crisis, re-measured a minute later
                pair = [(rng.uniform(180, 200), rng.uniform(100, 120))] * 2
            else:
                pair = [(rng.gauss(sys_mean, 9), rng.gauss(dia_mean, 6))]
            for i, (s, d) in enumerate(pair):
                values = BloodPressureValues(
                    systolic=round(s), diastolic=round(d), pulse=round(rng.gauss(pulse_mean, 7))
                )
                dev.add("cuff", values, Unit.MMHG, at + i * MINUTE)


def _weight(dev: _Devices, rng: random.Random, days: int) -> None:
    weight = rng.uniform(55, 90)
    gain = 0
    for day in range(days):
        if gain == 0 and rng.random() < 0.01:
            gain = 3
        if gain:
            weight += rng.gauss(0.8, 0.2)
            gain -= 1
        else:
            weight += rng.gauss(-0.02, 0.3)
        if rng.random() < 0.1:  # a day without weighing
            continue
        dev.add("scale", WeightValues(weight=round(weight, 1)), Unit.KG, _local(day, 7.0, rng))


def _spo2(dev: _Devices, rng: random.Random, days: int) -> None:
    mean = rng.gauss(92.5, 1.5)
    for day in range(days):
        for hour in (8.0, 19.0):
            at = _local(day, hour, rng, 40)
            value = rng.gauss(mean, 1.5) if rng.random() > 0.01 else rng.uniform(82, 87)
            values = Spo2Values(spo2=round(min(value, 99)), pulse=round(rng.gauss(78, 8)))
            dev.add("oximeter", values, Unit.PERCENT, at)


def make_cohort(
    patients: int, days: int, seed: int, p_cgm: float = P_T1_CGM
) -> tuple[list[Reading], list[PatientProfile]]:
    """The synthetic cohort: readings of every patient and their profiles (see the module).

    ``p_cgm`` is the share of type 1 patients on a CGM (0 or 1 to measure a stratum alone).
    """
    rng = random.Random(seed)
    readings: list[Reading] = []
    profiles: list[PatientProfile] = []
    for index in range(patients):
        conditions = set()
        if rng.random() < p_cgm:
            conditions.add("diabetes_type1")
        elif rng.random() < P_T2:
            conditions.add("diabetes_type2")
        if rng.random() < P_HTN:
            conditions.add("hypertension")
        if rng.random() < P_HF:
            conditions.add("heart_failure")
        if rng.random() < P_COPD:
            conditions.add("copd")
        if not conditions:
            conditions.add("hypertension")
        dev = _Devices(f"p{index:05d}", f"gw{index:05d}")
        if "diabetes_type1" in conditions:
            _cgm(dev, rng, days)
        if "diabetes_type2" in conditions:
            _meter(dev, rng, days)
        if "hypertension" in conditions or "heart_failure" in conditions:
            _bp(dev, rng, days)
        if "heart_failure" in conditions:
            _weight(dev, rng, days)
        if "copd" in conditions:
            _spo2(dev, rng, days)
        readings.extend(dev.out)
        profiles.append(PatientProfile(dev.patient, frozenset(conditions), time_zone=ZONE))
    return readings, profiles


def naive_counts(
    readings: Sequence[Reading], profiles: Sequence[PatientProfile], rules: RuleSet
) -> Counter[str]:
    """Per rule, the readings beyond its threshold: what firing on every one would send.

    Threshold rules: any tier matches. B2: a single reading at or above 135/85 (instead of
    the 7-day mean). H1: a weight more than the threshold above the patient's weight the
    given time earlier (nearest earlier reading). Forecast, summary and stale-data rules
    have no per-reading threshold and are not counted.
    """
    counts: Counter[str] = Counter()
    conditions = {p.patient_id: p.conditions for p in profiles}
    by_patient: dict[str, list[Reading]] = {}
    for reading in readings:
        by_patient.setdefault(reading.patient_id, []).append(reading)
    rule_sets = {c: active_rules(rules, c) for c in set(conditions.values())}
    for patient, mine in by_patient.items():
        mine.sort(key=lambda r: r.measured_at)
        weights = [r for r in mine if kind_of(r).value == "weight"]
        weight_times = [r.measured_at for r in weights]
        for rule in rule_sets[conditions[patient]]:
            relevant = [r for r in mine if kind_of(r) in rule.kinds]
            if rule.kind == "threshold":
                counts[rule.id] += sum(
                    any(tier_matches(t, r) for t in rule.tiers)
                    and not rule.exclude_flags.intersection(r.flags)
                    for r in relevant
                )
            elif rule.kind == "window_mean":
                counts[rule.id] += sum(
                    any(condition_holds(r, c) for c in rule.conditions) for r in relevant
                )
            elif rule.kind == "weight_change":
                for reading in weights:
                    for change in rule.changes:
                        at = bisect.bisect_right(weight_times, reading.measured_at - change.over)
                        if at == 0:
                            continue
                        before = field_value(weights[at - 1], ("weight",))
                        now = field_value(reading, ("weight",))
                        assert before is not None
                        assert now is not None
                        threshold = change.bound.by_unit[change.bound.canonical.value]
                        if change.bound.op.holds(now[1] - before[1], threshold):
                            counts[rule.id] += 1
                            break
    return counts


class LifecycleFold:
    """The real :func:`decide` over the backtest's findings, open alerts kept in memory."""

    def __init__(self) -> None:
        self.open: dict[str, dict[str, OpenAlert]] = {}
        self.fired: Counter[str] = Counter()
        self.notified: Counter[str] = Counter()
        self.muted: Counter[str] = Counter()
        self._ids = 0

    def __call__(self, patient_id: str, now: datetime, findings: list[Finding]) -> None:
        current = self.open.setdefault(patient_id, {})
        decision = decide(patient_id, findings, list(current.values()), now=now)
        for t in decision.transitions:
            alert = current.get(t.rule_id)
            if t.kind in (TransitionKind.FIRE, TransitionKind.UPGRADE, TransitionKind.RENOTIFY):
                if t.kind is TransitionKind.FIRE:
                    self.fired[t.rule_id] += 1
                if t.notify:
                    self.notified[t.rule_id] += 1
                elif t.muted_by is not None and t.kind is TransitionKind.FIRE:
                    self.muted[t.rule_id] += 1
            if t.to_state is AlertState.RESOLVED:
                current.pop(t.rule_id, None)
            elif t.to_state is not None and t.finding is not None:
                notified = now if t.notify else None
                if alert is None:
                    self._ids += 1
                    current[t.rule_id] = OpenAlert(
                        alert_id=str(self._ids),
                        patient_id=patient_id,
                        rule_id=t.rule_id,
                        metric=t.finding.metric,
                        severity=t.finding.severity,
                        state=t.to_state,
                        opened_at=now,
                        last_notified_at=notified,
                    )
                else:
                    current[t.rule_id] = replace(
                        alert,
                        state=t.to_state,
                        severity=min(alert.severity, t.finding.severity, key=lambda s: s.rank),
                        last_notified_at=notified or alert.last_notified_at,
                    )


def _rusage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def run(patients: int, days: int, seed: int, profile: bool, p_cgm: float) -> dict[str, Any]:
    """Generate, run the naive baseline and the backtest; return every figure."""
    rules = default_rules()
    t0 = time.perf_counter()
    readings, profiles = make_cohort(patients, days, seed, p_cgm)
    generated = time.perf_counter() - t0
    _, rss_before = _rusage()

    t0, c0 = time.perf_counter(), time.process_time()
    naive = naive_counts(readings, profiles, rules)
    naive_wall = time.perf_counter() - t0
    naive_cpu = time.process_time() - c0

    lifecycle = LifecycleFold()
    cpu0, _ = _rusage()
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(run_backtest, readings, profiles, rules, on_findings=lifecycle)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    else:
        result = run_backtest(readings, profiles, rules, on_findings=lifecycle)
    wall = time.perf_counter() - t0
    cpu1, rss_after = _rusage()
    return {
        "patients": patients,
        "days": days,
        "readings": len(readings),
        "conditions": Counter(c for p in profiles for c in p.conditions),
        "generate_s": generated,
        "naive_s": naive_wall,
        "naive_cpu_s": naive_cpu,
        "backtest_s": wall,
        "backtest_cpu_s": cpu1 - cpu0,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": rss_after / 1024,
        "result": result,
        "naive": naive,
        "lifecycle": lifecycle,
        "rules": rules,
    }


def report(f: dict[str, Any]) -> None:
    """Print the figures and the burden table as Markdown."""
    result: BacktestResult = f["result"]
    life: LifecycleFold = f["lifecycle"]
    weeks = result.patient_weeks
    per_rule = result.per_rule()
    print(f"\nmachine: {platform.machine()} nproc={os.cpu_count()} load={os.getloadavg()}")
    print(f"python {platform.python_version()}")
    print(f"cohort: {f['patients']} patients x {f['days']} days, {f['readings']:,} readings")
    print(f"conditions: {dict(f['conditions'])}")
    print(f"generate {f['generate_s']:.1f} s")
    print(
        f"| backtest | {f['backtest_s']:.1f} s wall | {f['backtest_cpu_s']:.1f} s CPU | "
        f"{result.evaluations:,} evaluations | "
        f"{1000 * f['backtest_cpu_s'] / max(result.evaluations, 1):.3f} ms CPU/evaluation | "
        f"{1e6 * f['backtest_cpu_s'] / max(f['readings'], 1):.0f} µs CPU/reading |"
    )
    print(
        f"| naive baseline | {f['naive_s']:.2f} s wall | {f['naive_cpu_s']:.2f} s CPU | "
        f"{1e6 * f['naive_cpu_s'] / max(f['readings'], 1):.1f} µs CPU/reading | "
        f"CPU ratio backtest/naive {f['backtest_cpu_s'] / max(f['naive_cpu_s'], 1e-9):.0f} |"
    )
    print(f"peak RSS {f['rss_peak_mib']:.0f} MiB (after generating: {f['rss_before_mib']:.0f} MiB)")
    print(f"patient-weeks {weeks:.1f}")
    print(
        "\n| rule | alerts (backtest) | per patient-week | unconfirmed | fired (lifecycle) | "
        "muted by inhibition | notifications incl. repeats | naive: readings beyond "
        "threshold | naive per patient-week | naive / alerts |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals = Counter[str]()
    for rule in f["rules"].rules:
        stats = per_rule[rule.id]
        alerts = int(stats["alerts"])
        naive = f["naive"].get(rule.id)
        ratio = "–" if naive is None or not alerts else f"{naive / alerts:.1f}"
        totals.update(
            alerts=alerts,
            naive=naive or 0,
            notified=life.notified[rule.id],
            muted=life.muted[rule.id],
            fired=life.fired[rule.id],
        )
        print(
            f"| {rule.id} | {alerts} | {stats['per_patient_week']:.4f} | {stats['unconfirmed']} | "
            f"{life.fired[rule.id]} | {life.muted[rule.id]} | {life.notified[rule.id]} | "
            f"{'–' if naive is None else naive} | "
            f"{'–' if naive is None else f'{naive / weeks:.4f}'} | {ratio} |"
        )
    print(
        f"| all | {totals['alerts']} | {totals['alerts'] / weeks:.4f} | | {totals['fired']} | "
        f"{totals['muted']} | {totals['notified']} | {totals['naive']} | "
        f"{totals['naive'] / weeks:.4f} | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument(
        "--p-cgm", type=float, default=P_T1_CGM, help="share of type 1 patients on a CGM"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the backtest")
    args = parser.parse_args()
    report(run(args.patients, args.days, args.seed, args.profile, args.p_cgm))


if __name__ == "__main__":
    main()
