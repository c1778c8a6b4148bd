"""``CodeSystem/$lookup`` and ``CodeSystem/$subsumes`` over HTTP, without a token."""

from __future__ import annotations

import pytest

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
GENDER = "http://hl7.org/fhir/administrative-gender"
SNOMED = "http://snomed.info/sct"


def parameters(response) -> list[dict]:
    assert response.status_code == 200, response.get_json()
    return response.get_json()["parameter"]


def properties(found: list[dict]) -> list[tuple[str, object]]:
    pairs = []
    for p in found:
        if p["name"] == "property":
            code = next(part["valueCode"] for part in p["part"] if part["name"] == "code")
            value = next(v for part in p["part"] if part["name"] == "value" for k, v in part.items()
                         if k.startswith("value"))
            pairs.append((code, value))
    return pairs


def test_lookup_gives_name_version_display_and_the_hierarchy(anonymous):
    found = parameters(anonymous.get(f"CodeSystem/$lookup?system={ACT_CODE}&code=IMP"))
    plain = {p["name"]: p.get("valueString") for p in found if p["name"] in ("name", "version", "display")}
    assert plain == {"name": "v3 Code System ActCode", "version": "2018-08-12", "display": "inpatient encounter"}
    props = properties(found)
    assert ("parent", "_ActEncounterCode") in props
    assert {v for k, v in props if k == "child"} == {"ACUTE", "NONAC"}
    assert any(k == "definition" for k, _ in props)


def test_lookup_of_chosen_properties_and_by_coding(anonymous):
    query = f"system={ACT_CODE}&code=_ActAccountCode&property=notSelectable"
    found = parameters(anonymous.get(f"CodeSystem/$lookup?{query}"))
    assert properties(found) == [("notSelectable", True)]
    found = parameters(anonymous.post("CodeSystem/$lookup", {"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": GENDER, "code": "other"}}]}))
    assert {"name": "display", "valueString": "Other"} in found


@pytest.mark.parametrize(("query", "status", "code"), [
    (f"system={GENDER}&code=nope", 404, "not-found"),
    ("system=http://example.org/cs&code=a", 404, "not-found"),
    (f"system={SNOMED}&code=44054006", 422, "not-supported"),
    (f"system={GENDER}", 400, "invalid"),
    ("code=male", 400, "invalid"),
    (f"system={GENDER}&code=male&code=female", 400, "invalid"),
    (f"system={GENDER}&code=male&version=3.0", 404, "not-found"),
])
def test_lookup_errors(anonymous, query, status, code):
    response = anonymous.get(f"CodeSystem/$lookup?{query}")
    assert response.status_code == status, response.get_json()
    assert response.get_json()["issue"][0]["code"] == code


def test_lookup_is_not_an_instance_operation(anonymous):
    response = anonymous.get("CodeSystem/administrative-gender/$lookup?code=male")
    assert response.status_code == 400 and "CodeSystem/$lookup" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(("a", "b", "outcome"), [
    ("IMP", "IMP", "equivalent"),
    ("_ActEncounterCode", "ACUTE", "subsumes"),
    ("NONAC", "IMP", "subsumed-by"),
    ("AMB", "IMP", "not-subsumed"),
])
def test_subsumes(anonymous, a, b, outcome):
    found = parameters(anonymous.get(f"CodeSystem/$subsumes?system={ACT_CODE}&codeA={a}&codeB={b}"))
    assert found == [{"name": "outcome", "valueCode": outcome}]


def test_subsumes_at_instance_level_and_with_codings(anonymous):
    found = parameters(anonymous.get("CodeSystem/v3-ActCode/$subsumes?codeA=IMP&codeB=ACUTE"))
    assert found[0]["valueCode"] == "subsumes"
    found = parameters(anonymous.post("CodeSystem/$subsumes", {"resourceType": "Parameters", "parameter": [
        {"name": "codingA", "valueCoding": {"system": ACT_CODE, "code": "ACUTE"}},
        {"name": "codingB", "valueCoding": {"system": ACT_CODE, "code": "IMP"}}]}))
    assert found[0]["valueCode"] == "subsumed-by"


@pytest.mark.parametrize(("query", "status"), [
    (f"system={ACT_CODE}&codeA=IMP", 400),
    ("codeA=IMP&codeB=AMB", 400),
    (f"system={ACT_CODE}&codeA=IMP&codeB=NOPE", 404),
    (f"system={SNOMED}&codeA=1&codeB=2", 422),
    ("system=http://example.org/cs&codeA=1&codeB=2", 404),
])
def test_subsumes_errors(anonymous, query, status):
    response = anonymous.get(f"CodeSystem/$subsumes?{query}")
    assert response.status_code == status, response.get_json()


def test_codings_of_two_systems_are_400(anonymous):
    response = anonymous.post("CodeSystem/$subsumes", {"resourceType": "Parameters", "parameter": [
        {"name": "codingA", "valueCoding": {"system": ACT_CODE, "code": "IMP"}},
        {"name": "codingB", "valueCoding": {"system": GENDER, "code": "male"}}]})
    assert response.status_code == 400
