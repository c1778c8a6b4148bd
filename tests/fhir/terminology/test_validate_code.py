"""``ValueSet/$validate-code`` and ``CodeSystem/$validate-code`` over HTTP, without a token."""

from __future__ import annotations

import pytest

GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER = "http://hl7.org/fhir/administrative-gender"
SEXUAL_ORIENTATION = "http://hl7.org/fhir/us/core/ValueSet/us-core-sexual-orientation"
CONDITION_CODES = "http://hl7.org/fhir/us/core/ValueSet/us-core-condition-code"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
SNOMED = "http://snomed.info/sct"


def result(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.get_json()["parameter"]}


def test_a_code_in_the_value_set(anonymous):
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}&code=female"))
    assert answer == {"result": True, "display": "Female"}


def test_a_code_not_in_the_value_set_or_of_another_system(anonymous):
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}&code=fem"))
    assert answer["result"] is False and "fem" in answer["message"]
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={GENDER_VS}&system={NULL_FLAVOR}&code=UNK"))
    assert answer["result"] is False


def test_the_display_is_checked(anonymous):
    query = f"ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}&code=female"
    assert result(anonymous.get(query + "&display=FEMALE"))["result"] is True  # case-insensitive
    answer = result(anonymous.get(query + "&display=Woman"))
    assert answer["result"] is False and "'Female'" in answer["message"]


def test_a_listed_code_of_a_system_not_held_is_valid(anonymous):
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={SEXUAL_ORIENTATION}&system={SNOMED}&code=20430005"))
    assert answer["result"] is True
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={SEXUAL_ORIENTATION}&system={SNOMED}&code=12345"))
    assert answer["result"] is False


def test_a_code_the_server_cannot_judge_is_422_with_the_reason(anonymous):
    response = anonymous.get(f"ValueSet/$validate-code?url={CONDITION_CODES}&system={SNOMED}&code=44054006")
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "not-supported" and "SNOMED CT" in issue["diagnostics"]
    # ... but a system the value set does not include at all is decided without SNOMED CT
    answer = result(anonymous.get(f"ValueSet/$validate-code?url={CONDITION_CODES}&system={GENDER}&code=male"))
    assert answer["result"] is False


def test_coding_and_codeable_concept_in_a_post(anonymous):
    coding = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": GENDER_VS}, {"name": "coding", "valueCoding": {"system": GENDER, "code": "male"}}]}
    assert result(anonymous.post("ValueSet/$validate-code", coding))["result"] is True
    concept = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": GENDER_VS}, {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
            {"system": NULL_FLAVOR, "code": "UNK"}, {"system": GENDER, "code": "unknown", "display": "Unknown"}]}}]}
    assert result(anonymous.post("ValueSet/$validate-code", concept)) == {"result": True, "display": "Unknown"}
    concept["parameter"][1]["valueCodeableConcept"]["coding"].pop()
    answer = result(anonymous.post("ValueSet/$validate-code", concept))
    assert answer["result"] is False and "UNK" in answer["message"]


def test_instance_level(anonymous):
    assert result(anonymous.get(f"ValueSet/administrative-gender/$validate-code?system={GENDER}&code=other"))[
        "result"] is True
    assert result(anonymous.get("CodeSystem/administrative-gender/$validate-code?code=other"))["result"] is True


@pytest.mark.parametrize(("query", "status"), [
    (f"ValueSet/$validate-code?system={GENDER}&code=male", 400),  # no url
    (f"ValueSet/$validate-code?url={GENDER_VS}&code=male", 400),  # no system
    (f"ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}", 400),  # no code
    (f"ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}&code=male&abstract=true", 400),  # unsupported
    (f"ValueSet/$validate-code?url=http://example.org/vs&system={GENDER}&code=male", 404),
    ("ValueSet/no-such/$validate-code?system=x&code=y", 404),
    ("CodeSystem/$validate-code?url=http://example.org/cs&code=a", 404),
    (f"CodeSystem/$validate-code?url={GENDER}&version=9&code=male", 404),
    (f"CodeSystem/$validate-code?url={SNOMED}&code=44054006", 422),
    ("CodeSystem/$validate-code?code=male", 400),
])
def test_errors(anonymous, query, status):
    response = anonymous.get(query)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_code_system_validate_code(anonymous):
    assert result(anonymous.get(f"CodeSystem/$validate-code?url={GENDER}&code=male&display=Male")) == {
        "result": True, "display": "Male"}
    answer = result(anonymous.get(f"CodeSystem/$validate-code?url={GENDER}&code=mail"))
    assert answer["result"] is False and "mail" in answer["message"]
    answer = result(anonymous.post("CodeSystem/$validate-code", {"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": GENDER, "code": "female", "display": "Mrs"}}]}))
    assert answer["result"] is False and "Mrs" in answer["message"]
