"""create / read / vread / update / patch / delete over the Flask test client."""

from __future__ import annotations

from tests.support import observation, patient


def test_create_assigns_id_version_and_headers(fhir):
    response = fhir.post("Patient", patient(id="client-chosen"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == f"http://localhost/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["Content-Type"].startswith("application/fhir+json")


def test_read_returns_what_was_stored(fhir):
    created = fhir.create(patient())
    response = fhir.get(f"Patient/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == created
    assert response.headers["ETag"] == 'W/"1"'


def test_read_unknown_id_is_404_with_outcome(fhir):
    response = fhir.get("Patient/does-not-exist")
    assert response.status_code == 404
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"


def test_unknown_type_is_404(fhir):
    response = fhir.get("Spaceship/1")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert fhir.get("Spaceship").status_code == 404


def test_invalid_id_in_url_is_400(fhir):
    response = fhir.get("Patient/" + "x" * 65)
    assert response.status_code == 400


def test_update_creates_new_version_and_keeps_old(fhir):
    created = fhir.create(patient())
    changed = dict(created, gender="other")
    response = fhir.put(f"Patient/{created['id']}", changed)
    assert response.status_code == 200
    assert response.get_json()["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    old = fhir.get(f"Patient/{created['id']}/_history/1")
    assert old.status_code == 200
    assert old.get_json()["gender"] == "female"
    assert fhir.get(f"Patient/{created['id']}/_history/2").get_json()["gender"] == "other"
    assert fhir.get(f"Patient/{created['id']}/_history/3").status_code == 404


def test_update_with_unchanged_content_makes_no_new_version(fhir):
    created = fhir.create(patient())
    response = fhir.put(f"Patient/{created['id']}", created)
    assert response.status_code == 200
    assert response.get_json()["meta"]["versionId"] == "1"


def test_update_as_create_with_client_id(fhir):
    response = fhir.put("Patient/ehr-123", patient(id="ehr-123"))
    assert response.status_code == 201
    assert response.get_json()["id"] == "ehr-123"
    assert fhir.get("Patient/ehr-123").status_code == 200


def test_update_id_mismatch_is_400(fhir):
    response = fhir.put("Patient/a", patient(id="b"))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["Patient.id"]
    assert fhir.get("Patient/a").status_code == 404


def test_update_without_id_in_body_is_400(fhir):
    assert fhir.put("Patient/a", patient()).status_code == 400


def test_body_type_must_match_url(fhir):
    response = fhir.post("Observation", patient())
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["resourceType"]


def test_if_match_current_version_succeeds_and_stale_is_412(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    ok = fhir.put(path, dict(created, gender="male"), headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = fhir.put(path, dict(created, gender="other"), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.get_json()["resourceType"] == "OperationOutcome"
    assert fhir.get(path).get_json()["gender"] == "male"


def test_malformed_if_match_is_400(fhir):
    created = fhir.create(patient())
    response = fhir.put(f"Patient/{created['id']}", created, headers={"If-Match": "yesterday"})
    assert response.status_code == 400


def test_conditional_read_304(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    assert fhir.get(path, headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert fhir.get(path, headers={"If-None-Match": 'W/"2"'}).status_code == 200
    last_modified = fhir.get(path).headers["Last-Modified"]
    assert fhir.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert fhir.get(path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200


def test_delete_then_read_is_410_and_history_keeps_it(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    response = fhir.delete(path)
    assert response.status_code == 200
    assert response.get_json()["resourceType"] == "OperationOutcome"
    gone = fhir.get(path)
    assert gone.status_code == 410
    assert gone.get_json()["issue"][0]["code"] == "deleted"
    assert fhir.get(f"{path}/_history/1").status_code == 200
    assert fhir.get(f"{path}/_history/2").status_code == 410
    history = fhir.get(f"{path}/_history").get_json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    # deleting again is harmless; updating revives it as a new version
    assert fhir.delete(path).status_code == 200
    revived = fhir.put(path, created)
    assert revived.status_code == 201
    assert revived.get_json()["meta"]["versionId"] == "3"


def test_delete_unknown_is_harmless(fhir):
    assert fhir.delete("Patient/nobody").status_code == 200


def test_delete_with_stale_if_match_is_412(fhir):
    created = fhir.create(patient())
    fhir.put(f"Patient/{created['id']}", dict(created, gender="male"))
    assert fhir.delete(f"Patient/{created['id']}", headers={"If-Match": 'W/"1"'}).status_code == 412
    assert fhir.get(f"Patient/{created['id']}").status_code == 200


def test_post_on_instance_is_405(fhir):
    created = fhir.create(patient())
    response = fhir.post(f"Patient/{created['id']}", created)
    assert response.status_code == 405
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unsupported_method_on_type_is_405(fhir):
    response = fhir.patch("/fhir/Patient", json=[], content_type=None)
    assert response.status_code == 405
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_prefer_return(fhir):
    minimal = fhir.post("Patient", patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.data == b""
    assert minimal.headers["Location"]
    outcome = fhir.post("Patient", patient(), headers={"Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201
    assert outcome.get_json()["resourceType"] == "OperationOutcome"
    representation = fhir.post("Patient", patient(), headers={"Prefer": "return=representation"})
    assert representation.get_json()["resourceType"] == "Patient"


def test_observation_round_trip_with_reference(fhir):
    subject = fhir.create(patient())
    created = fhir.create(observation(subject["id"]))
    assert fhir.get(f"Observation/{created['id']}").get_json()["valueQuantity"]["value"] == 6.1


def test_delete_of_a_referenced_resource_is_409_until_the_referrer_goes(fhir):
    subject = fhir.create(patient())
    obs = fhir.create(observation(subject["id"]))
    refused = fhir.delete(f"Patient/{subject['id']}")
    assert refused.status_code == 409
    assert f"Observation/{obs['id']}" in refused.get_json()["issue"][0]["diagnostics"]
    assert fhir.get(f"Patient/{subject['id']}").status_code == 200
    assert fhir.delete(f"Observation/{obs['id']}").status_code == 200
    assert fhir.delete(f"Patient/{subject['id']}").status_code == 200


def test_self_reference_does_not_block_delete(fhir):
    created = fhir.create(patient())
    fhir.put(f"Patient/{created['id']}", dict(created, link=[{"other": {"reference": f"Patient/{created['id']}"},
                                                              "type": "seealso"}]))
    assert fhir.delete(f"Patient/{created['id']}").status_code == 200
