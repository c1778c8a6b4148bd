"""Every FHIR R4 resource type is served: a Synthea-shaped patient record with every type Synthea emits
loads as one transaction and is searched back, reaches the patient's ``$everything`` and export, and the
patient-facing rules apply to the new types; the R4 types without a model class are checked from the R4
structure table."""

from __future__ import annotations

import pytest

from fhirportal.fhir.resource_types import NOT_STORED, SUPPORTED_TYPES, r4_resource_types
from tests.fhir.synthea_bundle import TYPES, patient_bundle, provider_bundle
from tests.support import FHIR_JSON

NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}


def _load(fhir, seed: int = 1) -> dict[str, str]:
    """Load the record; returns the created id of each entry's urn."""
    for bundle in (provider_bundle(seed), patient_bundle(seed)):
        answer = fhir.post("/fhir", bundle)
        assert answer.status_code == 200, answer.get_json()
        created = {e["fullUrl"]: r["response"]["location"].split("/")[1]
                   for e, r in zip(bundle["entry"], answer.get_json()["entry"], strict=True)}
    return created


def test_every_r4_resource_type_is_stored_except_what_is_served_otherwise():
    assert len(r4_resource_types()) == 146
    assert set(SUPPORTED_TYPES) == set(r4_resource_types()) - NOT_STORED
    assert {"Claim", "ExplanationOfBenefit", "CarePlan", "Specimen", "MedicinalProduct", "Binary"} <= set(
        SUPPORTED_TYPES)


def test_a_synthea_record_of_every_type_loads_in_one_transaction_and_is_searched_back(fhir):
    bundle = patient_bundle()
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} | {"Organization", "Practitioner"} == set(TYPES)
    created = _load(fhir)
    patient_id = created[bundle["entry"][[e["resource"]["resourceType"] for e in bundle["entry"]].index("Patient")]
                         ["fullUrl"]]
    for entry in bundle["entry"]:
        resource_type = entry["resource"]["resourceType"]
        found = fhir.get(f"{resource_type}?_id={created[entry['fullUrl']]}").get_json()
        assert [e["resource"]["id"] for e in found["entry"]] == [created[entry["fullUrl"]]], resource_type
    # The references Synthea makes by identifier resolved to the practitioner the first Bundle created.
    practitioners = fhir.get("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999000001").get_json()
    [practitioner] = practitioners["entry"]
    claims = fhir.get(f"Claim?patient={patient_id}").get_json()
    assert len(claims["entry"]) == 1
    eobs = fhir.get(f"ExplanationOfBenefit?patient={patient_id}&_include=ExplanationOfBenefit:claim").get_json()
    assert sorted(e["resource"]["resourceType"] for e in eobs["entry"]) == ["Claim", "ExplanationOfBenefit"]
    plans = fhir.get(f"CarePlan?patient={patient_id}&_revinclude=Provenance:target").get_json()
    assert [e["resource"]["resourceType"] for e in plans["entry"]] == ["CarePlan"]  # not a Provenance target
    conditions = fhir.get(f"Condition?patient={patient_id}&_revinclude=Provenance:target").get_json()
    assert sorted(e["resource"]["resourceType"] for e in conditions["entry"]) == ["Condition", "Provenance"]
    provenance = next(e["resource"] for e in conditions["entry"] if e["resource"]["resourceType"] == "Provenance")
    assert provenance["agent"][0]["who"]["reference"] == f"Practitioner/{practitioner['resource']['id']}"

    everything = fhir.get(f"Patient/{patient_id}/$everything?_count=1000").get_json()
    types = {e["resource"]["resourceType"] for e in everything["entry"]}
    compartment = {"Encounter", "Condition", "AllergyIntolerance", "Observation", "DiagnosticReport",
                   "DocumentReference", "Procedure", "Immunization", "ImmunizationRecommendation",
                   "MedicationRequest", "MedicationAdministration", "Claim", "ExplanationOfBenefit", "CarePlan",
                   "CareTeam", "Goal", "ImagingStudy", "SupplyDelivery", "Coverage", "Device"}
    assert compartment <= types, compartment - types


def test_the_patient_facing_rules_apply_to_the_new_types(fhir, ctx):
    bundle = patient_bundle(2)
    created = _load(fhir, 2)
    by_type = {e["resource"]["resourceType"]: created[e["fullUrl"]] for e in bundle["entry"]}
    patient_id = by_type["Patient"]
    plan = fhir.get(f"CarePlan/{by_type['CarePlan']}").get_json()
    assert fhir.put(f"CarePlan/{plan['id']}", {**plan, "status": "entered-in-error"}).status_code == 200
    procedure = fhir.get(f"Procedure/{by_type['Procedure']}").get_json()
    assert fhir.put(f"Procedure/{procedure['id']}", {**procedure, "meta": {"security": [NOPAT]}}).status_code == 200
    goal = fhir.get(f"Goal/{by_type['Goal']}").get_json()
    assert fhir.put(f"Goal/{goal['id']}", {**goal, "lifecycleStatus": "entered-in-error"}).status_code == 200

    token = ctx.tokens.mint(client_id="app", scope="patient/*.rs", context={"patient": patient_id})
    patient = fhir.with_token(token)
    for resource_type, hidden in (("CarePlan", True), ("Procedure", True), ("Goal", True), ("Claim", False),
                                  ("ExplanationOfBenefit", False), ("CareTeam", False), ("Coverage", False)):
        found = patient.get(f"{resource_type}?patient={patient_id}").get_json()
        assert (len(found.get("entry", [])) == 0) is hidden, resource_type
        read = patient.get(f"{resource_type}/{by_type[resource_type]}")
        assert read.status_code == (404 if hidden else 200), resource_type
    other_bundle = patient_bundle(3)
    other = _load(fhir, 3)
    theirs = {e["resource"]["resourceType"]: other[e["fullUrl"]] for e in other_bundle["entry"]}
    for resource_type in ("Claim", "Device", "CarePlan", "ImmunizationRecommendation", "SupplyDelivery"):
        assert patient.get(f"{resource_type}/{theirs[resource_type]}").status_code in (403, 404), resource_type
        found = patient.get(f"{resource_type}").get_json()
        assert theirs[resource_type] not in {e["resource"]["id"] for e in found.get("entry", [])}, resource_type
    # Outside the compartment: the practice is visible, other patient data (here a VerificationResult
    # naming the other patient) is not.
    assert patient.get("Organization").get_json()["entry"]
    fhir.create({"resourceType": "VerificationResult", "status": "validated",
                 "target": [{"reference": f"Patient/{theirs['Patient']}"}]})
    hidden = patient.get("VerificationResult")
    assert hidden.status_code == 403 or not hidden.get_json().get("entry")


MEDICINAL_PRODUCT = {"resourceType": "MedicinalProduct", "name": [{"productName": "Metformin 500 mg tablets"}],
                     "identifier": [{"system": "https://example.org/mpid", "value": "MP-1"}]}


def test_r4_types_without_a_model_class_are_validated_from_the_structure_table(fhir):
    created = fhir.create(MEDICINAL_PRODUCT)
    assert fhir.get("MedicinalProduct?identifier=MP-1").get_json()["entry"][0]["resource"]["id"] == created["id"]
    for broken, where in (({"name": [{"productName": 5}]}, "MedicinalProduct.name[0].productName"),
                          ({"name": []}, "MedicinalProduct.name"),
                          ({"_status": 1}, "MedicinalProduct._status"),
                          ({"legalStatusOfSupply": [{"text": "x"}]}, "MedicinalProduct.legalStatusOfSupply"),
                          ({"wrong": True}, "MedicinalProduct.wrong")):
        answer = fhir.post("MedicinalProduct", {**MEDICINAL_PRODUCT, **broken}, content_type=FHIR_JSON)
        assert answer.status_code == 422, broken
        assert where in [e for issue in answer.get_json()["issue"] for e in issue.get("expression", [])], broken
    assert len(fhir.get("MedicinalProduct").get_json()["entry"]) == 1  # nothing of the refused writes


@pytest.mark.parametrize("resource_type", ["Parameters", "OperationOutcome"])
def test_what_is_not_a_stored_type_is_refused(fhir, resource_type):
    answer = fhir.post(resource_type, {"resourceType": resource_type})
    assert answer.status_code in (404, 422)
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_a_patient_sees_the_provenance_of_their_own_visible_records_only(fhir, ctx):
    bundle, other_bundle = patient_bundle(4), patient_bundle(5)
    created, other = _load(fhir, 4), _load(fhir, 5)
    mine = {e["resource"]["resourceType"]: created[e["fullUrl"]] for e in bundle["entry"]}
    theirs = {e["resource"]["resourceType"]: other[e["fullUrl"]] for e in other_bundle["entry"]}
    patient = fhir.with_token(ctx.tokens.mint(client_id="app", scope="patient/*.rs",
                                              context={"patient": mine["Patient"]}))
    found = patient.get(f"Condition?patient={mine['Patient']}&_revinclude=Provenance:target").get_json()
    assert sorted(e["resource"]["resourceType"] for e in found["entry"]) == ["Condition", "Provenance"]
    assert patient.get(f"Provenance/{mine['Provenance']}").status_code == 200
    assert patient.get(f"Provenance/{theirs['Provenance']}").status_code in (403, 404)
    assert [e["resource"]["id"] for e in patient.get("Provenance").get_json()["entry"]] == [mine["Provenance"]]

    # A Provenance about a record withheld from the patient (NOPAT) is withheld with it.
    withheld = fhir.create({"resourceType": "Procedure", "status": "completed", "meta": {"security": [NOPAT]},
                            "subject": {"reference": f"Patient/{mine['Patient']}"}, "code": {"text": "withheld"}})
    about_it = fhir.create({"resourceType": "Provenance", "recorded": "2025-03-02T10:00:00Z",
                            "target": [{"reference": f"Procedure/{withheld['id']}"}],
                            "agent": [{"who": {"display": "EHR"}}]})
    assert patient.get(f"Provenance/{about_it['id']}").status_code in (403, 404)
    # One naming the patient directly is the patient's (R4's compartment rule).
    direct = fhir.create({"resourceType": "Provenance", "recorded": "2025-03-02T10:00:00Z",
                          "target": [{"reference": f"Patient/{mine['Patient']}"}],
                          "agent": [{"who": {"display": "EHR"}}]})
    assert patient.get(f"Provenance/{direct['id']}").status_code == 200
