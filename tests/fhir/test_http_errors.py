"""Content negotiation and HTTP-level errors: every one an OperationOutcome, never a 500."""

from __future__ import annotations

import pytest

from tests.support import patient


def _outcome(response):
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome", body
    return body


def test_json_is_default_and_format_param_is_honoured(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    assert fhir.get(path).headers["Content-Type"].startswith("application/fhir+json")
    assert fhir.get(path + "?_format=json").headers["Content-Type"].startswith("application/fhir+json")
    assert fhir.get(path + "?_format=application/json").headers["Content-Type"].startswith("application/json")
    assert fhir.get(path, headers={"Accept": "application/json"}).headers["Content-Type"].startswith(
        "application/json")
    assert fhir.get(path, headers={"Accept": "text/html,*/*;q=0.8"}).status_code == 200


@pytest.mark.parametrize("query,headers", [("?_format=text/turtle", {}), ("", {"Accept": "text/turtle"}),
                                           ("", {"Accept": "application/fhir+xml;q=0, text/html"})])
def test_unsupported_format_is_406(fhir, query, headers):
    created = fhir.create(patient())
    response = fhir.get(f"Patient/{created['id']}{query}", headers=headers)
    assert response.status_code == 406
    _outcome(response)


def test_pretty(fhir):
    created = fhir.create(patient())
    pretty = fhir.get(f"Patient/{created['id']}?_pretty=true")
    assert b'\n  "id"' in pretty.data
    assert b"\n" not in fhir.get(f"Patient/{created['id']}").data


def test_unsupported_body_type_is_415(fhir):
    response = fhir.post("Patient", patient(), content_type="text/turtle")
    assert response.status_code == 415
    _outcome(response)


def test_malformed_json_is_400(fhir):
    response = fhir.post("/fhir/Patient", data=b'{"resourceType": "Patient",', content_type="application/fhir+json")
    assert response.status_code == 400
    assert "JSON" in _outcome(response)["issue"][0]["diagnostics"]


@pytest.mark.parametrize("payload", [b"[]", b'"text"', b"null", b"{}", b"   "])
def test_bodies_that_are_not_resources_are_400(fhir, payload):
    response = fhir.post("/fhir/Patient", data=payload, content_type="application/fhir+json")
    assert response.status_code == 400
    _outcome(response)


def test_too_large_body_is_413(fhir, settings):
    payload = b'{"resourceType":"Patient","text":"' + b"x" * settings.max_body_bytes + b'"}'
    response = fhir.post("/fhir/Patient", data=payload, content_type="application/fhir+json")
    assert response.status_code == 413
    _outcome(response)


def test_unknown_path_is_404_outcome(fhir):
    response = fhir.get("/fhir/Patient/1/_history/1/extra/parts")
    assert response.status_code == 404
    _outcome(response)


def test_bad_version_in_vread_is_404(fhir):
    created = fhir.create(patient())
    assert fhir.get(f"Patient/{created['id']}/_history/latest").status_code == 404


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient", "name": "not-a-list"},
    {"resourceType": "Patient", "birthDate": {"nested": True}},
    {"resourceType": "Patient", "contact": [{"relationship": [{"coding": "x"}]}]},
    {"resourceType": "Patient", "meta": {"versionId": 5}},
    {"resourceType": "Patient", "extension": [{"url": 1}]},
])
def test_garbage_never_gives_500(fhir, body):
    response = fhir.post("Patient", body)
    assert 400 <= response.status_code < 500
    _outcome(response)


@pytest.mark.parametrize("depth", [70, 100_000])
def test_deeply_nested_bodies_are_400_not_500(fhir, depth):
    payload = b'{"resourceType":"Patient","extension":' + b"[" * depth + b"]" * depth + b"}"
    response = fhir.post("/fhir/Patient", data=payload, content_type="application/fhir+json")
    assert response.status_code in (400, 413)
    _outcome(response)


def test_nested_extensions_within_the_limit_are_fine(fhir):
    extension = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(10):
        extension = {"url": "http://example.org/branch", "extension": [extension]}
    assert fhir.post("Patient", {"resourceType": "Patient", "extension": [extension]}).status_code == 201


@pytest.mark.parametrize("path", [
    "Patient?birthdate=9999-12-31T23:59:59-14:00",
    "Patient?birthdate=0001-01-01T00:00:00+14:00",
    "Patient?_lastUpdated=lt9999-12-31T23:59:59-14:00",
    "_history?_since=9999-12-31T23:59:59-14:00",
    "Patient/x/_history/99999999999999999999999",
    "Patient?_cursor=WzEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MF0",
    "Observation?value-quantity=1e400",
    "Patient?name=%00",
])
def test_extreme_query_values_never_give_500(fhir, path):
    response = fhir.get(path)
    assert response.status_code < 500, response.get_json()


def test_extreme_dates_in_resources_are_stored_and_found(fhir):
    created = fhir.post("Patient", {"resourceType": "Patient", "birthDate": "9999-12-31"})
    assert created.status_code == 201
    assert fhir.get("Patient?birthdate=9999-12-31").get_json()["entry"][0]["resource"]["id"] == created.get_json()["id"]


def test_nul_characters_are_400(fhir):
    body = b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'
    assert fhir.post("/fhir/Patient", data=body, content_type="application/fhir+json").status_code == 400
    assert fhir.get("/fhir/Patient?name=%00").status_code == 400


@pytest.mark.parametrize(("depth", "refused"), [(63, False), (64, False), (65, True)])
def test_the_nesting_limit_counts_the_top_level_as_one(depth, refused):
    from fhirportal.fhir.negotiation import MAX_DEPTH, _deeper_than

    document: list = []
    for _ in range(depth - 1):
        document = [document, {"a": 1}]
    assert MAX_DEPTH == 64
    assert _deeper_than(document, MAX_DEPTH) is refused


def test_an_id_with_a_slash_is_no_route_not_a_redirect_to_another_resource(fhir):
    """``Patient/%2F0`` arrives as ``Patient//0``: a 404 OperationOutcome, never a 308 to ``Patient/0``
    (which a client following it would update instead)."""
    for method in ("GET", "PUT", "DELETE"):
        answer = fhir.client.open("/fhir/Patient/%2F0", method=method, json={"resourceType": "Patient", "id": "0"},
                                  headers={"Authorization": f"Bearer {fhir.token}"})
        assert answer.status_code == 404 and answer.get_json()["resourceType"] == "OperationOutcome", method
    assert fhir.get("Patient/0").status_code == 404  # nothing was written
