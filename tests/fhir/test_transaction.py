"""transaction and batch Bundles: ordering, urn:uuid and conditional references, all-or-nothing,
batch isolation, idempotent re-push."""

from __future__ import annotations

import base64
import json

from tests.support import observation, patient

MRN = "https://fhirportal.dev/fhir/sid/mrn"
PATIENT_URN = "urn:uuid:6f1d1a4e-0000-4000-8000-000000000001"


def _bundle(kind: str, *entries) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(fhir, document, **kw):
    return fhir.post("/fhir", json=document, content_type="application/fhir+json", **kw)


def _ehr_push(mrn: str = "T1") -> dict:
    """What the EHR sends: a patient and a lab result, both conditional on business identifiers."""
    return _bundle(
        "transaction",
        {"fullUrl": PATIENT_URN,
         "resource": patient(identifier=[{"system": MRN, "value": mrn}]),
         "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|{mrn}"}},
        {"fullUrl": "urn:uuid:6f1d1a4e-0000-4000-8000-000000000002",
         "resource": observation("x", subject={"reference": PATIENT_URN},
                                 identifier=[{"system": "urn:lab", "value": f"{mrn}-hba1c"}]),
         "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier=urn:lab|{mrn}-hba1c"}},
    )


def _count(fhir, query: str) -> int:
    return fhir.get(query + "&_total=accurate&_count=0").get_json()["total"]


def test_transaction_creates_and_rewrites_urn_references(fhir):
    response = _post(fhir, _ehr_push())
    assert response.status_code == 200
    result = response.get_json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location = result["entry"][0]["response"]["location"]
    patient_id = patient_location.split("/")[1]
    assert result["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert result["entry"][0]["response"]["etag"] == 'W/"1"'


def test_re_pushing_the_same_transaction_leaves_one_copy(fhir):
    _post(fhir, _ehr_push())
    again = _post(fhir, _ehr_push()).get_json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]
    assert _count(fhir, f"Patient?identifier={MRN}|T1") == 1
    assert _count(fhir, "Observation?identifier=urn:lab|T1-hba1c") == 1
    # unchanged content: no new version either
    assert again["entry"][0]["response"]["etag"] == 'W/"1"'


def test_failing_entry_rolls_back_everything(fhir):
    document = _ehr_push()
    document["entry"].append({"resource": observation("x", status="bogus", subject={"reference": PATIENT_URN}),
                              "request": {"method": "POST", "url": "Observation"}})
    response = _post(fhir, document)
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[2].resource.status"]
    assert _count(fhir, "Patient?gender=female") == 0
    assert _count(fhir, "Observation?status=final") == 0


def test_reference_to_nothing_fails_the_transaction(fhir):
    document = _bundle("transaction", {"resource": observation("ghost"), "request": {"method": "POST",
                                                                                      "url": "Observation"}})
    response = _post(fhir, document)
    assert response.status_code == 422
    assert response.get_json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.subject.reference"]


def test_entries_may_reference_entries_processed_later(fhir):
    """An Observation (POST) may point at a Patient created by a later PUT: checks run at the end."""
    document = _bundle(
        "transaction",
        {"resource": observation("late"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient(id="late"), "request": {"method": "PUT", "url": "Patient/late"}},
    )
    assert _post(fhir, document).status_code == 200


def test_conditional_reference_is_resolved(fhir):
    target = fhir.create(patient(identifier=[{"system": MRN, "value": "CR1"}]))
    document = _bundle("transaction", {
        "resource": observation("x", subject={"reference": f"Patient?identifier={MRN}|CR1"}),
        "request": {"method": "POST", "url": "Observation"}})
    result = _post(fhir, document).get_json()
    assert result["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{target['id']}"
    unresolved = _bundle("transaction", {
        "resource": observation("x", subject={"reference": f"Patient?identifier={MRN}|nobody"}),
        "request": {"method": "POST", "url": "Observation"}})
    assert _post(fhir, unresolved).status_code == 422


def test_processing_order_delete_before_create_and_get_last(fhir):
    old = fhir.create(patient(identifier=[{"system": MRN, "value": "ORD"}]))
    document = _bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|ORD"}},
        {"resource": patient(identifier=[{"system": MRN, "value": "ORD"}]),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|ORD"}},
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
    )
    result = _post(fhir, document).get_json()
    # DELETE ran first, so the conditional create found nothing and created; GET ran last and sees the new one
    assert result["entry"][2]["response"]["status"] == "200 OK"
    assert result["entry"][1]["response"]["status"] == "201 Created"
    found = result["entry"][0]["resource"]
    assert [e["resource"]["id"] for e in found["entry"]] == [result["entry"][1]["resource"]["id"]]


def test_if_match_in_a_transaction(fhir):
    created = fhir.create(patient())
    url = f"Patient/{created['id']}"
    stale = _bundle("transaction", {"resource": dict(created, gender="male"),
                                    "request": {"method": "PUT", "url": url, "ifMatch": 'W/"9"'}})
    assert _post(fhir, stale).status_code == 412
    current = _bundle("transaction", {"resource": dict(created, gender="male"),
                                      "request": {"method": "PUT", "url": url, "ifMatch": 'W/"1"'}})
    assert _post(fhir, current).status_code == 200


def test_patch_entry_with_binary_json_patch(fhir):
    created = fhir.create(patient())
    operations = [{"op": "replace", "path": "/gender", "value": "male"}]
    document = _bundle("transaction", {
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                     "data": base64.b64encode(json.dumps(operations).encode()).decode()},
        "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}})
    result = _post(fhir, document).get_json()
    assert result["entry"][0]["resource"]["gender"] == "male"


def test_deleting_something_still_referenced_fails_but_deleting_both_works(fhir):
    subject = fhir.create(patient())
    obs = fhir.create(observation(subject["id"]))
    only_patient = _bundle("transaction", {"request": {"method": "DELETE", "url": f"Patient/{subject['id']}"}})
    assert _post(fhir, only_patient).status_code == 409
    both = _bundle("transaction",
                   {"request": {"method": "DELETE", "url": f"Patient/{subject['id']}"}},
                   {"request": {"method": "DELETE", "url": f"Observation/{obs['id']}"}})
    assert _post(fhir, both).status_code == 200
    assert fhir.get(f"Patient/{subject['id']}").status_code == 410


def test_batch_entries_are_independent(fhir):
    document = _bundle(
        "batch",
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("ghost"), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        {"resource": patient(gender="male"), "request": {"method": "POST", "url": "Patient"}},
    )
    response = _post(fhir, document)
    assert response.status_code == 200
    result = response.get_json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[0].startswith("201") and statuses[3].startswith("201")
    assert statuses[1] == "422" and statuses[2] == "404"
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert _count(fhir, "Patient?gender=female,male") == 2


def test_malformed_bundles_are_400(fhir):
    assert _post(fhir, {"resourceType": "Patient"}).status_code == 400
    assert _post(fhir, _bundle("collection")).status_code == 400
    assert _post(fhir, _bundle("transaction", {"resource": patient()})).status_code == 400
    assert _post(fhir, _bundle("transaction", {"request": {"method": "POST", "url": "Patient"}})).status_code == 400
    bad_method = _bundle("transaction", {"request": {"method": "TRACE", "url": "Patient"}})
    assert _post(fhir, bad_method).get_json()["issue"][0]["expression"] == ["Bundle.entry[0].request.method"]
    assert _post(fhir, _bundle("transaction", {"request": {"method": "GET", "url": "Spaceship/1"}})).status_code == 404
    twice = {"fullUrl": PATIENT_URN, "resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    duplicate = _bundle("transaction", twice, dict(twice))
    assert _post(fhir, duplicate).status_code == 400
    assert _count(fhir, "Patient?gender=female") == 0


def test_base_url_without_trailing_slash(fhir):
    document = _bundle("batch", {"request": {"method": "GET", "url": "Patient?gender=female"}})
    assert fhir.post("/fhir/", json=document, content_type="application/fhir+json").status_code == 200
    assert fhir.post("/fhir", json=document, content_type="application/fhir+json").status_code == 200


def test_put_revives_a_deleted_resource_and_one_resource_cannot_be_written_twice(fhir):
    fhir.put("Patient/revive", patient(id="revive"))
    fhir.delete("Patient/revive")
    document = _bundle("transaction", {"resource": patient(id="revive"), "request": {"method": "PUT",
                                                                                      "url": "Patient/revive"}})
    result = _post(fhir, document).get_json()
    assert result["entry"][0]["response"]["status"] == "201 Created"
    assert result["entry"][0]["response"]["etag"] == 'W/"3"'
    twice = _bundle("transaction",
                    {"resource": patient(id="dup"), "request": {"method": "PUT", "url": "Patient/dup"}},
                    {"resource": patient(id="dup"), "request": {"method": "PUT", "url": "Patient/dup"}})
    response = _post(fhir, twice)
    assert response.status_code == 400
    assert fhir.get("Patient/dup").status_code == 404


def test_large_transaction_of_new_resources_is_written_whole(fhir):
    entries = [{"resource": patient(id=f"bulk-{n}"), "request": {"method": "PUT", "url": f"Patient/bulk-{n}"}}
               for n in range(520)]
    entries += [{"resource": observation(f"bulk-{n}", id=f"bulk-o{n}"),
                 "request": {"method": "PUT", "url": f"Observation/bulk-o{n}"}} for n in range(0, 520, 7)]
    assert _post(fhir, _bundle("transaction", *entries)).status_code == 200
    assert _count(fhir, "Patient?family=Lovelace") == 520
    assert _count(fhir, "Observation?patient=bulk-7") == 1
    assert fhir.get("Patient/bulk-519/_history").get_json()["total"] == 1
