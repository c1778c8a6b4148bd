"""Validation on every write: structure, required bindings, reference targets and existence (422)."""

from __future__ import annotations

import pytest

from tests.support import observation, patient


def _issues(response) -> list[dict]:
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (patient(gender="robot"), "Patient.gender"),
        (patient(birthDate="10/12/1985"), "Patient.birthDate"),
        (patient(name=[{"family": 7}]), "Patient.name[0].family"),
        (patient(favouriteColour="blue"), "Patient.favouriteColour"),
        (patient(name=[{"use": "nickname-ish", "family": "X"}]), "Patient.name[0].use"),
    ],
)
def test_invalid_patient_is_422_pointing_at_the_element(fhir, body, expression):
    response = fhir.post("Patient", body)
    assert response.status_code == 422
    assert expression in [e for issue in _issues(response) for e in issue.get("expression", [])]


def test_required_status_binding_is_checked(fhir):
    subject = fhir.create(patient())
    response = fhir.post("Observation", observation(subject["id"], status="done"))
    assert response.status_code == 422
    issue = _issues(response)[0]
    assert issue["expression"] == ["Observation.status"]
    assert issue["code"] == "code-invalid"


def test_missing_required_element_is_422(fhir):
    subject = fhir.create(patient())
    body = observation(subject["id"])
    del body["status"]
    response = fhir.post("Observation", body)
    assert response.status_code == 422
    assert ["Observation.status"] in [i.get("expression") for i in _issues(response)]


def test_reference_to_missing_resource_is_422(fhir):
    response = fhir.post("Observation", observation("ghost"))
    assert response.status_code == 422
    issue = _issues(response)[0]
    assert issue["expression"] == ["Observation.subject.reference"]
    assert "Patient/ghost" in issue["diagnostics"]


def test_reference_to_deleted_resource_is_422(fhir):
    subject = fhir.create(patient())
    fhir.delete(f"Patient/{subject['id']}")
    assert fhir.post("Observation", observation(subject["id"])).status_code == 422


def test_reference_of_a_type_not_allowed_there_is_422(fhir):
    practitioner = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    body = observation("x", subject={"reference": f"Practitioner/{practitioner['id']}"})
    response = fhir.post("Observation", body)
    assert response.status_code == 422
    assert "not allowed" in _issues(response)[0]["diagnostics"]


def test_absolute_reference_to_own_base_is_checked_and_external_allowed(fhir):
    subject = fhir.create(patient())
    own = observation("x", subject={"reference": f"http://localhost/fhir/Patient/{subject['id']}"})
    assert fhir.post("Observation", own).status_code == 201
    missing = observation("x", subject={"reference": "http://localhost/fhir/Patient/nobody"})
    assert fhir.post("Observation", missing).status_code == 422
    external = observation("x", subject={"reference": "https://elsewhere.example/fhir/Patient/1"})
    assert fhir.post("Observation", external).status_code == 201


def test_nested_reference_in_backbone_is_checked(fhir):
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [{"actor": {"reference": "Patient/nobody"}, "status": "accepted"}],
    }
    response = fhir.post("Appointment", body)
    assert response.status_code == 422
    assert _issues(response)[0]["expression"] == ["Appointment.participant[0].actor.reference"]


def test_urn_reference_outside_a_bundle_is_422(fhir):
    body = observation("x", subject={"reference": "urn:uuid:7f0c1c1e-5b1a-4d2a-9c1e-1f7d8d5f7a10"})
    assert fhir.post("Observation", body).status_code == 422


def test_failed_write_stores_nothing(fhir, ctx):
    fhir.post("Observation", observation("ghost"))
    with ctx.database.read() as conn:
        assert ctx.repository.history(conn, count=10).entries == []


def test_validate_operation(fhir):
    subject = fhir.create(patient())
    good = fhir.post("Observation/$validate", observation(subject["id"]))
    assert good.status_code == 200
    assert _issues(good)[0]["severity"] == "information"
    bad = fhir.post("Observation/$validate", observation(subject["id"], status="nope"))
    assert bad.status_code == 200
    assert _issues(bad)[0]["expression"] == ["Observation.status"]
    wrapped = fhir.post("Patient/$validate", {"resourceType": "Parameters",
                                              "parameter": [{"name": "resource", "resource": patient()}]})
    assert _issues(wrapped)[0]["severity"] == "information"


def test_unknown_operation_is_404(fhir):
    assert fhir.post("Patient/$teleport", {}).status_code == 404
