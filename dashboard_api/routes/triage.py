"""``/api/v1/triage``: the caller's population triage, "mark reviewed" and its undo.

* ``GET /triage`` — the caller's patients whose relationship allows ``review_triage`` (a
  doctor: her team's contracted patients), judged by :mod:`reports.triage` on the shared
  summaries; filters by team, tag (community or village) and condition; the plain-text
  copy for the hospital EMR in ``text``. Every view is audited with every patient id judged.
* ``GET /triage.txt`` — the same list as ``text/plain`` (copy as text).
* ``POST /triage/{patient_id}/reviewed`` / ``DELETE`` — mark reviewed today, undo today
  (the next local day an undo answers 409). Through the one patient gate; the change and
  its own audit row are one transaction.

Query strings carry filters and a period length only, never PHI.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dashboard_api.authz import Action, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import CallerDep, ContextDep, PatientGrant, patient_access, route_template
from dashboard_api.schemas import ErrorBody
from ingest.stores.base import StoreError
from registry.access import related_facts
from registry.audit import AuditOutcome, record_audit
from registry.care_models import Condition
from registry.errors import NotFound
from registry.models import DEFAULT_PATIENT_TIME_ZONE, Patient
from registry.triage import ReviewRecord, ReviewUndoExpired, TriageReviewRepository
from reports.triage import (
    BUCKET_LABELS,
    DATA_ISSUE_LABELS,
    Bucket,
    DataIssueKind,
    PatientFacts,
    TriageList,
    build_triage,
    matches,
    triage_text,
)
from reports.triage.loading import load_triage_facts, periods

router = APIRouter(prefix=f"{API_PREFIX}/triage", tags=["triage"])

DEFAULT_PERIOD_DAYS: Final = 14
"""days. The consensus reporting period; the previous period is as long, just before it."""
MIN_PERIOD_DAYS: Final = 14
"""days. The CGM figures need 14 days (Battelino 2019): a shorter triage window would put
every CGM user on the data-issues list instead of in a bucket."""
MAX_PERIOD_DAYS: Final = 28
"""days. Two periods of 28 days are 8 weeks of readings per patient, the most a list of
300 patients loads in about a second."""

Language = Literal["zh-CN", "en"]
PeriodDays = Annotated[int, Query(ge=MIN_PERIOD_DAYS, le=MAX_PERIOD_DAYS)]
Team = Annotated[str | None, Query(max_length=64, description="care team code")]
Tag = Annotated[str | None, Query(max_length=100, description="community or village")]

_CONFLICT: Final[dict[int | str, dict[str, object]]] = {
    409: {"model": ErrorBody, "description": "Nothing to undo today (or the review is older)"}
}


class BucketPublic(BaseModel):
    """A bucket: its place in the order, its rule in words, how many patients it has."""

    id: str
    priority: int
    label: dict[str, str]
    count: int


class ReasonPublic(BaseModel):
    """A rule that applies, with the figure that made it apply."""

    bucket: str
    value: float
    unit: str
    second: float | None


class ChangesPublic(BaseModel):
    """This period minus the previous one."""

    tir_points: float | None
    meter_in_target_points: float | None
    bp_systolic_mmhg: float | None
    bp_diastolic_mmhg: float | None


class ReviewPublic(BaseModel):
    """A "mark reviewed" of a patient."""

    patient_id: str
    review_day: date
    period_first: date
    period_last: date
    reviewed_by: str
    reviewed_at: datetime
    undone_at: datetime | None
    undone_by: str | None


class EntryPublic(BaseModel):
    """A patient of the prioritised list."""

    patient_id: str
    display_name: str | None
    conditions: list[str]
    community: str | None
    village: str | None
    bucket: str
    reasons: list[ReasonPublic]
    changes: ChangesPublic
    reviewed_by: str | None
    reviewed_at: datetime | None


class IssuePublic(BaseModel):
    """One data issue."""

    kind: str
    value: float | None
    unit: str | None
    subject: str | None


class IssueEntryPublic(BaseModel):
    """A patient of the data-issues list."""

    patient_id: str
    display_name: str | None
    issues: list[IssuePublic]


class FilterChoices(BaseModel):
    """What the filters can be set to, from the caller's patients before filtering."""

    teams: list[str]
    tags: list[str]
    conditions: list[str]


class TriagePublic(BaseModel):
    """The caller's triage view."""

    period_first: date
    period_last: date
    previous_first: date
    previous_last: date
    period_days: int
    generated_at: datetime
    buckets: list[BucketPublic]
    data_issue_labels: dict[str, dict[str, str]]
    prioritised: list[EntryPublic]
    prioritised_total: int
    prioritised_beyond_cap: int
    data_issues: list[IssueEntryPublic]
    data_issues_total: int
    data_issues_beyond_cap: int
    paused_total: int
    """Patients left out: monitoring paused (hospitalised, transferred …)."""
    choices: FilterChoices
    text: str
    """The list as plain text in the requested language, for the hospital EMR."""


class ReviewBody(BaseModel):
    """Which period the doctor looked at (the period of the triage view)."""

    period_days: int = Field(default=DEFAULT_PERIOD_DAYS, ge=MIN_PERIOD_DAYS, le=MAX_PERIOD_DAYS)


def _public_review(record: ReviewRecord) -> ReviewPublic:
    return ReviewPublic(
        patient_id=record.patient_id,
        review_day=record.review_day,
        period_first=record.period_first,
        period_last=record.period_last,
        reviewed_by=record.reviewed_by,
        reviewed_at=record.reviewed_at,
        undone_at=record.undone_at,
        undone_by=record.undone_by,
    )


def _listing(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    *,
    team: str | None,
    tag: str | None,
    condition: Condition | None,
    period_days: int,
    lang: Language,
) -> TriagePublic:
    now = context.clock()
    with context.read() as session:
        related = related_facts(session, caller.actor, now)
        teams = {
            pid: facts.team_codes
            for pid, facts in related.items()
            if decide(facts, Action.REVIEW_TRIAGE).basis is not None
        }
        reviews = TriageReviewRepository(session, clock=context.clock).reviewed_today(teams)
        try:
            everyone = load_triage_facts(
                session,
                context.store,
                sorted(teams),
                teams=teams,
                reviews=reviews,
                period_days=period_days,
                now=now,
            )
        except StoreError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="reading store unavailable"
            ) from exc
    chosen = [
        f
        for f in everyone
        if matches(f, team=team, tag=tag, condition=condition.value if condition else None)
    ]
    listing = build_triage(chosen, now)
    template = route_template(request)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=sorted(f.patient_id for f in chosen),
        detail={"status": 200, "count": len(chosen), "period_days": period_days},
    )
    return _public(listing, everyone, now, period_days, lang)


def _choices(everyone: list[PatientFacts]) -> FilterChoices:
    return FilterChoices(
        teams=sorted({code for f in everyone for code in f.teams}),
        tags=sorted({tag for f in everyone for tag in (f.community, f.village) if tag}),
        conditions=sorted({c for f in everyone for c in f.conditions}),
    )


def _public(
    listing: TriageList,
    everyone: list[PatientFacts],
    now: datetime,
    period_days: int,
    lang: Language,
) -> TriagePublic:
    # Each patient's periods are local days in the patient's own zone; the heading names
    # them in the deployment's default zone (Beijing time), where nearly all patients live.
    zone = ZoneInfo(DEFAULT_PATIENT_TIME_ZONE)
    current, previous = periods(now.astimezone(zone).date(), period_days, zone)
    first, last = current.start.date(), current.end.date() - timedelta(days=1)
    return TriagePublic(
        period_first=first,
        period_last=last,
        previous_first=previous.start.date(),
        previous_last=previous.end.date() - timedelta(days=1),
        period_days=period_days,
        generated_at=now,
        buckets=[
            BucketPublic(
                id=bucket.value,
                priority=bucket.priority,
                label=BUCKET_LABELS[bucket],
                count=listing.bucket_counts[bucket],
            )
            for bucket in Bucket
        ],
        data_issue_labels={kind.value: DATA_ISSUE_LABELS[kind] for kind in DataIssueKind},
        prioritised=[
            EntryPublic(
                patient_id=e.patient_id,
                display_name=e.display_name,
                conditions=sorted(e.conditions),
                community=e.community,
                village=e.village,
                bucket=e.bucket.value,
                reasons=[
                    ReasonPublic(bucket=r.bucket.value, value=r.value, unit=r.unit, second=r.second)
                    for r in e.reasons
                ],
                changes=ChangesPublic(**asdict(e.changes)),
                reviewed_by=e.reviewed.reviewed_by if e.reviewed else None,
                reviewed_at=e.reviewed.reviewed_at if e.reviewed else None,
            )
            for e in listing.prioritised
        ],
        prioritised_total=listing.prioritised_total,
        prioritised_beyond_cap=listing.prioritised_beyond_cap,
        data_issues=[
            IssueEntryPublic(
                patient_id=p.patient_id,
                display_name=p.display_name,
                issues=[
                    IssuePublic(kind=i.kind.value, value=i.value, unit=i.unit, subject=i.subject)
                    for i in p.issues
                ],
            )
            for p in listing.data_issues
        ],
        data_issues_total=listing.data_issues_total,
        data_issues_beyond_cap=listing.data_issues_beyond_cap,
        paused_total=listing.paused_total,
        choices=_choices(everyone),
        text=triage_text(listing, lang, first, last),
    )


Condition_ = Annotated[Condition | None, Query()]
Lang = Annotated[Language, Query(description="language of the labels in text")]


@router.get("", response_model=TriagePublic)
def get_triage(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    team: Team = None,
    tag: Tag = None,
    condition: Condition_ = None,
    period_days: PeriodDays = DEFAULT_PERIOD_DAYS,
    lang: Lang = "zh-CN",
) -> TriagePublic:
    """The caller's triage: buckets in priority order with their rules and counts, the
    prioritised list (capped, count beyond stated), the data issues, the text copy."""
    return _listing(
        request,
        caller,
        context,
        team=team,
        tag=tag,
        condition=condition,
        period_days=period_days,
        lang=lang,
    )


@router.get(
    ".txt",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_triage_text(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    team: Team = None,
    tag: Tag = None,
    condition: Condition_ = None,
    period_days: PeriodDays = DEFAULT_PERIOD_DAYS,
    lang: Lang = "zh-CN",
) -> Response:
    """The same list as plain text (no markup) for the hospital EMR."""
    listing = _listing(
        request,
        caller,
        context,
        team=team,
        tag=tag,
        condition=condition,
        period_days=period_days,
        lang=lang,
    )
    return Response(listing.text, media_type="text/plain; charset=utf-8")


ReviewTriage = Annotated[PatientGrant, Depends(patient_access(Action.REVIEW_TRIAGE))]


def _audit_change(
    session: Session, context: ContextDep, grant: PatientGrant, action: str, review_day: date
) -> None:
    record_audit(
        session,
        at=context.clock(),
        actor=grant.caller.actor.username,
        actor_role=grant.basis.value,
        action=action,
        target=f"triage:{grant.patient_id}",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={"review_day": review_day.isoformat()},
    )


@router.post(
    "/{patient_id}/reviewed",
    response_model=ReviewPublic,
    status_code=201,
    responses={200: {"model": ReviewPublic, "description": "Already reviewed today: that review"}},
)
def mark_reviewed(
    grant: ReviewTriage, context: ContextDep, response: Response, body: ReviewBody | None = None
) -> ReviewPublic:
    """Mark the patient reviewed today (201); already reviewed today: that review (200)."""
    days = (body or ReviewBody()).period_days
    now = context.clock()
    with context.write() as session:
        patient = session.get(Patient, grant.patient_id)
        assert patient is not None  # the gate found it
        zone = ZoneInfo(patient.time_zone)
        current, _ = periods(now.astimezone(zone).date(), days, zone)
        record, created = TriageReviewRepository(session, clock=context.clock).mark(
            grant.patient_id,
            reviewed_by=grant.caller.actor.username,
            period_first=current.start.date(),
            period_last=current.end.date() - timedelta(days=1),
        )
        if created:
            _audit_change(session, context, grant, "triage.reviewed", record.review_day)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public_review(record)


@router.delete("/{patient_id}/reviewed", response_model=ReviewPublic, responses=_CONFLICT)
def undo_reviewed(grant: ReviewTriage, context: ContextDep) -> ReviewPublic:
    """Undo today's review of the patient; 409 when there is none today."""
    try:
        with context.write() as session:
            record = TriageReviewRepository(session, clock=context.clock).undo(
                grant.patient_id, undone_by=grant.caller.actor.username
            )
            _audit_change(session, context, grant, "triage.review_undone", record.review_day)
    except (NotFound, ReviewUndoExpired) as exc:
        expired = isinstance(exc, ReviewUndoExpired)
        # The gate's row says the access was allowed; this one says the change was refused.
        context.audit(
            actor=grant.caller.actor.username,
            actor_role=grant.basis.value,
            action="triage.review_undone",
            target=f"triage:{grant.patient_id}",
            outcome=AuditOutcome.DENIED,
            patient_ids=[grant.patient_id],
            detail={"status": 409, "problem": "expired" if expired else "none"},
        )
        detail = "a review can be undone on the same day only" if expired else "no review to undo"
        raise HTTPException(status.HTTP_409_CONFLICT, detail=detail) from exc
    return _public_review(record)
