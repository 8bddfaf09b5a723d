"""FHIR export: the Bundle validates, and codes match a table copied from the standards.

The table below is written from the HL7 PHD IG (MDC codes, PhdDevice) and the FHIR R4
vital-signs profiles (LOINC, category, UCUM); it is deliberately not imported from
``reports.fhir``, so a wrong code in the module fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from readings.model import BloodPressureValues, Spo2Values
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
