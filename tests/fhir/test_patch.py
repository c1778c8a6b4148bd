"""JSON Patch (RFC 6902) on ``PATCH [type]/[id]``."""

from __future__ import annotations

from tests.support import patient


def test_json_patch_applies_and_versions(fhir):
    created = fhir.create(patient())
    response = fhir.patch(f"Patient/{created['id']}", [{"op": "replace", "path": "/gender", "value": "male"},
                                                       {"op": "add", "path": "/active", "value": True}])
    assert response.status_code == 200
    body = response.get_json()
    assert body["gender"] == "male" and body["active"] is True
    assert body["meta"]["versionId"] == "2"


def test_patch_with_if_match(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    op = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert fhir.patch(path, op, headers={"If-Match": 'W/"2"'}).status_code == 412
    assert fhir.patch(path, op, headers={"If-Match": 'W/"1"'}).status_code == 200


def test_patch_that_makes_resource_invalid_is_422_and_changes_nothing(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    response = fhir.patch(path, [{"op": "replace", "path": "/gender", "value": "robot"}])
    assert response.status_code == 422
    assert response.get_json()["issue"][0]["expression"] == ["Patient.gender"]
    assert fhir.get(path).get_json()["meta"]["versionId"] == "1"


def test_patch_failing_test_op_is_422(fhir):
    created = fhir.create(patient())
    response = fhir.patch(f"Patient/{created['id']}", [{"op": "test", "path": "/gender", "value": "male"}])
    assert response.status_code == 422


def test_patch_may_not_change_id(fhir):
    created = fhir.create(patient())
    response = fhir.patch(f"Patient/{created['id']}", [{"op": "replace", "path": "/id", "value": "other"}])
    assert response.status_code == 422


def test_patch_needs_json_patch_content_type(fhir):
    created = fhir.create(patient())
    response = fhir.patch(f"Patient/{created['id']}", [], content_type="application/fhir+json")
    assert response.status_code == 415


def test_patch_body_must_be_an_array_of_ops(fhir):
    created = fhir.create(patient())
    assert fhir.patch(f"Patient/{created['id']}", {"op": "remove"}).status_code == 400
    assert fhir.patch(f"Patient/{created['id']}", [{"path": "/x"}]).status_code == 400


def test_patch_unknown_resource_is_404(fhir):
    assert fhir.patch("Patient/nope", [{"op": "remove", "path": "/gender"}]).status_code == 404


def test_patch_whose_path_is_not_a_json_pointer_is_400(fhir):
    """A ``path`` that does not start with '/' is the client's mistake (found by the OpenAPI fuzz: it was a
    500): 400 with an OperationOutcome naming the problem, and the resource is unchanged."""
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    for op in ({"op": "copy", "from": "/gender", "path": "x"}, {"op": "replace", "path": "gender", "value": "male"}):
        response = fhir.patch(path, [op])
        assert response.status_code == 400, op
        issue = response.get_json()["issue"][0]
        assert issue["code"] == "invalid" and "JSON Patch" in issue["diagnostics"]
    assert fhir.get(path).get_json()["meta"]["versionId"] == "1"
