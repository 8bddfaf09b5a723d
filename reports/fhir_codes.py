"""The code tables of the FHIR export: MDC, LOINC, UCUM and HL7 codes per reading kind.

Written from the HL7 Personal Health Device (PHD) IG, IEEE 11073-10101 (MDC) as the IG
uses it, and the FHIR R4 vital-signs profiles. Kept apart from :mod:`reports.fhir` so the
tables can be read (and reviewed against the standards) on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from readings.model import Kind
from reports.summaries.glucose_ranges import MMOL_L_BOUNDARIES

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


MDC_MEAL_CONTEXT: Final = Code(MDC, "8417864", "MDC_CTXT_GLU_MEAL")
"""The code of the PHD IG's meal-context Observation (PhdCodedEnumerationObservation)."""

MEAL_CODES: Final[Mapping[str, Code]] = {
    "preprandial": Code(MDC, "8417868", "MDC_CTXT_GLU_MEAL_PREPRANDIAL"),
    "postprandial": Code(MDC, "8417872", "MDC_CTXT_GLU_MEAL_POSTPRANDIAL"),
    "fasting": Code(MDC, "8417876", "MDC_CTXT_GLU_MEAL_FASTING"),
    "casual": Code(MDC, "8417880", "MDC_CTXT_GLU_MEAL_CASUAL"),
    "bedtime": Code(MDC, "8417908", "MDC_CTXT_GLU_MEAL_BEDTIME"),
}
"""A reading's ``context["meal"]`` as the IEEE 11073-10417 meal-context term, in the
context-free form the PHD IG uses (partition 128 × 65536 + term code: 29260, 29264, 29268,
29272, 29300). The Bluetooth Glucose Measurement Context's meal field has the same five
options. ``unspecified`` (or any other value) has no term and gets no meal Observation."""

INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OFF_SCALE_HIGH: Final = Code(INTERPRETATION, ">", "Off scale high")
OFF_SCALE_LOW: Final = Code(INTERPRETATION, "<", "Off scale low")
HIGH: Final = Code(INTERPRETATION, "H", "High")
CRITICAL_HIGH: Final = Code(INTERPRETATION, "HH", "Critical high")
LOW: Final = Code(INTERPRETATION, "L", "Low")
CRITICAL_LOW: Final = Code(INTERPRETATION, "LL", "Critical low")

CRITICAL_LOW_MMOL_L: Final = MMOL_L_BOUNDARIES.very_low_below
"""mmol/L (3.0). A meter "LO" whose limit is at or below this is level 2 hypoglycaemia
whatever the true value (consensus: < 3.0 mmol/L is clinically significant), so LL;
a meter that stops higher (some show LO below 3.3) proves only "low", so L."""

CRITICAL_HIGH_MMOL_L: Final = MMOL_L_BOUNDARIES.very_high_above
"""mmol/L (13.9). A meter "HI" whose limit is at or above this is level 2 hyperglycaemia
(the consensus "very high" range), so HH; below it only H."""

PROVENANCE_PARTICIPANT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
