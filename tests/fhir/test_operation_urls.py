"""An operation called at a level it is not defined at says how to call it (400), an unknown one is a
404, a wrong method a 405 with Allow — each an OperationOutcome."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("method, url, status, says", [
    ("get", "Group/$export", 400, "$export needs a Group id: Group/{id}/$export"),
    ("get", "Patient/$everything", 400, "$everything needs a Patient id: Patient/{id}/$everything"),
    ("get", "$everything", 400, "Patient/{id}/$everything"),
    ("post", "Observation/$portal-share", 400, "needs an Observation id: Observation/{id}/$portal-share"),
    ("post", "Patient/$portal-invite", 400, "Patient/{id}/$portal-invite"),
    ("post", "$validate", 400, "[type]/$validate or [type]/{id}/$validate"),
    ("get", "Patient/$nothing", 404, "$nothing is not defined"),
    ("get", "Observation/o1/$everything", 404, "$everything is not defined at instance level"),
    ("get", "Patient/p1/$validate", 405, "does not accept GET"),
])
def test_operation_urls_say_what_is_wrong(fhir, method, url, status, says):
    answer = fhir.get(url) if method == "get" else fhir.post(url, {"resourceType": "Parameters"})
    assert answer.status_code == status, answer.get_json()
    body = answer.get_json()
    assert body["resourceType"] == "OperationOutcome" and says in body["issue"][0]["diagnostics"]
    if status == 405:
        assert answer.headers["Allow"] == "POST"
