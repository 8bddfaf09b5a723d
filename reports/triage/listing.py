"""The triage list: each patient once at its highest bucket, data issues apart, capped.

:func:`build_triage` is pure: it gets one :class:`PatientFacts` per patient (the shared
summaries of this and the previous period, what the fleet knows of the patient's gateways
and devices, when the patient last measured, today's review mark) and returns a
:class:`TriageList`. Loading those facts is :mod:`reports.triage.loading`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from reports.summaries import Insufficient, PatientSummary, Sufficient
from reports.triage.rules import Bucket, Reason, has_data, home_mean, reasons_of

PRIORITISED_CAP: Final = 100
"""patients. A doctor reads about a hundred rows in a sitting (Tidepool's TIDE view and
the issue's "≈ 100 prioritised"); the count beyond it is stated, never silently dropped."""
DATA_ISSUES_CAP: Final = 50
"""patients. The data-issues list is for the nurse's phone calls of the day (≈ 50)."""
NOT_MEASURED_DAYS: Final = 3
"""days. No reading of any kind for 3 days: the cuff "not used for three days" that the
family portal warns about, and a missed routine of twice-daily BP or daily weight."""
BATTERY_LOW_PERCENT: Final = 20
"""%. A device reporting this or less is flagged even before the gateway's own
``battery_low`` event (the gateway's default low mark is also 20 %)."""


class DataIssueKind(StrEnum):
    """Why the numbers of a patient cannot be trusted or are missing, most urgent first."""

    NOT_MEASURED = "not_measured"
    GATEWAY_OFFLINE = "gateway_offline"
    CGM_WEAR_LOW = "cgm_wear_low"
    BATTERY_LOW = "battery_low"


DATA_ISSUE_LABELS: Final[dict[DataIssueKind, dict[str, str]]] = {
    DataIssueKind.NOT_MEASURED: {
        "zh-CN": f"{NOT_MEASURED_DAYS} 天及以上未测量",
        "en": f"Not measured for {NOT_MEASURED_DAYS} days or more",
    },
    DataIssueKind.GATEWAY_OFFLINE: {"zh-CN": "家庭网关离线", "en": "Home gateway offline"},
    DataIssueKind.CGM_WEAR_LOW: {
        "zh-CN": "动态血糖佩戴不足（< 14 天或 < 70 % 的时间）",
        "en": "Insufficient CGM wear (< 14 days or < 70 % of the time)",
    },
    DataIssueKind.BATTERY_LOW: {
        "zh-CN": f"设备电量低（≤ {BATTERY_LOW_PERCENT} %）",
        "en": f"Device battery low (≤ {BATTERY_LOW_PERCENT} %)",
    },
}


@dataclass(frozen=True, slots=True)
class GatewayFact:
    """What the fleet knows of one of the patient's gateways."""

    gateway_id: str
    state: str
    """``online``, ``offline`` or ``unknown`` (never heard from)."""
    since: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceFact:
    """What the fleet knows of one of the patient's devices' batteries."""

    device_id: str
    battery_percent: int | None
    battery_low: bool
    """The gateway sent a ``battery_low`` event not followed by a replacement."""


@dataclass(frozen=True, slots=True)
class ReviewMark:
    """The doctor marked the patient reviewed today (the list sinks the patient)."""

    reviewed_by: str
    reviewed_at: datetime


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """Everything the triage judges about one patient."""

    patient_id: str
    display_name: str | None
    conditions: frozenset[str]
    community: str | None
    village: str | None
    teams: frozenset[str]
    current: PatientSummary
    previous: PatientSummary | None
    last_measured: datetime | None
    """The newest reading of any kind, whenever it was (``None``: never)."""
    gateways: tuple[GatewayFact, ...] = ()
    devices: tuple[DeviceFact, ...] = ()
    reviewed: ReviewMark | None = None
    status: str = "active"
    """The care model's monitoring status; anything else (hospitalised, transferred …)
    pauses triage as it pauses alerts: a patient in hospital is not "not measured"."""


@dataclass(frozen=True, slots=True)
class Changes:
    """This period minus the previous one; ``None`` where either side has no figure."""

    tir_points: float | None
    """CGM time in range, percentage points."""
    meter_in_target_points: float | None
    """Meter readings in target, percentage points."""
    bp_systolic_mmhg: float | None
    bp_diastolic_mmhg: float | None
    """7-day home BP mean, mmHg."""


@dataclass(frozen=True, slots=True)
class TriageEntry:
    """A patient of the prioritised list."""

    patient_id: str
    display_name: str | None
    conditions: frozenset[str]
    community: str | None
    village: str | None
    bucket: Bucket
    reasons: tuple[Reason, ...]
    changes: Changes
    reviewed: ReviewMark | None


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One problem with a patient's data: what, how big, about which gateway or device."""

    kind: DataIssueKind
    value: float | None
    unit: str | None
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class DataIssueEntry:
    """A patient of the data-issues list, with every issue found."""

    patient_id: str
    display_name: str | None
    issues: tuple[DataIssue, ...]


@dataclass(frozen=True, slots=True)
class TriageList:
    """The capped lists, with the counts before the caps."""

    prioritised: tuple[TriageEntry, ...]
    data_issues: tuple[DataIssueEntry, ...]
    bucket_counts: dict[Bucket, int]
    """Patients per bucket over the whole population (before the cap)."""
    prioritised_total: int
    data_issues_total: int
    paused_total: int = 0
    """Patients left out because their monitoring is paused (status not ``active``)."""

    @property
    def prioritised_beyond_cap(self) -> int:
        """Patients judged but not listed because of the cap."""
        return self.prioritised_total - len(self.prioritised)

    @property
    def data_issues_beyond_cap(self) -> int:
        """Patients with data issues not listed because of the cap."""
        return self.data_issues_total - len(self.data_issues)


def _tir_target(summary: PatientSummary | None) -> float | None:
    if summary is None or summary.cgm is None:
        return None
    figure = summary.cgm.time_in_ranges_percent
    return figure.value.target if isinstance(figure, Sufficient) else None


def _meter_in_target(summary: PatientSummary | None) -> float | None:
    if summary is None or summary.meter is None:
        return None
    figure = summary.meter.in_target_percent
    return figure.value if isinstance(figure, Sufficient) else None


def _delta(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else round(now - before, 1)


def changes_of(current: PatientSummary, previous: PatientSummary | None) -> Changes:
    """The change of each headline figure against the previous period."""
    mean_now, mean_before = home_mean(current), home_mean(previous)
    return Changes(
        tir_points=_delta(_tir_target(current), _tir_target(previous)),
        meter_in_target_points=_delta(_meter_in_target(current), _meter_in_target(previous)),
        bp_systolic_mmhg=_delta(
            mean_now.systolic if mean_now else None, mean_before.systolic if mean_before else None
        ),
        bp_diastolic_mmhg=_delta(
            mean_now.diastolic if mean_now else None,
            mean_before.diastolic if mean_before else None,
        ),
    )


def data_issues_of(facts: PatientFacts, now: datetime) -> tuple[DataIssue, ...]:
    """Every data issue of one patient, most urgent kind first."""
    found = []
    if facts.last_measured is None:
        found.append(DataIssue(DataIssueKind.NOT_MEASURED, None, "days"))
    else:
        days = (now - facts.last_measured).total_seconds() / 86_400.0
        if days >= NOT_MEASURED_DAYS:
            found.append(DataIssue(DataIssueKind.NOT_MEASURED, float(int(days)), "days"))
    for gateway in facts.gateways:
        if gateway.state == "offline":
            hours = (
                None
                if gateway.since is None
                else round((now - gateway.since).total_seconds() / 3600.0, 1)
            )
            found.append(DataIssue(DataIssueKind.GATEWAY_OFFLINE, hours, "h", gateway.gateway_id))
    cgm = facts.current.cgm
    if cgm is not None and isinstance(cgm.time_in_ranges_percent, Insufficient):
        found.append(DataIssue(DataIssueKind.CGM_WEAR_LOW, round(cgm.active_percent, 1), "%"))
    for device in facts.devices:
        low = device.battery_low or (
            device.battery_percent is not None and device.battery_percent <= BATTERY_LOW_PERCENT
        )
        if low:
            value = None if device.battery_percent is None else float(device.battery_percent)
            found.append(DataIssue(DataIssueKind.BATTERY_LOW, value, "%", device.device_id))
    return tuple(sorted(found, key=lambda issue: list(DataIssueKind).index(issue.kind)))


def _severity(reason: Reason) -> float:
    """Larger is worse, within one bucket (a drop and a sparse meter count downwards)."""
    if reason.bucket in (Bucket.TIR_DROP, Bucket.METER_SPARSE, Bucket.METER_OUT_OF_TARGET):
        return -reason.value
    return reason.value


def judge(facts: PatientFacts) -> TriageEntry | None:
    """The patient's entry at its highest bucket, or ``None`` with no data to judge."""
    if not has_data(facts.current):
        return None
    reasons = reasons_of(facts.current, facts.previous, facts.conditions)
    return TriageEntry(
        patient_id=facts.patient_id,
        display_name=facts.display_name,
        conditions=facts.conditions,
        community=facts.community,
        village=facts.village,
        bucket=reasons[0].bucket if reasons else Bucket.MEETING_TARGETS,
        reasons=reasons,
        changes=changes_of(facts.current, facts.previous),
        reviewed=facts.reviewed,
    )


def matches(
    facts: PatientFacts, *, team: str | None, tag: str | None, condition: str | None
) -> bool:
    """The page's filters: team code, community or village tag, condition."""
    return (
        (team is None or team in facts.teams)
        and (tag is None or tag in (facts.community, facts.village))
        and (condition is None or condition in facts.conditions)
    )


def build_triage(
    patients: Iterable[PatientFacts],
    now: datetime,
    *,
    prioritised_cap: int = PRIORITISED_CAP,
    data_issues_cap: int = DATA_ISSUES_CAP,
) -> TriageList:
    """The triage list of ``patients`` at ``now``.

    Patients whose monitoring is paused are left out (counted in ``paused_total``).
    Order: patients not reviewed today first; then bucket priority; then the worst figure of
    the bucket's rule; then name and id (stable for equal figures).
    """
    entries: list[TriageEntry] = []
    issues: list[tuple[DataIssueEntry, int, float]] = []
    paused = 0
    for facts in patients:
        if facts.status != "active":
            paused += 1
            continue
        entry = judge(facts)
        if entry is not None:
            entries.append(entry)
        found = data_issues_of(facts, now)
        if found:
            first = found[0]
            rank = list(DataIssueKind).index(first.kind)
            issues.append(
                (
                    DataIssueEntry(facts.patient_id, facts.display_name, found),
                    rank,
                    -(first.value if first.value is not None else float("inf")),
                )
            )
    entries.sort(
        key=lambda e: (
            e.reviewed is not None,
            e.bucket.priority,
            -_severity(e.reasons[0]) if e.reasons else 0.0,
            e.display_name or "",
            e.patient_id,
        )
    )
    issues.sort(key=lambda item: (item[1], item[2], item[0].patient_id))
    counts = dict.fromkeys(Bucket, 0)
    for entry in entries:
        counts[entry.bucket] += 1
    return TriageList(
        prioritised=tuple(entries[:prioritised_cap]),
        data_issues=tuple(item[0] for item in issues[:data_issues_cap]),
        bucket_counts=counts,
        prioritised_total=len(entries),
        data_issues_total=len(issues),
        paused_total=paused,
    )
