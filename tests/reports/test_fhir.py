"""FHIR export: the Bundle validates, and codes match a table copied from the standards.

The table below is written from the HL7 PHD IG (MDC codes, PhdDevice) and the FHIR R4
vital-signs profiles (LOINC, category, UCUM); it is deliberately not imported from
``reports.fhir``, so a wrong code in the module fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from readings.model import (
    BloodPressureValues,
    GlucoseValues,
    Spo2Values,
    WeightValues,
    new_reading,
)
from reports.fhir import fhir_bundle
from tests.reports.builders import T0, cgm, heart_rate, meter, reading, weight
from tests.reports.seed import PERIOD

GENERATED = datetime(2026, 3, 15, tzinfo=UTC)
MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"

# kind -> (required codings {(system, code)}, UCUM unit, vital-signs category?)
IG_TABLE: dict[str, tuple[set[tuple[str, str]], str | None, bool]] = {
    "meter": ({(MDC, "160184"), (LOINC, "14743-9")}, "mmol/L", False),
    "cgm": ({(LOINC, "105272-9")}, "mmol/L", False),
    "bp": ({(MDC, "150020"), (LOINC, "85354-9")}, None, True),
    "spo2": ({(MDC, "150456"), (LOINC, "2708-6"), (LOINC, "59408-5")}, "%", True),
    "weight": ({(MDC, "188736"), (LOINC, "29463-7")}, "kg", True),
    "heart_rate": ({(MDC, "147842"), (LOINC, "8867-4")}, "/min", True),
    "bp_pulse": ({(MDC, "149546"), (LOINC, "8867-4")}, "/min", True),
    "spo2_pulse": ({(MDC, "149530"), (LOINC, "8867-4")}, "/min", True),
}
BP_COMPONENTS = {
    (MDC, "150021"): (LOINC, "8480-6"),
    (MDC, "150022"): (LOINC, "8462-4"),
    (MDC, "150023"): (LOINC, "8478-0"),
}
SPECIALIZATIONS = {"528391", "528401", "528388", "528399", "528409", "528405"}


def _readings() -> list[Any]:
    at = T0 + timedelta(hours=8)
    return [
        meter(5.6, at),
        cgm(6.1, at + timedelta(minutes=1)),
        reading(
            BloodPressureValues(systolic=141, diastolic=88, mean_arterial=106, pulse=72),
            at + timedelta(minutes=2),
            unit="mm[Hg]",
        ),
        reading(Spo2Values(spo2=96, pulse=70), at + timedelta(minutes=3), unit="%"),
        weight(71.2, at + timedelta(minutes=4)),
        heart_rate(68, at + timedelta(minutes=5)),
        reading(
            Spo2Values(spo2=95), at + timedelta(minutes=6), unit="%", flags=("clock_corrected",)
        ),
        meter(5.0, at, patient="p-2"),
        meter(5.0, T0 - timedelta(minutes=1)),
    ]


def _codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_bundle_validates_and_holds_only_the_patient_and_period() -> None:
    bundle = fhir_bundle("p-1", _readings(), PERIOD, generated_at=GENERATED)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    patients = _resources(bundle, "Patient")
    assert [p["identifier"][0]["value"] for p in patients] == ["p-1"]
    assert "name" not in patients[0]
    # 7 readings in the period for p-1, two of them with a pulse
    assert len(_resources(bundle, "Observation")) == 9


def test_codes_units_and_categories_match_the_ig_table() -> None:
    bundle = fhir_bundle("p-1", _readings(), PERIOD, generated_at=GENERATED)
    seen = set()
    for obs in _resources(bundle, "Observation"):
        codes = _codes(obs["code"])
        matches = [name for name, (need, _, _) in IG_TABLE.items() if need == codes]
        assert len(matches) == 1, codes
        name = matches[0]
        seen.add(name)
        _, unit, vital = IG_TABLE[name]
        categories = {c["code"] for cat in obs.get("category", []) for c in cat["coding"]}
        assert ("vital-signs" in categories) is vital, name
        if unit is None:
            assert "valueQuantity" not in obs
            components = {
                frozenset(_codes(c["code"])): c["valueQuantity"] for c in obs["component"]
            }
            for mdc, loinc in BP_COMPONENTS.items():
                quantity = components[frozenset({mdc, loinc})]
                assert quantity["system"] == "http://unitsofmeasure.org"
                assert quantity["code"] == "mm[Hg]"
            assert components[frozenset({(MDC, "150021"), (LOINC, "8480-6")})]["value"] == 141
        else:
            assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"
            assert obs["valueQuantity"]["code"] == unit
        assert obs["status"] == "final"
        assert obs["extension"][0]["url"].endswith("/GatewayDevice")
    assert seen == set(IG_TABLE)


def test_identifier_is_the_reading_id_and_reexport_is_identical() -> None:
    readings = _readings()
    first = fhir_bundle("p-1", readings, PERIOD, generated_at=GENERATED)
    again = fhir_bundle("p-1", list(reversed(readings)), PERIOD, generated_at=GENERATED)
    assert first == again
    by_id = {f"urn:uuid:{r.id}" for r in readings}
    observations = [e for e in first["entry"] if e["resource"]["resourceType"] == "Observation"]
    main = [e for e in observations if e["resource"]["identifier"][0]["value"] in by_id]
    assert len(main) == 7
    for entry in observations:
        ident = entry["resource"]["identifier"][0]
        assert entry["request"]["ifNoneExist"] == f"identifier={ident['system']}|{ident['value']}"
    assert len({e["resource"]["identifier"][0]["value"] for e in observations}) == 9


def test_devices_and_provenance() -> None:
    bundle = fhir_bundle("p-1", _readings(), PERIOD, generated_at=GENERATED)
    devices = _resources(bundle, "Device")
    phd = [d for d in devices if d["meta"]["profile"][0].endswith("/PhdDevice")]
    assert len(phd) == 1
    assert phd[0]["manufacturer"] == "acme"
    assert phd[0]["modelNumber"] == "device"
    assert phd[0]["serialNumber"] == "0001"
    assert _codes(phd[0]["type"]) == {(MDC, "65573")}
    specs = {c["code"] for s in phd[0]["specialization"] for c in s["systemType"]["coding"]}
    assert specs == SPECIALIZATIONS
    provenances = _resources(bundle, "Provenance")
    corrected = [p for p in provenances if "corrected" in p["activity"]["text"]]
    assert len(corrected) == 1
    assert len(corrected[0]["target"]) == 1
    targets = sum(len(p["target"]) for p in provenances)
    assert targets == 9


# -- meal context, HI/LO, manual entry -------------------------------------------------------
# Written from the PHD IG (example "meal-context-observation": PhdCodedEnumerationObservation,
# code MDC_CTXT_GLU_MEAL 8417864, derivedFrom the glucose Observation) and IEEE 11073-10417's
# meal terms in context-free form (128 × 65536 + 29260 / 29264 / 29268 / 29272 / 29300).
MEAL_CONTEXT_CODE = (MDC, "8417864")
MEAL_TABLE = {
    "preprandial": "8417868",
    "postprandial": "8417872",
    "fasting": "8417876",
    "casual": "8417880",
    "bedtime": "8417908",
}
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# (flag, limit in mmol/L) -> (comparator, interpretation codes); off-scale always, and
# critical (HH/LL) only when the limit lies in the consensus level-2 range (< 3.0, > 13.9)
HI_LO_TABLE: dict[tuple[str, float], tuple[str, set[str]]] = {
    ("result_high", 33.3): (">", {">", "HH"}),
    ("result_high", 13.9): (">", {">", "HH"}),
    ("result_high", 13.8): (">", {">", "H"}),
    ("result_low", 1.1): ("<", {"<", "LL"}),
    ("result_low", 3.0): ("<", {"<", "LL"}),
    ("result_low", 3.3): ("<", {"<", "L"}),
}
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
AT = T0 + timedelta(hours=9)


def _by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _glucose(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in _resources(bundle, "Observation") if (MDC, "160184") in _codes(o["code"])]


@pytest.mark.parametrize(("meal", "code"), sorted(MEAL_TABLE.items()))
def test_meal_context_is_a_coded_observation_derived_from_the_glucose(meal: str, code: str) -> None:
    reading_ = meter(7.8, AT, meal=meal)
    bundle = fhir_bundle("p-1", [reading_], PERIOD, generated_at=GENERATED)
    Bundle.model_validate(bundle)
    meals = [
        e for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and _codes(e["resource"]["code"]) == {MEAL_CONTEXT_CODE}
    ]  # fmt: skip
    assert len(meals) == 1
    obs = meals[0]["resource"]
    assert _codes(obs["valueCodeableConcept"]) == {(MDC, code)}
    assert obs["meta"]["profile"][0].endswith("/PhdCodedEnumerationObservation")
    (glucose,) = _glucose(bundle)
    glucose_url = f"urn:uuid:{reading_.id}"
    assert glucose["identifier"][0]["value"] == glucose_url
    assert obs["derivedFrom"] == [{"reference": glucose_url}]
    assert obs["effectiveDateTime"] == glucose["effectiveDateTime"]
    assert obs["device"] == glucose["device"]
    assert "valueQuantity" not in obs
    # its own stable identifier, so a re-export does not duplicate it
    assert obs["identifier"][0]["value"] != glucose_url
    again = fhir_bundle("p-1", [reading_], PERIOD, generated_at=GENERATED)
    assert again == bundle
    provenance_targets = {
        t["reference"] for p in _resources(bundle, "Provenance") for t in p["target"]
    }
    assert meals[0]["fullUrl"] in provenance_targets


@pytest.mark.parametrize("meal", [None, "unspecified", "brunch"])
def test_no_meal_observation_without_a_known_meal(meal: str | None) -> None:
    bundle = fhir_bundle("p-1", [meter(7.8, AT, meal=meal)], PERIOD, generated_at=GENERATED)
    assert len(_resources(bundle, "Observation")) == 1


@pytest.mark.parametrize(("flag", "limit"), sorted(HI_LO_TABLE))
def test_hi_lo_carry_the_limit_with_a_comparator_and_interpretation(
    flag: str, limit: float
) -> None:
    comparator, codes = HI_LO_TABLE[(flag, limit)]
    bundle = fhir_bundle("p-1", [meter(limit, AT, flags=(flag,))], PERIOD, generated_at=GENERATED)
    Bundle.model_validate(bundle)
    (obs,) = _glucose(bundle)
    quantity = obs["valueQuantity"]
    assert quantity["comparator"] == comparator
    assert quantity["value"] == pytest.approx(limit)
    assert quantity["code"] == "mmol/L"
    seen = {c["code"] for i in obs["interpretation"] for c in i["coding"] if c["system"] == V3}
    assert seen == codes


def test_hi_from_a_mg_dl_meter_is_its_limit_in_mmol_l() -> None:
    bundle = fhir_bundle(
        "p-1", [meter(600, AT, unit="mg/dL", flags=("result_high",))], PERIOD,
        generated_at=GENERATED,
    )  # fmt: skip
    (obs,) = _glucose(bundle)
    assert obs["valueQuantity"]["comparator"] == ">"
    assert obs["valueQuantity"]["value"] == pytest.approx(33.3, abs=0.05)


def test_an_ordinary_result_has_no_comparator_or_interpretation() -> None:
    (obs,) = _glucose(fhir_bundle("p-1", [meter(5.5, AT)], PERIOD, generated_at=GENERATED))
    assert "comparator" not in obs["valueQuantity"]
    assert "interpretation" not in obs


def _manual(values: Any, entered_by: str | None, unit: str) -> Any:
    context: dict[str, Any] = {"visit_code": "V-ABCDEFGHIJ"}
    if entered_by is not None:
        context["entered_by"] = entered_by
    return new_reading(
        values=values, source_unit=unit, measured_at=AT, received_at=AT + timedelta(minutes=1),
        device_id="VitalGate-NurseVisit-VABCDEFGHIJ", patient_id="p-1",
        gateway_id="nurse-visit", context=context, flags=("manual_entry",),
    )  # fmt: skip


def test_a_nurses_manual_entry_names_her_and_no_device() -> None:
    manual_bp = _manual(
        BloodPressureValues(systolic=150, diastolic=95, pulse=80), "nurse.liu", "mm[Hg]"
    )
    manual_glucose = _manual(GlucoseValues(glucose=6.0), "nurse.liu", "mmol/L")
    device = meter(5.5, AT)
    bundle = fhir_bundle("p-1", [manual_bp, manual_glucose, device], PERIOD, generated_at=GENERATED)
    Bundle.model_validate(bundle)
    urls = _by_url(bundle)
    practitioners = _resources(bundle, "Practitioner")
    assert [p["identifier"][0]["value"] for p in practitioners] == ["nurse.liu"]
    (nurse_url,) = [u for u, r in urls.items() if r["resourceType"] == "Practitioner"]
    manual_ids = {f"urn:uuid:{manual_bp.id}", f"urn:uuid:{manual_glucose.id}"}
    manual_obs = [o for o in _resources(bundle, "Observation") if "performer" in o]
    assert len(manual_obs) == 3  # BP, its pulse, glucose
    assert manual_ids <= {o["identifier"][0]["value"] for o in manual_obs}
    for obs in manual_obs:
        assert obs["performer"] == [{"reference": nurse_url}]
        assert "device" not in obs
        assert "extension" not in obs  # no gateway carried it
        assert "PhdNumericObservation" not in json.dumps(obs.get("meta", {}))
        assert "manually" in obs["note"][0]["text"]
    # the device reading is untouched
    (device_obs,) = [o for o in _glucose(bundle) if "performer" not in o]
    assert "device" in device_obs
    # no Device for the visit's pseudo device or the "nurse-visit" gateway
    device_ids = {d["identifier"][0]["value"] for d in _resources(bundle, "Device")}
    assert device_ids == {"acme-device-0001", "gw-1"}
    provenances = _resources(bundle, "Provenance")
    entered = [p for p in provenances if p["agent"][0]["type"]["coding"][0]["code"] == "enterer"]
    assert len(entered) == 1
    assert entered[0]["agent"][0]["who"] == {"reference": nurse_url}
    assert entered[0]["agent"][0]["type"]["coding"][0]["system"] == PARTICIPANT
    assert "manually" in entered[0]["activity"]["text"]
    assert {t["reference"] for t in entered[0]["target"]} == {
        urls_ for urls_, r in urls.items() if r in manual_obs
    }
    assembled = [p for p in provenances if p is not entered[0]]
    assert all(p["agent"][0]["type"]["coding"][0]["code"] == "assembler" for p in assembled)
    assert sum(len(p["target"]) for p in assembled) == 1


def test_a_patients_own_entry_names_the_patient() -> None:
    own = _manual(WeightValues(weight=70.5), "li.qiang", "kg")
    bundle = fhir_bundle(
        "p-1", [own], PERIOD, generated_at=GENERATED, patient_accounts={"li.qiang"}
    )
    Bundle.model_validate(bundle)
    (patient_url,) = [u for u, r in _by_url(bundle).items() if r["resourceType"] == "Patient"]
    (obs,) = _resources(bundle, "Observation")
    assert obs["performer"] == [{"reference": patient_url}]
    assert _resources(bundle, "Practitioner") == []
    assert _resources(bundle, "Device") == []
    (provenance,) = _resources(bundle, "Provenance")
    assert provenance["agent"][0]["who"] == {"reference": patient_url}
    assert "the patient" in provenance["activity"]["text"]


def test_a_manual_entry_without_its_enterer_is_not_attributed() -> None:
    unknown = _manual(WeightValues(weight=70.5), None, "kg")
    bundle = fhir_bundle("p-1", [unknown], PERIOD, generated_at=GENERATED)
    Bundle.model_validate(bundle)
    (obs,) = _resources(bundle, "Observation")
    assert "performer" not in obs
    assert "device" not in obs
    (provenance,) = _resources(bundle, "Provenance")
    assert "reference" not in provenance["agent"][0]["who"]
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "enterer"
