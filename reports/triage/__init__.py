"""Population triage (TIDE extended beyond CGM): who of a doctor's patients needs her today.

* :mod:`reports.triage.rules` — the buckets in priority order, each rule in words (zh-CN,
  en), judged on the shared summaries of :mod:`reports.summaries`;
* :mod:`reports.triage.listing` — :func:`build_triage`: each patient once at its highest
  bucket with all its reasons, the change against the previous period, the separate data
  issues list (gateway offline, battery low, not measured, insufficient CGM wear), caps;
* :mod:`reports.triage.text` — the list as plain text for the hospital EMR;
* :mod:`reports.triage.loading` — the one impure part: reads the registry, the fleet tables
  and the reading store into :class:`PatientFacts`.

Rules and sources: ``docs/triage.md``.
"""

from reports.triage.listing import (
    DATA_ISSUE_LABELS,
    Changes,
    DataIssue,
    DataIssueEntry,
    DataIssueKind,
    DeviceFact,
    GatewayFact,
    PatientFacts,
    ReviewMark,
    TriageEntry,
    TriageList,
    build_triage,
    matches,
)
from reports.triage.rules import BUCKET_LABELS, Bucket, Reason
from reports.triage.text import triage_text

__all__ = [
    "BUCKET_LABELS",
    "DATA_ISSUE_LABELS",
    "Bucket",
    "Changes",
    "DataIssue",
    "DataIssueEntry",
    "DataIssueKind",
    "DeviceFact",
    "GatewayFact",
    "PatientFacts",
    "Reason",
    "ReviewMark",
    "TriageEntry",
    "TriageList",
    "build_triage",
    "matches",
    "triage_text",
]
