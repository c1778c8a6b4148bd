"""Composite search parameters: ``token$value`` pairs that must hold of the same item (the Observation,
or one of its components), with the second component's prefixes and forms."""

from __future__ import annotations

import pytest

from tests.support import observation, patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _plain() -> dict:
    """An Observation of patient p1 without a value."""
    return {k: v for k, v in observation("p1").items() if not k.startswith("value")}


def _bp(systolic: float, diastolic: float) -> dict:
    def part(code, value):
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}
    return {**_plain(), "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [part("8480-6", systolic), part("8462-4", diastolic)]}


@pytest.fixture
def observations(fhir):
    fhir.put("Patient/p1", patient(id="p1"))
    made = {
        "high-systolic": fhir.create(_bp(150, 85))["id"],
        "high-diastolic": fhir.create(_bp(120, 150))["id"],  # 150 but on the other component
        "glucose": fhir.create({**_plain(), "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
                                "valueQuantity": {"value": 7.5, "unit": "mmol/L", "system": UCUM,
                                                  "code": "mmol/L"}})["id"],
        "smoker": fhir.create({**_plain(), "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
                               "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                                    "code": "449868002"}]}})["id"],
        "dated": fhir.create({**_plain(), "code": {"coding": [{"system": LOINC, "code": "21112-8"}]},
                              "valueDateTime": "1975-06-01"})["id"],
        "said": fhir.create({**_plain(), "code": {"coding": [{"system": LOINC, "code": "8689-2"}]},
                             "valueString": "Feels fine"})["id"],
    }
    return made


def _ids(fhir, query: str) -> set[str]:
    answer = fhir.get(f"Observation?{query}")
    assert answer.status_code == 200, answer.get_json()
    return {e["resource"]["id"] for e in answer.get_json().get("entry", [])}


@pytest.mark.parametrize("query, expected", [
    (f"component-code-value-quantity={LOINC}|8480-6$gt140", {"high-systolic"}),
    (f"component-code-value-quantity={LOINC}|8462-4$gt140", {"high-diastolic"}),
    (f"component-code-value-quantity={LOINC}|8480-6$gt140,{LOINC}|8462-4$gt140", {"high-systolic", "high-diastolic"}),
    (f"component-code-value-quantity=8480-6$le120|{UCUM}|mm[Hg]", {"high-diastolic"}),
    (f"combo-code-value-quantity={LOINC}|8480-6$ge150", {"high-systolic"}),
    (f"combo-code-value-quantity={LOINC}|2339-0$7.5", {"glucose"}),
    (f"code-value-quantity={LOINC}|2339-0$gt7", {"glucose"}),
    (f"code-value-quantity={LOINC}|2339-0$lt7", set()),
    (f"code-value-quantity={LOINC}|85354-9$gt0", set()),  # the panel itself has no value
    (f"code-value-concept={LOINC}|72166-2$http://snomed.info/sct|449868002", {"smoker"}),
    (f"code-value-concept={LOINC}|72166-2$http://snomed.info/sct|8517006", set()),
    (f"code-value-date={LOINC}|21112-8$lt1980", {"dated"}),
    (f"code-value-date={LOINC}|21112-8$gt1980", set()),
    (f"code-value-string={LOINC}|8689-2$feels", {"said"}),
    ("component-code-value-quantity:missing=false", {"high-systolic", "high-diastolic"}),
])
def test_a_composite_matches_both_parts_on_the_same_item(fhir, observations, query, expected):
    assert _ids(fhir, query) == {observations[name] for name in expected}


@pytest.mark.parametrize("query, problem", [
    (f"component-code-value-quantity={LOINC}|8480-6", "joined by '$'"),
    ("component-code-value-quantity=$gt140", "joined by '$'"),
    (f"component-code-value-quantity={LOINC}|8480-6$lots", "component-code-value-quantity"),
    (f"component-code-value-quantity:exact={LOINC}|8480-6$1", "not supported"),
    ("_sort=code-value-quantity", "composite"),
])
def test_malformed_composites_are_400(fhir, observations, query, problem):
    answer = fhir.get(f"Observation?{query}")
    assert answer.status_code == 400, answer.get_json()
    assert problem in answer.get_json()["issue"][0]["diagnostics"]


def test_the_statement_lists_the_composites_it_answers(fhir):
    statement = fhir.get("metadata").get_json()
    entries = {r["type"]: {p["name"]: p["type"] for p in r.get("searchParam", [])}
               for r in statement["rest"][0]["resource"]}
    assert entries["Observation"]["component-code-value-quantity"] == "composite"
    assert entries["Group"]["characteristic-value"] == "composite"
    assert "chromosome-variant-coordinate" not in entries["MolecularSequence"]  # three components: not indexed
    assert fhir.get("MolecularSequence?chromosome-variant-coordinate=1$1$2").status_code == 400
