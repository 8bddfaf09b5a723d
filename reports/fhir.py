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
- ``Provenance`` per gateway, naming the gateway as the agent and saying whether the
  gateway corrected the device's clock.

Idempotent re-export: every entry is a conditional create (``ifNoneExist`` on its
identifier). An Observation's identifier is the reading id (a UUID 5 derived from the
device and its record, ``readings.identity``), so exporting the same period twice, or an
overlapping one, creates nothing new at the receiving server.

Every resource and the Bundle are validated with ``fhir.resources`` (its R4B models; 8.x
ships R5 and R4B, and R4B's Observation, Device, Patient and Provenance are R4's).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance

from readings.model import Kind, Reading
from reports.errors import ReportsError
from reports.summaries import Period

LOINC: Final = "http://loinc.org"
MDC: Final = "urn:iso:std:iso:11073:10101"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
URN_URI: Final = "urn:ietf:rfc:3986"
"""Identifier system of a URI value: the reading id as ``urn:uuid:…``."""

PHD: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition"
GATEWAY_EXTENSION: Final = f"{PHD}/GatewayDevice"
"""PHD IG extension on an Observation referencing the gateway (PhgDevice)."""

MDC_MDS_SIMPLE: Final = "65573"
"""MDC_MOC_VMS_MDS_SIMP: the ``Device.type`` of every PHD (PHD IG, PhdDevice)."""

MDC_GATEWAY: Final = "531981"
"""MDC_MOC_VMS_MDS_AHD: an application-hosting device, the PHD IG's gateway type."""

SPECIALIZATION: Final[Mapping[Kind, tuple[str, str]]] = {
    Kind.BLOOD_PRESSURE: ("528391", "MDC_DEV_SPEC_PROFILE_BPM"),
    Kind.GLUCOSE: ("528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
    Kind.SPO2: ("528388", "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    Kind.WEIGHT: ("528399", "MDC_DEV_SPEC_PROFILE_SCALE"),
    Kind.BODY_TEMPERATURE: ("528392", "MDC_DEV_SPEC_PROFILE_TEMP"),
    Kind.CGM_GLUCOSE: ("528409", "MDC_DEV_SPEC_PROFILE_CGM"),
    Kind.HEART_RATE: ("528405", "MDC_DEV_SPEC_PROFILE_HF_CARDIO"),
}
"""11073-20601 device specialisations (PHD IG PhdDevice.specialization)."""


@dataclass(frozen=True, slots=True)
class Code:
    """One coding: system, code and display."""

    system: str
    code: str
    display: str

    def as_fhir(self) -> dict[str, str]:
        """The FHIR ``Coding``."""
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class Measure:
    """How one value of a reading is coded: codes, the values field, the UCUM unit."""

    codes: tuple[Code, ...]
    field: str
    ucum: str
    vital_sign: bool


MEASURES: Final[Mapping[Kind, Measure]] = {
    Kind.GLUCOSE: Measure(
        (
            Code(MDC, "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
            Code(LOINC, "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
        ),
        "glucose",
        "mmol/L",
        vital_sign=False,
    ),
    Kind.CGM_GLUCOSE: Measure(
        (Code(LOINC, "105272-9", "Glucose [Moles/volume] in Interstitial fluid"),),
        "glucose",
        "mmol/L",
        vital_sign=False,
    ),
    Kind.HEART_RATE: Measure(
        (
            Code(MDC, "147842", "MDC_ECG_HEART_RATE"),
            Code(LOINC, "8867-4", "Heart rate"),
        ),
        "heart_rate",
        "/min",
        vital_sign=True,
    ),
    Kind.SPO2: Measure(
        (
            Code(MDC, "150456", "MDC_PULS_OXIM_SAT_O2"),
            Code(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
            Code(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        "spo2",
        "%",
        vital_sign=True,
    ),
    Kind.WEIGHT: Measure(
        (Code(MDC, "188736", "MDC_MASS_BODY_ACTUAL"), Code(LOINC, "29463-7", "Body weight")),
        "weight",
        "kg",
        vital_sign=True,
    ),
    Kind.BODY_TEMPERATURE: Measure(
        (
            Code(MDC, "150364", "MDC_TEMP_BODY"),
            Code(LOINC, "8310-5", "Body temperature"),
        ),
        "temperature",
        "Cel",
        vital_sign=True,
    ),
}
"""Single-value kinds. CGM has no MDC term in the PHD IG, so it carries LOINC only."""

BP_PANEL: Final = (
    Code(MDC, "150020", "MDC_PRESS_BLD_NONINV"),
    Code(LOINC, "85354-9", "Blood pressure panel with all children optional"),
)
BP_COMPONENTS: Final = (
    (
        "systolic",
        (
            Code(MDC, "150021", "MDC_PRESS_BLD_NONINV_SYS"),
            Code(LOINC, "8480-6", "Systolic blood pressure"),
        ),
    ),
    (
        "diastolic",
        (
            Code(MDC, "150022", "MDC_PRESS_BLD_NONINV_DIA"),
            Code(LOINC, "8462-4", "Diastolic blood pressure"),
        ),
    ),
    (
        "mean_arterial",
        (
            Code(MDC, "150023", "MDC_PRESS_BLD_NONINV_MEAN"),
            Code(LOINC, "8478-0", "Mean blood pressure"),
        ),
    ),
)
PULSE_BY_KIND: Final = {
    Kind.BLOOD_PRESSURE: Code(MDC, "149546", "MDC_PULS_RATE_NON_INV"),
    Kind.SPO2: Code(MDC, "149530", "MDC_PULS_OXIM_PULS_RATE"),
}
"""The pulse a cuff or an oximeter reports: a heart-rate Observation with its own MDC."""

HEART_RATE_LOINC: Final = Code(LOINC, "8867-4", "Heart rate")
VITAL_SIGNS: Final = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]
}
FLAG_CLOCK_CORRECTED: Final = "clock_corrected"

_NAMESPACE: Final = uuid.UUID("6f1e8f52-5a0c-5d4e-9a57-13f1c0de0013")
"""Namespace of the Bundle's internal ``urn:uuid`` full URLs (stable across exports)."""


class FhirExportError(ReportsError):
    """A resource failed ``fhir.resources`` validation (a bug in this module)."""


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '/'.join(parts))}"


def _quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": ucum, "system": UCUM, "code": ucum}


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


_MODELS: Final[dict[str, Any]] = {
    "Patient": Patient,
    "Device": Device,
    "Observation": Observation,
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


def _observation(
    reading: Reading,
    refs: Mapping[str, str],
    identifier: dict[str, str],
    codes: Iterable[Code],
    vital_sign: bool,
    value: dict[str, Any] | None,
    components: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    compound = components is not None
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {
            "profile": [
                f"{PHD}/PhdCompoundNumericObservation"
                if compound
                else f"{PHD}/PhdNumericObservation"
            ]
        },
        "extension": [
            {"url": GATEWAY_EXTENSION, "valueReference": {"reference": refs[reading.gateway_id]}}
        ],
        "identifier": [identifier],
        "status": "final",
        "code": {"coding": [code.as_fhir() for code in codes]},
        "subject": {"reference": refs[reading.patient_id]},
        "effectiveDateTime": reading.measured_at.isoformat(),
        "device": {"reference": refs[reading.device_id]},
    }
    if vital_sign:
        resource["category"] = [VITAL_SIGNS]
    if value is not None:
        resource["valueQuantity"] = value
    if components is not None:
        resource["component"] = components
    return resource


def _observations(
    reading: Reading, refs: Mapping[str, str]
) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(fullUrl, Observation, identifier) for one reading: one, or two with a pulse."""
    values = reading.values
    main_id = _identifier(URN_URI, f"urn:uuid:{reading.id}")
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
        out.append(
            (
                main_id["value"],
                _observation(reading, refs, main_id, BP_PANEL, True, None, components),
                main_id,
            )
        )
    else:
        measure = MEASURES[reading.kind]
        value = _quantity(getattr(values, measure.field), measure.ucum)
        out.append(
            (
                main_id["value"],
                _observation(reading, refs, main_id, measure.codes, measure.vital_sign, value),
                main_id,
            )
        )
    pulse = getattr(values, "pulse", None)
    if pulse is not None and reading.kind in PULSE_BY_KIND:
        # a second Observation from the same reading; its identifier is a UUID 5 of the
        # reading id, as stable as the reading id itself
        pulse_url = _urn(reading.id, "pulse")
        pulse_id = _identifier(URN_URI, pulse_url)
        codes = (PULSE_BY_KIND[reading.kind], HEART_RATE_LOINC)
        out.append(
            (
                _urn(reading.id, "pulse"),
                _observation(reading, refs, pulse_id, codes, True, _quantity(pulse, "/min")),
                pulse_id,
            )
        )
    return out


def fhir_bundle(
    patient_id: str,
    readings: Iterable[Reading],
    period: Period,
    *,
    generated_at: datetime,
    identifier_system: str = "urn:vitalgate",
) -> dict[str, Any]:
    """The transaction Bundle of ``patient_id``'s readings with ``start <= measured_at < end``.

    Args:
        patient_id: readings of other patients are left out.
        readings: any order; meter quality-control tests (``control_solution``) are left out.
        period: the half-open period of the export.
        generated_at: recorded in ``Provenance.recorded`` and ``Bundle.timestamp``.
        identifier_system: prefix of the patient, device and gateway identifier systems
            (``{prefix}:patient`` …); a deployment sets its own URI.

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
    systems = {name: f"{identifier_system}:{name}" for name in ("patient", "device", "gateway")}
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
    kinds_by_device: dict[str, set[Kind]] = {}
    for r in chosen:
        kinds_by_device.setdefault(r.device_id, set()).add(r.kind)
    for gateway_id in sorted({r.gateway_id for r in chosen}):
        refs[gateway_id] = _urn("gateway", gateway_id)
        ident = _identifier(systems["gateway"], gateway_id)
        entries.append(_entry(_gateway(gateway_id, systems["gateway"]), refs[gateway_id], ident))
    for device_id, kinds in sorted(kinds_by_device.items()):
        refs[device_id] = _urn("device", device_id)
        ident = _identifier(systems["device"], device_id)
        entries.append(_entry(_device(device_id, kinds, systems["device"]), refs[device_id], ident))
    targets: dict[tuple[str, bool], list[str]] = {}
    for reading in chosen:
        corrected = FLAG_CLOCK_CORRECTED in reading.flags
        for full_url, observation, ident in _observations(reading, refs):
            entries.append(_entry(observation, full_url, ident))
            targets.setdefault((reading.gateway_id, corrected), []).append(full_url)
    for (gateway_id, corrected), urls in sorted(targets.items()):
        activity = (
            "Uploaded by the gateway; measurement time corrected from the device clock"
            if corrected
            else "Uploaded by the gateway; device clock within tolerance"
        )
        key = f"{gateway_id}/{corrected}/{period.start.isoformat()}/{period.end.isoformat()}"
        provenance = {
            "resourceType": "Provenance",
            "target": [{"reference": url} for url in urls],
            "recorded": generated_at.isoformat(),
            "activity": {"text": activity},
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "assembler",
                            }
                        ]
                    },
                    "who": {"reference": refs[gateway_id]},
                }
            ],
        }
        # Provenance has no identifier: a conditional create on a stable _id-less search
        # is not possible, so it is keyed by a stable fullUrl and a plain create.
        entries.append(_provenance_entry(provenance, _urn("provenance", key)))
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


def _provenance_entry(resource: dict[str, Any], full_url: str) -> dict[str, Any]:
    try:
        Provenance.model_validate(resource)
    except ValueError as error:
        raise FhirExportError(f"Provenance invalid: {error}") from error
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": "Provenance"},
    }
