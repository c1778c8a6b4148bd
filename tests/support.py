"""Helpers for tests: a thin FHIR client over the Flask test client and resource builders."""

from __future__ import annotations

FHIR_JSON = "application/fhir+json"


class Fhir:
    """A thin FHIR client over the Flask test client: paths are relative to the FHIR base."""

    def __init__(self, client):
        self.client = client

    def _url(self, path: str) -> str:
        return "/fhir/" + path.lstrip("/")

    def get(self, path, **kw):
        return self.client.get(self._url(path), **kw)

    def post(self, path, body=None, headers=None, content_type=FHIR_JSON, **kw):
        return self.client.post(self._url(path), json=body, headers=headers, content_type=content_type, **kw)

    def put(self, path, body=None, headers=None, content_type=FHIR_JSON, **kw):
        return self.client.put(self._url(path), json=body, headers=headers, content_type=content_type, **kw)

    def patch(self, path, body=None, headers=None, content_type="application/json-patch+json", **kw):
        return self.client.patch(self._url(path), json=body, headers=headers, content_type=content_type, **kw)

    def delete(self, path, headers=None, **kw):
        return self.client.delete(self._url(path), headers=headers, **kw)

    def create(self, body) -> dict:
        response = self.post(body["resourceType"], body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def patient(**extra) -> dict:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhirportal.dev/fhir/sid/mrn", "value": "MRN-1"}],
        "name": [{"family": "Lovelace", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1985-12-10",
    }
    body.update(extra)
    return body


def observation(patient_id: str, **extra) -> dict:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-05T10:00:00Z",
        "valueQuantity": {"value": 6.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
    }
    body.update(extra)
    return body
