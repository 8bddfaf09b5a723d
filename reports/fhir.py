"""FHIR R4 export of a patient's readings over a period, after the HL7 Personal Health
Device (PHD) implementation guide.

One transaction ``Bundle`` per patient and period holds:

- the ``Patient`` (PhdPatient needs only an identifier: no name, no PHI beyond the id);
- one ``Device`` per personal health device (PhdDevice: identifier, manufacturer, model
  number, serial number, ``type`` MDC 65573, ``specialization`` by kind) and one per
  gateway (PhgDevice);
- one ``Observation`` per reading, coded with MDC (``urn:iso:std:iso:11073:10101``) and,
  where a FHIR vital-signs profile exists, its LOINC code and the ``vital-signs`` category;
  values in UCUM. Blood pressure is one Observation with systolic, diastolic and mean
  components; the pulse a cuff or oximeter reports is its own heart-rate Observation;
  a meter reading's meal context is its own PhdCodedEnumerationObservation
  (MDC_CTXT_GLU_MEAL) ``derivedFrom`` the glucose Observation, as the IG's example does;
  a meter "HI"/"LO" result carries the meter's limit with a comparator and an
  ``interpretation``;
- a reading typed in by a person (flag ``manual_entry``) is no PHD observation: no
  ``device``, no gateway, a ``performer`` (the nurse as ``Practitioner``, or the patient)
  and a ``note`` saying it was entered manually, as the PHD IG's Measurement-Status table
  asks for "manually-entered";
- ``Provenance`` per gateway and clock state, naming the gateway as the assembler and
  saying whether the gateway corrected the device's clock; and per person who entered
  readings by hand, naming them as the enterer.

Idempotent re-export: every entry is a conditional create (``ifNoneExist`` on its
identifier). An Observation's identifier is the reading id (a UUID 5 derived from the
device and its record, ``readings.identity``), so exporting the same period twice, or an
overlapping one, creates nothing new at the receiving server.

Every resource and the Bundle are validated with ``fhir.resources`` (its R4B models; 8.x
ships R5 and R4B, and R4B's Observation, Device, Patient and Provenance are R4's).
The code tables are in :mod:`reports.fhir_codes`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.provenance import Provenance

from readings.model import Kind, Reading
from reports.errors import ReportsError
from reports.fhir_codes import (
    BP_COMPONENTS,
    BP_PANEL,
    CRITICAL_HIGH,
    CRITICAL_HIGH_MMOL_L,
    CRITICAL_LOW,
    CRITICAL_LOW_MMOL_L,
    GATEWAY_EXTENSION,
    HEART_RATE_LOINC,
    HIGH,
    LOW,
    MDC,
    MDC_GATEWAY,
    MDC_MDS_SIMPLE,
    MDC_MEAL_CONTEXT,
    MEAL_CODES,
    MEASURES,
    OFF_SCALE_HIGH,
    OFF_SCALE_LOW,
    PHD,
    PROVENANCE_PARTICIPANT,
    PULSE_BY_KIND,
    SPECIALIZATION,
    UCUM,
    URN_URI,
    VITAL_SIGNS,
    Code,
)
from reports.summaries import Period

FLAG_CLOCK_CORRECTED: Final = "clock_corrected"
FLAG_MANUAL: Final = "manual_entry"
"""A reading typed in by a person (a nurse at a visit), not read from a device."""
FLAG_RESULT_HIGH: Final = "result_high"
FLAG_RESULT_LOW: Final = "result_low"
"""A meter's "HI"/"LO": the true value is beyond the meter's range; the reading's value is
the limit the meter reports (``readings.model.GlucoseReading``)."""

_NAMESPACE: Final = uuid.UUID("6f1e8f52-5a0c-5d4e-9a57-13f1c0de0013")
"""Namespace of the Bundle's internal ``urn:uuid`` full URLs (stable across exports)."""


class FhirExportError(ReportsError):
    """A resource failed ``fhir.resources`` validation (a bug in this module)."""


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '/'.join(parts))}"


def _quantity(value: float, ucum: str, comparator: str | None = None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value, "unit": ucum, "system": UCUM, "code": ucum}
    if comparator is not None:
        quantity["comparator"] = comparator
    return quantity


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


_MODELS: Final[dict[str, Any]] = {
    "Patient": Patient,
    "Device": Device,
    "Observation": Observation,
    "Practitioner": Practitioner,
    "Provenance": Provenance,
}
"""fhir.resources R4B model per resource type (typed ``Any``: its metaclass hides
``model_validate`` from mypy)."""


def _entry(resource: dict[str, Any], full_url: str, identifier: dict[str, str]) -> dict[str, Any]:
    model = _MODELS[resource["resourceType"]]
    try:
        model.model_validate(resource)
    except ValueError as error:
        raise FhirExportError(f"{resource['resourceType']} invalid: {error}") from error
    search = f"identifier={identifier['system']}|{identifier['value']}"
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": search},
    }


def _device(device_id: str, kinds: set[Kind], system: str) -> dict[str, Any]:
    manufacturer, model, serial = device_id.split("-", 2)
    return {
        "resourceType": "Device",
        "meta": {"profile": [f"{PHD}/PhdDevice"]},
        "identifier": [_identifier(system, device_id)],
        "manufacturer": manufacturer,
        "modelNumber": model,
        "serialNumber": serial,
        "type": {"coding": [Code(MDC, MDC_MDS_SIMPLE, "MDC_MOC_VMS_MDS_SIMP").as_fhir()]},
        "specialization": [
            {"systemType": {"coding": [Code(MDC, *SPECIALIZATION[kind]).as_fhir()]}}
            for kind in sorted(kinds)
        ],
    }


def _gateway(gateway_id: str, system: str) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "meta": {"profile": [f"{PHD}/PhgDevice"]},
        "identifier": [_identifier(system, gateway_id)],
        "manufacturer": "VitalGate",
        "type": {"coding": [Code(MDC, MDC_GATEWAY, "MDC_MOC_VMS_MDS_AHD").as_fhir()]},
    }


@dataclass(frozen=True, slots=True)
class _Source:
    """Who or what produced a reading, as the Observation and its Provenance say it.

    A device reading has the PHD and its gateway; a manual one has the person who typed it
    (``performer`` is None when the reading does not say who).
    """

    manual: bool
    performer: str | None = None
    """Reference (fullUrl) of the Practitioner or Patient who entered a manual reading."""
    enterer: str = ""
    """Who entered it, in words, for the Provenance (``a nurse (nurse.liu)`` …)."""


def _observation(
    reading: Reading,
    refs: Mapping[str, str],
    source: _Source,
    identifier: dict[str, str],
    codes: Iterable[Code],
    vital_sign: bool,
    value: dict[str, Any] | None,
    *,
    components: list[dict[str, Any]] | None = None,
    profile: str = "PhdNumericObservation",
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Observation"}
    if not source.manual:
        # the PHD profiles require a device; a hand-typed reading has none, so it claims
        # no PHD profile (a plain R4 Observation, vital-signs category where it applies)
        resource["meta"] = {"profile": [f"{PHD}/{profile}"]}
        resource["extension"] = [
            {"url": GATEWAY_EXTENSION, "valueReference": {"reference": refs[reading.gateway_id]}}
        ]
    resource |= {
        "identifier": [identifier],
        "status": "final",
        "code": {"coding": [code.as_fhir() for code in codes]},
        "subject": {"reference": refs[reading.patient_id]},
        "effectiveDateTime": reading.measured_at.isoformat(),
    }
    if vital_sign:
        resource["category"] = [VITAL_SIGNS]
    if source.manual:
        if source.performer is not None:
            resource["performer"] = [{"reference": source.performer}]
        resource["note"] = [
            {"text": f"Entered manually by {source.enterer}; not read from a device."}
        ]
    else:
        resource["device"] = {"reference": refs[reading.device_id]}
    if value is not None:
        resource["valueQuantity"] = value
    if components is not None:
        resource["component"] = components
    return resource


def _off_scale(reading: Reading) -> tuple[str, list[dict[str, Any]]] | None:
    """A meter HI/LO: the comparator and the interpretations, else None.

    The value is the meter's limit, so ``>``/``<`` says what is known without a made-up
    number; ``HH``/``LL`` only when the limit itself lies in the consensus level-2 range.
    """
    if reading.kind is not Kind.GLUCOSE:
        return None
    limit = float(reading.values.glucose)  # type: ignore[attr-defined]
    if FLAG_RESULT_HIGH in reading.flags:
        level = CRITICAL_HIGH if limit >= CRITICAL_HIGH_MMOL_L else HIGH
        return ">", [{"coding": [OFF_SCALE_HIGH.as_fhir()]}, {"coding": [level.as_fhir()]}]
    if FLAG_RESULT_LOW in reading.flags:
        level = CRITICAL_LOW if limit <= CRITICAL_LOW_MMOL_L else LOW
        return "<", [{"coding": [OFF_SCALE_LOW.as_fhir()]}, {"coding": [level.as_fhir()]}]
    return None


def _observations(
    reading: Reading, refs: Mapping[str, str], source: _Source
) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(fullUrl, Observation, identifier) for one reading: the measurement, and a pulse or
    a meal context when the reading has one."""
    values = reading.values
    main_id = _identifier(URN_URI, f"urn:uuid:{reading.id}")
    main_url = main_id["value"]
    out = []
    if reading.kind is Kind.BLOOD_PRESSURE:
        components = [
            {
                "code": {"coding": [c.as_fhir() for c in codes]},
                "valueQuantity": _quantity(v, "mm[Hg]"),
            }
            for field, codes in BP_COMPONENTS
            if (v := getattr(values, field, None)) is not None
        ]
        observation = _observation(
            reading, refs, source, main_id, BP_PANEL, True, None,
            components=components, profile="PhdCompoundNumericObservation",
        )  # fmt: skip
    else:
        measure = MEASURES[reading.kind]
        off_scale = _off_scale(reading)
        comparator = off_scale[0] if off_scale else None
        value = _quantity(getattr(values, measure.field), measure.ucum, comparator)
        observation = _observation(
            reading, refs, source, main_id, measure.codes, measure.vital_sign, value
        )
        if off_scale:
            observation["interpretation"] = off_scale[1]
    out.append((main_url, observation, main_id))
    pulse = getattr(values, "pulse", None)
    if pulse is not None and reading.kind in PULSE_BY_KIND:
        # a second Observation from the same reading; its identifier is a UUID 5 of the
        # reading id, as stable as the reading id itself
        pulse_url = _urn(reading.id, "pulse")
        pulse_id = _identifier(URN_URI, pulse_url)
        codes = (PULSE_BY_KIND[reading.kind], HEART_RATE_LOINC)
        pulse_obs = _observation(
            reading, refs, source, pulse_id, codes, True, _quantity(pulse, "/min")
        )
        out.append((pulse_url, pulse_obs, pulse_id))
    meal = MEAL_CODES.get(str(reading.context.get("meal", "")))
    if meal is not None and reading.kind is Kind.GLUCOSE:
        meal_url = _urn(reading.id, "meal")
        meal_id = _identifier(URN_URI, meal_url)
        meal_obs = _observation(
            reading, refs, source, meal_id, (MDC_MEAL_CONTEXT,), False, None,
            profile="PhdCodedEnumerationObservation",
        )  # fmt: skip
        meal_obs["valueCodeableConcept"] = {"coding": [meal.as_fhir()]}
        meal_obs["derivedFrom"] = [{"reference": main_url}]
        out.append((meal_url, meal_obs, meal_id))
    return out


def _manual_source(
    reading: Reading, refs: dict[str, str], patient_accounts: Collection[str]
) -> _Source:
    entered_by = reading.context.get("entered_by")
    if not isinstance(entered_by, str) or not entered_by:
        return _Source(manual=True, enterer="a person not recorded")
    if entered_by in patient_accounts:
        return _Source(True, refs[reading.patient_id], "the patient")
    return _Source(True, refs[f"practitioner/{entered_by}"], f"a nurse or doctor ({entered_by})")


def fhir_bundle(
    patient_id: str,
    readings: Iterable[Reading],
    period: Period,
    *,
    generated_at: datetime,
    identifier_system: str = "urn:vitalgate",
    patient_accounts: Collection[str] = (),
) -> dict[str, Any]:
    """The transaction Bundle of ``patient_id``'s readings with ``start <= measured_at < end``.

    Args:
        patient_id: readings of other patients are left out.
        readings: any order; meter quality-control tests (``control_solution``) are left out.
        period: the half-open period of the export.
        generated_at: recorded in ``Provenance.recorded`` and ``Bundle.timestamp``.
        identifier_system: prefix of the patient, device, gateway and practitioner
            identifier systems (``{prefix}:patient`` …); a deployment sets its own URI.
        patient_accounts: usernames of the patient's own accounts: a manual reading whose
            ``context["entered_by"]`` is one of them was entered by the patient (performer
            ``Patient``); any other ``entered_by`` is staff (performer ``Practitioner``).

    Returns:
        The Bundle as JSON-ready dicts, validated with ``fhir.resources`` (R4B).

    Raises:
        FhirExportError: a resource failed validation.
    """
    chosen = sorted(
        (
            r
            for r in readings
            if r.patient_id == patient_id
            and period.start <= r.measured_at < period.end
            and "control_solution" not in r.flags
        ),
        key=lambda r: (r.measured_at, r.id),
    )
    systems = {
        name: f"{identifier_system}:{name}"
        for name in ("patient", "device", "gateway", "practitioner")
    }
    refs: dict[str, str] = {patient_id: _urn("patient", patient_id)}
    entries = [
        _entry(
            {
                "resourceType": "Patient",
                "meta": {"profile": [f"{PHD}/PhdPatient"]},
                "identifier": [_identifier(systems["patient"], patient_id)],
            },
            refs[patient_id],
            _identifier(systems["patient"], patient_id),
        )
    ]
    by_device = [r for r in chosen if FLAG_MANUAL not in r.flags]
    kinds_by_device: dict[str, set[Kind]] = {}
    for r in by_device:
        kinds_by_device.setdefault(r.device_id, set()).add(r.kind)
    for gateway_id in sorted({r.gateway_id for r in by_device}):
        refs[gateway_id] = _urn("gateway", gateway_id)
        ident = _identifier(systems["gateway"], gateway_id)
        entries.append(_entry(_gateway(gateway_id, systems["gateway"]), refs[gateway_id], ident))
    for device_id, kinds in sorted(kinds_by_device.items()):
        refs[device_id] = _urn("device", device_id)
        ident = _identifier(systems["device"], device_id)
        entries.append(_entry(_device(device_id, kinds, systems["device"]), refs[device_id], ident))
    staff = sorted(
        {
            entered_by
            for r in chosen
            if FLAG_MANUAL in r.flags
            and isinstance(entered_by := r.context.get("entered_by"), str)
            and entered_by
            and entered_by not in patient_accounts
        }
    )
    for username in staff:
        key = f"practitioner/{username}"
        refs[key] = _urn("practitioner", username)
        ident = _identifier(systems["practitioner"], username)
        practitioner = {"resourceType": "Practitioner", "identifier": [ident]}
        entries.append(_entry(practitioner, refs[key], ident))
    targets: dict[tuple[str, ...], list[str]] = {}
    for reading in chosen:
        if FLAG_MANUAL in reading.flags:
            source = _manual_source(reading, refs, patient_accounts)
            group: tuple[str, ...] = ("manual", source.performer or "", source.enterer)
        else:
            source = _Source(manual=False)
            corrected = "corrected" if FLAG_CLOCK_CORRECTED in reading.flags else "within"
            group = ("device", reading.gateway_id, corrected)
        for full_url, observation, ident in _observations(reading, refs, source):
            entries.append(_entry(observation, full_url, ident))
            targets.setdefault(group, []).append(full_url)
    for group, urls in sorted(targets.items()):
        key = "/".join((*group, period.start.isoformat(), period.end.isoformat()))
        entries.append(
            _provenance_entry(_provenance(group, urls, refs, generated_at), _urn("provenance", key))
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": generated_at.isoformat(),
        "entry": entries,
    }
    try:
        validated = Bundle.model_validate(bundle)
    except ValueError as error:
        raise FhirExportError(f"Bundle invalid: {error}") from error
    result: dict[str, Any] = json.loads(validated.model_dump_json())
    return result


def _agent(role: str, who: dict[str, str]) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PROVENANCE_PARTICIPANT, "code": role}]},
        "who": who,
    }


def _provenance(
    group: tuple[str, ...], urls: list[str], refs: Mapping[str, str], generated_at: datetime
) -> dict[str, Any]:
    """Provenance of one group: a gateway and clock state, or one person's manual entries."""
    if group[0] == "manual":
        _, performer, enterer = group
        activity = f"Entered manually by {enterer}; no device or gateway transmitted these values"
        # Provenance.agent.who is required; an enterer the reading does not name is said
        # so in words rather than attributed to anyone
        who = {"reference": performer} if performer else {"display": "enterer not recorded"}
        agent = _agent("enterer", who)
    else:
        _, gateway_id, corrected = group
        activity = (
            "Uploaded by the gateway; measurement time corrected from the device clock"
            if corrected == "corrected"
            else "Uploaded by the gateway; device clock within tolerance"
        )
        agent = _agent("assembler", {"reference": refs[gateway_id]})
    return {
        "resourceType": "Provenance",
        "target": [{"reference": url} for url in urls],
        "recorded": generated_at.isoformat(),
        "activity": {"text": activity},
        "agent": [agent],
    }


def _provenance_entry(resource: dict[str, Any], full_url: str) -> dict[str, Any]:
    # Provenance has no identifier, so it cannot be a conditional create: it is keyed by a
    # stable fullUrl and sent as a plain create.
    try:
        Provenance.model_validate(resource)
    except ValueError as error:
        raise FhirExportError(f"Provenance invalid: {error}") from error
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": "Provenance"},
    }
