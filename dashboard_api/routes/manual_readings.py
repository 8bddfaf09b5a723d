"""``POST /api/v1/patients/{patient_id}/readings/manual``: a reading typed in by hand.

For a cuff without Bluetooth, a meter the gateway cannot read, or a value measured at the
pharmacy. The reading goes the way a device's does once it has passed the wire contract:
the plausibility rules of ingest (:func:`ingest.validate.check_plausibility`, with the
deployment's limits), then the reading store, then the live stream — so it appears on the
patient's page at once and in every chart, with its provenance. Like the vitals of a nurse
visit (:mod:`dashboard_api.routes.visits`) it carries the ``manual_entry`` flag, the one
who typed it as its source (``entered_by``, and a device id of its own per person, so a
chart never mixes typed values with a device's), and no gateway.

An implausible value is refused with 422 naming the body field, never stored: "check the
number and type it again" is the right answer to a typo such as 1200 mmHg.

Who may: :data:`dashboard_api.authz.Action.ENTER_READING` — the patient, family acting for
the patient, the team's doctors, nurses and lead. The gate audits the request; the stored
reading is audited once more with its id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, status
from pydantic import AwareDatetime, BaseModel, Field

from dashboard_api.accepted import announce_stored
from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.routes.visits import MANUAL_FLAG
from dashboard_api.schemas import RequestModel
from ingest.stores.base import StoreError
from ingest.validate import check_plausibility
from readings.errors import InvalidReading
from readings.identity import device_identity
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit, mg_per_dl_to_mmol_per_l
from registry.audit import AuditOutcome

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["readings"])

EnterReading = Annotated[PatientGrant, Depends(patient_access(Action.ENTER_READING))]

MANUAL_GATEWAY: Final = "manual-entry"
"""The gateway id of typed-in readings: no gateway carried them."""
MANUAL_MANUFACTURER: Final = "VitalGate"
MANUAL_MODEL: Final = "ManualEntry"
"""Device id ``VitalGate-ManualEntry-<user>``: the person who typed is the source."""
EARLIEST_YEAR: Final = 2000
LATEST_YEAR: Final = 2099
"""``measured_at`` outside these years is refused before any arithmetic: a date such as
year 9999 with a negative offset overflows the conversion to UTC. Plausibility then
applies the exact limits (not before 2000, not in the future)."""

# Body bounds only keep numbers finite and positive; the plausibility rules (with their
# clinical and device reasons, docs/plausibility-rules.md) decide what is a measurement.
_LOOSE_MAX: Final = 10_000.0

Meal = Literal["preprandial", "postprandial", "fasting", "casual", "bedtime"]
"""The meal context names of the Bluetooth Glucose Profile (GATT glucose context), as
device readings carry them: before or after a meal decides which target applies."""


class _Manual(RequestModel):
    measured_at: AwareDatetime | None = None
    """When it was measured, with a UTC offset; now when left out."""


class ManualBloodPressure(_Manual):
    """A cuff's result, in mmHg and beats per minute."""

    kind: Literal["blood_pressure"]
    systolic_mmhg: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)
    diastolic_mmhg: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)
    pulse_per_min: float | None = Field(default=None, gt=0, le=_LOOSE_MAX, allow_inf_nan=False)


class ManualGlucose(_Manual):
    """A meter's result in the unit its display shows, with the meal context."""

    kind: Literal["glucose"]
    glucose: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)
    glucose_unit: Literal["mmol/L", "mg/dL"] = "mmol/L"
    meal: Meal | None = None


class ManualWeight(_Manual):
    """A scale's result in kg."""

    kind: Literal["weight"]
    weight_kg: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)


class ManualTemperature(_Manual):
    """A thermometer's result in °C."""

    kind: Literal["body_temperature"]
    temperature_c: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)


class ManualSpo2(_Manual):
    """An oximeter's saturation in % and its pulse."""

    kind: Literal["spo2"]
    spo2_percent: float = Field(gt=0, le=_LOOSE_MAX, allow_inf_nan=False)
    pulse_per_min: float | None = Field(default=None, gt=0, le=_LOOSE_MAX, allow_inf_nan=False)


ManualReading = Annotated[
    ManualBloodPressure | ManualGlucose | ManualWeight | ManualTemperature | ManualSpo2,
    Field(discriminator="kind"),
]


class ManualReadingPublic(BaseModel):
    """The stored reading: values in canonical units (mmol/L, mmHg, kg, °C, %)."""

    id: str
    kind: str
    measured_at: datetime
    values: dict[str, float]
    source_unit: str
    device_id: str
    flags: list[str]
    entered_by: str
    meal: str | None


_BODY_FIELD: Final = {
    ("blood_pressure", "values.systolic"): "systolic_mmhg",
    ("blood_pressure", "values.diastolic"): "diastolic_mmhg",
    ("blood_pressure", "values.pulse"): "pulse_per_min",
    ("glucose", "values.glucose"): "glucose",
    ("weight", "values.weight"): "weight_kg",
    ("body_temperature", "values.temperature"): "temperature_c",
    ("spo2", "values.spo2"): "spo2_percent",
    ("spo2", "values.pulse"): "pulse_per_min",
}
"""A reading's field (as ingest's rules name it) → the request body's field."""


def body_field(kind: str, reading_field: str) -> str:
    """The body field a reading field came from (``measured_at`` stays itself)."""
    return _BODY_FIELD.get((kind, reading_field), reading_field.removeprefix("values."))


def manual_values(body: ManualReading) -> tuple[Values, Unit, dict[str, str]]:
    """The values in canonical units, the unit they were entered in, and their context."""
    match body:
        case ManualBloodPressure():
            return (
                BloodPressureValues(
                    systolic=body.systolic_mmhg,
                    diastolic=body.diastolic_mmhg,
                    pulse=body.pulse_per_min,
                ),
                Unit.MMHG,
                {},
            )
        case ManualGlucose():
            mg = body.glucose_unit == "mg/dL"
            mmol = mg_per_dl_to_mmol_per_l(body.glucose) if mg else body.glucose
            context: dict[str, str] = {"meal": body.meal} if body.meal is not None else {}
            return (
                GlucoseValues(glucose=mmol),
                Unit.MG_PER_DL if mg else Unit.MMOL_PER_L,
                context,
            )
        case ManualWeight():
            return WeightValues(weight=body.weight_kg), Unit.KG, {}
        case ManualTemperature():
            return BodyTemperatureValues(temperature=body.temperature_c), Unit.CELSIUS, {}
        case ManualSpo2():
            return Spo2Values(spo2=body.spo2_percent, pulse=body.pulse_per_min), Unit.PERCENT, {}
    raise TypeError(type(body).__name__)


def entry_seq(now: datetime) -> int:
    """The record number of a typed-in reading: the moment it was entered, in ms."""
    return int(now.timestamp() * 1000)


def _refused(field: str, message: str, kind: str = "implausible_value") -> HTTPException:
    # FastAPI's own validation shape, so a page shows both kinds of refusal the same way.
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["body", field], "msg": message, "type": kind}],
    )


def build_manual_reading(
    body: ManualReading, *, patient_id: str, entered_by: str, now: datetime
) -> Reading:
    """The reading as ingest would store it, from a typed-in body.

    Raises:
        HTTPException: 422 naming the body field when the value cannot be a measurement.
    """
    measured_at = body.measured_at or now
    if not EARLIEST_YEAR <= measured_at.year <= LATEST_YEAR:
        raise _refused("measured_at", f"must lie in {EARLIEST_YEAR}–{LATEST_YEAR}", "out_of_range")
    values, unit, context = manual_values(body)
    try:
        reading = new_reading(
            values=values,
            source_unit=unit,
            measured_at=measured_at,
            received_at=now,
            device_id=device_identity(MANUAL_MANUFACTURER, MANUAL_MODEL, entered_by),
            patient_id=patient_id,
            gateway_id=MANUAL_GATEWAY,
            context={"entered_by": entered_by, **context},
            flags=(MANUAL_FLAG,),
            # The record key must survive the store, which keeps seq but not received_at:
            # the alert window and the reports rebuild readings from the store and check
            # each id against it. The entry moment in ms is unique per person and kind.
            seq=entry_seq(now),
        )
    except InvalidReading as exc:
        raise _refused(body_field(body.kind, exc.field), exc.problem, "invalid_value") from exc
    return reading


@router.post(
    "/{patient_id}/readings/manual",
    response_model=ManualReadingPublic,
    status_code=status.HTTP_201_CREATED,
)
def enter_reading(
    body: Annotated[ManualReading, Body()], grant: EnterReading, context: ContextDep
) -> ManualReadingPublic:
    """Store a reading typed in by hand, after ingest's plausibility rules."""
    now = context.clock()
    entered_by = grant.caller.actor.username
    reading = build_manual_reading(
        body, patient_id=grant.patient_id, entered_by=entered_by, now=now
    )
    found = check_plausibility(reading, now=now, limits=context.plausibility)
    if found is not None:
        raise _refused(body_field(body.kind, found.field), f"{found.rule}: {found.detail}")
    try:
        result = context.store.write([reading])
    except StoreError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="reading store unavailable"
        ) from exc
    if result.rejected:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the reading store refused the reading"
        )
    context.audit(
        actor=entered_by,
        actor_role=grant.basis.value,
        action="reading.manual_entry",
        target=f"reading:{reading.id}",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={"kind": body.kind},
    )
    if context.live is not None:
        # Stored first, then announced, as ingest does before it publishes on accepted/.
        context.live.publish([reading])
    # The alert worker judges it like any reading (a low typed in pages as a measured one).
    announce_stored(context.commands, [reading], now=now)
    meal = reading.context.get("meal")
    return ManualReadingPublic(
        id=reading.id,
        kind=body.kind,
        measured_at=reading.measured_at,
        values={k: float(v) for k, v in reading.values.as_dict().items() if isinstance(v, float)},
        source_unit=reading.source_unit,
        device_id=reading.device_id,
        flags=list(reading.flags),
        entered_by=entered_by,
        meal=meal if isinstance(meal, str) else None,
    )
