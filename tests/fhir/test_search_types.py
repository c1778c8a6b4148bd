"""Each search-parameter type with its modifiers and prefixes, table-driven, over real index rows."""

from __future__ import annotations

import pytest

from tests.support import observation, patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _ids(fhir, query: str) -> set[str]:
    response = fhir.get(query)
    assert response.status_code == 200, response.get_json()
    return {e["resource"]["id"] for e in response.get_json().get("entry", [])}


@pytest.fixture
def charts(fhir) -> dict[str, str]:
    """A few patients and observations with known values; returns name -> id."""
    made = {}
    made["ada"] = fhir.create(patient(
        name=[{"family": "Lovelace", "given": ["Ada", "Augusta"]}], gender="female", birthDate="1815-12-10",
        identifier=[{"system": "urn:mrn", "value": "A-1",
                     "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
        telecom=[{"system": "email", "value": "ada@example.org"}], active=True))["id"]
    made["zoe"] = fhir.create(patient(name=[{"family": "Ñandú-Öst", "given": ["Zoë"]}], gender="other",
                                      birthDate="1990-06", identifier=[{"system": "urn:ssn", "value": "A-1"}]))["id"]
    made["anon"] = fhir.create({"resourceType": "Patient", "gender": "unknown"})["id"]
    percent = {"unit": "%", "system": UCUM, "code": "%"}
    made["a1c_high"] = fhir.create(observation(made["ada"], effectiveDateTime="2024-03-05T10:00:00+02:00",
                                               valueQuantity={"value": 8.1, **percent}))["id"]
    made["a1c_ok"] = fhir.create(observation(made["ada"], effectiveDateTime="2023-11-20",
                                             valueQuantity={"value": 5.4, **percent}))["id"]
    weight = observation(
        made["zoe"], status="preliminary",
        code={"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}], "text": "Weight"},
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                               "code": "vital-signs"}]}],
        effectivePeriod={"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:00:00Z"},
        valueQuantity={"value": 70, "unit": "kg", "system": UCUM, "code": "kg"})
    del weight["effectiveDateTime"]
    made["weight"] = fhir.create(weight)["id"]
    del_me = fhir.create(observation(made["zoe"]))["id"]
    fhir.delete(f"Observation/{del_me}")
    return made


CASES = [
    # token
    ("Patient?gender=female", {"ada"}),
    ("Patient?gender=female,other", {"ada", "zoe"}),
    ("Patient?gender:not=female", {"zoe", "anon"}),
    ("Patient?identifier=urn:mrn|A-1", {"ada"}),
    ("Patient?identifier=A-1", {"ada", "zoe"}),
    ("Patient?identifier=urn:ssn|", {"zoe"}),
    ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|A-1", {"ada"}),
    ("Patient?active=true", {"ada"}),
    ("Patient?email=ada@example.org", {"ada"}),
    ("Observation?code=http://loinc.org|29463-7", {"weight"}),
    ("Observation?code=|29463-7", set()),
    ("Observation?code:text=body", {"weight"}),
    ("Observation?category=vital-signs", {"weight"}),
    ("Observation?status=final&code=4548-4", {"a1c_high", "a1c_ok"}),
    # token :missing
    ("Patient?identifier:missing=true", {"anon"}),
    ("Patient?identifier:missing=false", {"ada", "zoe"}),
    # string
    ("Patient?name=lov", {"ada"}),
    ("Patient?name=augusta", {"ada"}),
    ("Patient?family=nandu", {"zoe"}),
    ("Patient?family:exact=Ñandú-Öst", {"zoe"}),
    ("Patient?family:exact=nandu-ost", set()),
    ("Patient?family:contains=DU-O", {"zoe"}),
    ("Patient?given=zoe,ada", {"ada", "zoe"}),
    ("Patient?name:missing=true", {"anon"}),
    # date with precision and prefixes
    ("Patient?birthdate=1815", {"ada"}),
    ("Patient?birthdate=1815-12-10", {"ada"}),
    ("Patient?birthdate=1990-06-15", set()),
    ("Patient?birthdate=eq1990", {"zoe"}),
    ("Patient?birthdate=ne1990", {"ada"}),
    ("Patient?birthdate=lt1900", {"ada"}),
    ("Patient?birthdate=gt1900", {"zoe"}),
    ("Patient?birthdate=ge1990-06-30", {"zoe"}),
    ("Patient?birthdate=le1815-12-10", {"ada"}),
    ("Patient?birthdate=sa1815-12-10", {"zoe"}),
    ("Patient?birthdate=eb1990-06-01", {"ada"}),
    ("Observation?date=2024-03-05", {"a1c_high"}),
    ("Observation?date=2024-03-05T08:00:00Z", {"a1c_high"}),
    ("Observation?date=ge2024-01-01&date=lt2024-02-01", {"weight"}),
    ("Observation?date=2024-01-01T08:30:00Z", set()),  # the period is not within that second
    ("Patient?birthdate=ap1816", {"ada"}),  # within 10% of the distance from now
    ("Observation?date=lt2024", {"a1c_ok"}),
    ("Observation?_lastUpdated=gt2000-01-01", {"a1c_high", "a1c_ok", "weight"}),
    # quantity and number
    ("Observation?value-quantity=8.1", {"a1c_high"}),
    ("Observation?value-quantity=8", {"a1c_high"}),  # 8 means [7.5, 8.5)
    ("Observation?value-quantity=gt6", {"a1c_high", "weight"}),
    ("Observation?value-quantity=le5.4|http://unitsofmeasure.org|%", {"a1c_ok"}),
    ("Observation?value-quantity=70||kg", {"weight"}),
    ("Observation?value-quantity=70|http://unitsofmeasure.org|g", set()),
    ("Observation?value-quantity=ne8.1||%", {"a1c_ok"}),
    ("Observation?value-quantity=ap75", {"weight"}),  # 75 ± 10%
    ("Observation?value-quantity=ap80", set()),
    # reference
    ("Observation?subject=Patient/{zoe}", {"weight"}),
    ("Observation?subject:Patient={zoe}", {"weight"}),
    ("Observation?patient={ada}", {"a1c_high", "a1c_ok"}),
    ("Observation?subject=http://localhost/fhir/Patient/{ada}", {"a1c_high", "a1c_ok"}),
    ("Observation?subject:missing=true", set()),
    # _id
    ("Patient?_id={ada},{anon}", {"ada", "anon"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_search_semantics(fhir, charts, query, expected):
    assert _ids(fhir, query.format(**charts)) == {charts[name] for name in expected}


def test_uri_search(fhir):
    made = fhir.create({"resourceType": "Group", "type": "person", "actual": False,
                        "meta": {"profile": ["http://example.org/fhir/StructureDefinition/cohort"]}})
    assert _ids(fhir, "Group?_profile=http://example.org/fhir/StructureDefinition/cohort") == {made["id"]}
    assert _ids(fhir, "Group?_profile:below=http://example.org/fhir/") == {made["id"]}
    assert _ids(fhir, "Group?_profile=http://example.org/fhir/") == set()


def test_literal_comma_is_escaped(fhir):
    made = fhir.create(patient(name=[{"family": "Smith,Jones"}]))
    assert _ids(fhir, "Patient?family:exact=Smith\\,Jones") == {made["id"]}


@pytest.mark.parametrize("query", [
    "Patient?birthdate=1815-13", "Patient?birthdate=xx1815", "Observation?value-quantity=abc",
    "Observation?value-quantity=5|a", "Patient?identifier:of-type=MR|A-1", "Patient?gender:missing=maybe",
])
def test_malformed_values_are_400_with_the_parameter(fhir, query):
    response = fhir.get(query, headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"][0].split(":")[0] in query
