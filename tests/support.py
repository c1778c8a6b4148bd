"""Helpers for tests: a thin FHIR client over the Flask test client and resource builders."""

from __future__ import annotations

FHIR_JSON = "application/fhir+json"
SYSTEM_SCOPE = "system/*.cruds"
TEST_CLIENT_ID = "test-suite"


class Fhir:
    """A thin FHIR client over the Flask test client: paths are relative to the FHIR base (or start with
    ``/fhir``). Every call carries ``Authorization: Bearer <token>`` unless the caller gives its own
    Authorization header; ``token=None`` makes anonymous calls."""

    def __init__(self, client, token: str | None = None):
        self.client = client
        self.token = token

    def _url(self, path: str) -> str:
        if path == "/fhir" or path.startswith(("/fhir/", "/fhir?")):
            return path
        return "/fhir/" + path.lstrip("/")

    def _headers(self, headers) -> dict:
        merged = dict(headers or {})
        if self.token and not any(k.lower() == "authorization" for k in merged):
            merged["Authorization"] = f"Bearer {self.token}"
        return merged

    def with_token(self, token: str | None) -> Fhir:
        return Fhir(self.client, token)

    def _send(self, method: str, path: str, body, headers, content_type, kw):
        if "json" in kw:
            body = kw.pop("json")
        if "data" not in kw:
            kw["json"] = body
        return self.client.open(self._url(path), method=method, headers=self._headers(headers),
                                content_type=content_type, **kw)

    def get(self, path, headers=None, **kw):
        return self.client.get(self._url(path), headers=self._headers(headers), **kw)

    def post(self, path, body=None, headers=None, content_type=FHIR_JSON, **kw):
        return self._send("POST", path, body, headers, content_type, kw)

    def put(self, path, body=None, headers=None, content_type=FHIR_JSON, **kw):
        return self._send("PUT", path, body, headers, content_type, kw)

    def patch(self, path, body=None, headers=None, content_type="application/json-patch+json", **kw):
        return self._send("PATCH", path, body, headers, content_type, kw)

    def delete(self, path, headers=None, **kw):
        return self.client.delete(self._url(path), headers=self._headers(headers), **kw)

    def options(self, path, headers=None, **kw):
        return self.client.options(self._url(path), headers=self._headers(headers), **kw)

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
