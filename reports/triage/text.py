"""The triage list as plain text, for pasting into the hospital EMR ("copy as text").

No markup of any kind: EMR text boxes show it literally. One line per patient, the
bucket's rule in words, every reason with its figure and unit, and the change against the
previous period with its sign.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from reports.triage.listing import (
    DATA_ISSUE_LABELS,
    Changes,
    DataIssue,
    TriageEntry,
    TriageList,
)
from reports.triage.rules import BUCKET_LABELS, Bucket, Reason

UNIT_WORDS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "events": "次",
        "readings": "次",
        "readings/day": "次/天",
        "pp": "个百分点",
        "days": "天",
        "h": "小时",
    },
    "en": {
        "events": "episodes",
        "readings": "readings",
        "readings/day": "readings/day",
        "pp": "percentage points",
        "days": "days",
        "h": "h",
    },
}

_WORDS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "title": "人群分诊",
        "period": "周期",
        "beyond": "另有 {n} 人未列出（超过上限）",
        "issues": "数据问题",
        "changes": "较上一周期",
        "tir": "TIR",
        "in_target": "指尖血糖达标率",
        "bp": "家庭血压",
        "reviewed": "今日已查看",
        "none": "无",
        "never": "从未测量",
        "sep": "；",
    },
    "en": {
        "title": "Population triage",
        "period": "Period",
        "beyond": "{n} more not listed (beyond the cap)",
        "issues": "Data issues",
        "changes": "vs previous period",
        "tir": "TIR",
        "in_target": "meter in target",
        "bp": "home BP",
        "reviewed": "reviewed today",
        "none": "none",
        "never": "never measured",
        "sep": "; ",
    },
}


def signed(value: float, unit: str) -> str:
    """``+3.2 mmHg`` / ``-15.0 pp`` / ``±0.0``: the sign always shown."""
    if value == 0:
        return f"±0.0 {unit}".rstrip()
    return f"{value:+.1f} {unit}".rstrip()


def _number(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def reason_text(reason: Reason, language: str) -> str:
    """``动态血糖：< 3.0 mmol/L 的时间 > 1 %: 2.5 %``."""
    unit = UNIT_WORDS[language].get(reason.unit, reason.unit)
    value = _number(reason.value)
    if reason.second is not None:
        value = f"{value}/{_number(reason.second)}"
    return f"{BUCKET_LABELS[reason.bucket][language]}: {value} {unit}"


def changes_text(changes: Changes, language: str) -> str:
    """The changes against the previous period, or the word for none."""
    words = _WORDS[language]
    unit = UNIT_WORDS[language]["pp"]
    parts = []
    if changes.tir_points is not None:
        parts.append(f"{words['tir']} {signed(changes.tir_points, unit)}")
    if changes.meter_in_target_points is not None:
        parts.append(f"{words['in_target']} {signed(changes.meter_in_target_points, unit)}")
    if changes.bp_systolic_mmhg is not None and changes.bp_diastolic_mmhg is not None:
        parts.append(
            f"{words['bp']} {signed(changes.bp_systolic_mmhg, '')}/"
            f"{signed(changes.bp_diastolic_mmhg, 'mmHg')}"
        )
    return words["sep"].join(parts) if parts else words["none"]


def issue_text(issue: DataIssue, language: str) -> str:
    """``家庭网关离线: 26.0 小时 (gw-0001)``."""
    label = DATA_ISSUE_LABELS[issue.kind][language]
    if issue.value is None and issue.unit == "days":
        label = f"{label}: {_WORDS[language]['never']}"
    elif issue.value is not None:
        unit = UNIT_WORDS[language].get(issue.unit or "", issue.unit or "")
        label = f"{label}: {_number(issue.value)} {unit}".rstrip()
    return f"{label} ({issue.subject})" if issue.subject else label


def _entry_line(entry: TriageEntry, language: str) -> str:
    words = _WORDS[language]
    name = entry.display_name or entry.patient_id
    reasons = words["sep"].join(reason_text(r, language) for r in entry.reasons)
    line = f"- {name} [{entry.patient_id}]"
    if reasons:
        line += f" {reasons}"
    line += f" ({words['changes']}: {changes_text(entry.changes, language)})"
    if entry.reviewed is not None:
        line += f" [{words['reviewed']}: {entry.reviewed.reviewed_by}]"
    return line


def triage_text(listing: TriageList, language: str, first: date, last: date) -> str:
    """The whole list as plain text in ``language`` (``zh-CN`` or ``en``)."""
    words = _WORDS[language]
    lines = [f"{words['title']} — {words['period']} {first.isoformat()} … {last.isoformat()}"]
    for bucket in Bucket:
        members = [e for e in listing.prioritised if e.bucket is bucket]
        if not members:
            continue
        lines.append("")
        lines.append(f"{BUCKET_LABELS[bucket][language]} ({listing.bucket_counts[bucket]})")
        lines.extend(_entry_line(entry, language) for entry in members)
    if listing.prioritised_beyond_cap:
        lines.append(words["beyond"].format(n=listing.prioritised_beyond_cap))
    if listing.data_issues:
        lines.append("")
        lines.append(f"{words['issues']} ({listing.data_issues_total})")
        for patient in listing.data_issues:
            issues = words["sep"].join(issue_text(i, language) for i in patient.issues)
            lines.append(
                f"- {patient.display_name or patient.patient_id} [{patient.patient_id}] {issues}"
            )
        if listing.data_issues_beyond_cap:
            lines.append(words["beyond"].format(n=listing.data_issues_beyond_cap))
    return "\n".join(lines) + "\n"
