"""Report and export downloads of one patient: the PDF report, CSV, FHIR.

Every route goes through :func:`dashboard_api.deps.patient_access` with the ``export``
action, which writes the download's audit row (route, actor, basis, patient). Family
members have no consent scope that grants ``export``, so they get 403 on their patient.
Query strings carry dates and a language only, never PHI.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from ingest.stores.base import StoreError
from reports.csv_export import alerts_csv, readings_csv, visits_csv
from reports.errors import InvalidPeriod
from reports.fhir import fhir_bundle
from reports.loading import DEFAULT_DAYS, PatientData, UnknownPatient, load_patient_data
from reports.pdf import ReportInput, report_pdf
from reports.summaries import summarise_patient

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["reports"])

Export = Annotated[PatientGrant, Depends(patient_access(Action.EXPORT))]
# Monitoring data starts with the deployment and cannot lie far in the future; bounded days
# keep the store's timestamp arithmetic in range (a year 2263 overflowed it: 422, not 500).
_FIRST_DAY = date(2000, 1, 1)
_LAST_DAY = date(2099, 12, 31)
FromDate = Annotated[
    date | None, Query(alias="from", description="first local day", ge=_FIRST_DAY, le=_LAST_DAY)
]
ToDate = Annotated[
    date | None,
    Query(alias="to", description="last local day, inclusive", ge=_FIRST_DAY, le=_LAST_DAY),
]


def load_for_route(
    grant: PatientGrant,
    context: ContextDep,
    first: date | None,
    last: date | None,
    days: int = DEFAULT_DAYS,
) -> PatientData:
    """The granted patient's data (:func:`reports.loading.load_patient_data`), its failures as
    HTTP answers: 404 deleted since the gate, 422 a bad period, 503 the store down."""
    try:
        with context.read() as session:
            return load_patient_data(
                session, context.store, grant.patient_id, first, last, context.clock, days
            )
    except UnknownPatient as exc:  # the gate saw it a moment ago; deleted since
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found") from exc
    except InvalidPeriod as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="reading store unavailable"
        ) from exc


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


@router.get(
    "/{patient_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_report_pdf(
    grant: Export,
    context: ContextDep,
    first: FromDate = None,
    last: ToDate = None,
    lang: Annotated[Literal["zh", "en"], Query()] = "zh",
) -> Response:
    """The one-page report over the local days ``from`` … ``to`` (default: last 14 days)."""
    data = load_for_route(grant, context, first, last)
    summary = summarise_patient(data.patient_id, data.readings, data.period, data.targets)
    pdf = report_pdf(ReportInput.of(data, summary, context.clock()), lang)
    return Response(pdf, media_type="application/pdf", headers=_attachment("report.pdf"))


@router.get(
    "/{patient_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_export_csv(
    grant: Export,
    context: ContextDep,
    what: Annotated[Literal["readings", "alerts", "visits"], Query()] = "readings",
    first: FromDate = None,
    last: ToDate = None,
) -> Response:
    """The patient's readings, alerts or visits of the period as CSV (units in the headers,
    staff free text escaped against spreadsheet formulas)."""
    data = load_for_route(grant, context, first, last)
    if what == "readings":
        body = readings_csv(data.readings)
    elif what == "alerts":
        body = alerts_csv(data.alerts)
    else:
        body = visits_csv(data.visits)
    return Response(
        body.encode("utf-8-sig"),  # the BOM makes spreadsheets read UTF-8 (names, context)
        media_type="text/csv; charset=utf-8",
        headers=_attachment(f"{what}.csv"),
    )


@router.get(
    "/{patient_id}/export/fhir",
    response_class=Response,
    responses={200: {"content": {"application/fhir+json": {}}}},
)
def get_export_fhir(
    grant: Export, context: ContextDep, first: FromDate = None, last: ToDate = None
) -> Response:
    """A FHIR R4 transaction Bundle of the period's readings (idempotent at the receiver)."""
    data = load_for_route(grant, context, first, last)
    bundle = fhir_bundle(
        data.patient_id,
        data.readings,
        data.period,
        generated_at=context.clock(),
        patient_accounts=data.patient_accounts,
    )
    return Response(
        json.dumps(bundle, ensure_ascii=False).encode(),
        media_type="application/fhir+json",
        headers=_attachment("bundle.json"),
    )
