"""Writes claiming a US Core profile are validated against it (422 naming the element and the profile's
rule, nothing written); ``$validate`` takes ``profile``; an unknown profile is accepted unchecked on
writes and refused by ``$validate``."""

from __future__ import annotations

import copy

from fhirportal.definitions.packages import examples

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"


def _patient() -> dict:
    body = copy.deepcopy(examples()["Patient-example.json"])
    body.pop("id")
    return body


def test_a_conforming_resource_is_accepted_and_a_broken_one_refused_at_the_element(us_core_fhir):
    assert us_core_fhir.post("Patient", _patient()).status_code == 201
    broken = _patient()
    broken.pop("identifier")  # us-core-patient: identifier 1..*
    answer = us_core_fhir.post("Patient", broken)
    assert answer.status_code == 422, answer.get_json()
    issues = answer.get_json()["issue"]
    assert any("Patient.identifier" in e for i in issues for e in i.get("expression", [])), issues
    assert any("us-core-patient" in i["diagnostics"].lower().replace(" ", "-") or "US Core Patient" in i["diagnostics"]
               for i in issues), issues
    assert len(us_core_fhir.get("Patient?_count=100").get_json().get("entry", [])) == 1  # nothing written


def test_required_bindings_are_checked_through_the_terminology(us_core_fhir):
    body = copy.deepcopy(examples()["Observation-blood-pressure.json"])
    body.pop("id")
    for reference in ("subject", "encounter"):
        body.pop(reference, None)
    body["subject"] = {"display": "someone"}
    body["status"] = "final"
    body["category"][0]["coding"][0]["code"] = "laboratory"  # the VSCat slice fixes vital-signs
    answer = us_core_fhir.post("Observation/$validate", {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": body}]})
    assert answer.status_code == 200
    diagnostics = " ".join(i["diagnostics"] for i in answer.get_json()["issue"])
    assert "category" in diagnostics, answer.get_json()


def test_validate_against_a_profile_the_resource_does_not_claim(us_core_fhir):
    plain = {"resourceType": "Patient", "name": [{"family": "Doe"}]}
    assert us_core_fhir.post("Patient/$validate", plain).get_json()["issue"][0]["severity"] == "information"
    answer = us_core_fhir.post(f"Patient/$validate?profile={US_CORE}us-core-patient", plain)
    issues = answer.get_json()["issue"]
    assert answer.status_code == 200 and any(i["severity"] == "error" for i in issues), issues
    in_body = us_core_fhir.post("Patient/$validate", {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": plain}, {"name": "profile", "valueUri": f"{US_CORE}us-core-patient"}]})
    assert [i["expression"] for i in in_body.get_json()["issue"]] == [i["expression"] for i in issues]


def test_an_unknown_profile(us_core_fhir):
    claims = {"resourceType": "Patient", "meta": {"profile": ["http://example.org/StructureDefinition/mine"]},
              "name": [{"family": "Doe"}]}
    assert us_core_fhir.post("Patient", claims).status_code == 201  # accepted, unchecked
    refused = us_core_fhir.post("Patient/$validate?profile=http://example.org/StructureDefinition/mine", claims)
    assert refused.status_code == 400 and refused.get_json()["issue"][0]["code"] == "not-supported"
