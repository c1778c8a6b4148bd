"""A full Bulk Data export over HTTP against the live server, as the EHR (backend services) runs it:
token by private_key_jwt, Group kick-off, polling, manifest, downloads, counts equal to searches."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.e2e.conftest import ROOT, mint_system_token
from tests.e2e.test_smart_live import live  # noqa: F401  (the module's fixture: demo accounts and apps loaded)


def _backend_token(live, scope: str = "system/*.rs") -> str:  # noqa: F811
    key = RSAKey.import_key(json.loads(Path(ROOT / "fixtures" / "demo-backend-private-jwk.json").read_text()))
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"}, {
        "iss": "demo-ehr-backend", "sub": "demo-ehr-backend", "aud": f"{live['origin']}/auth/token",
        "exp": int(time.time()) + 240, "jti": str(uuid.uuid4())}, key, algorithms=["RS384"])
    response = requests.post(f"{live['origin']}/auth/token", timeout=30, data={
        "grant_type": "client_credentials", "scope": scope, "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _kick_off(url: str, headers: dict) -> str:
    response = requests.get(url, timeout=30, headers={**headers, "Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


def _manifest(status_url: str, headers: dict) -> dict:
    deadline = time.monotonic() + 60
    while True:
        status = requests.get(status_url, headers=headers, timeout=30)
        if status.status_code == 200:
            assert status.headers["Content-Type"].startswith("application/json")
            return status.json()
        assert status.status_code == 202 and status.headers["Retry-After"], status.text
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _download(manifest: dict, headers: dict) -> dict[str, list[dict]]:
    files = {}
    for item in manifest["output"]:
        download = requests.get(item["url"], headers={**headers, "Accept": "application/fhir+ndjson"}, timeout=60)
        assert download.headers["Content-Type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in download.text.splitlines() if line.strip()]
        assert {r["resourceType"] for r in lines} == {item["type"]} and len(lines) == item["count"]
        files[item["type"]] = lines
    return files


def _total(base: str, query: str, headers: dict) -> int:
    return requests.get(f"{base}/{query}&_summary=count", headers=headers, timeout=30).json()["total"]


def test_group_export_cycle_with_a_backend_token(live):  # noqa: F811
    base = live["base_url"]
    headers = {"Authorization": f"Bearer {_backend_token(live)}", "Accept": "application/fhir+json"}
    status_url = _kick_off(f"{base}/Group/all-patients/$export", headers)
    assert status_url.startswith(f"{base}/$export-status/")
    manifest = _manifest(status_url, headers)
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    for item in manifest["output"]:
        assert item["url"].startswith(base)
        assert requests.get(item["url"], headers={"Authorization": ""}, timeout=30).status_code == 401  # no token
    counts = {t: len(rows) for t, rows in _download(manifest, headers).items()}
    assert counts["Patient"] == 28  # every member of the demo practice's Group
    assert counts["Observation"] == _total(base, "Observation?", headers)
    assert counts["Practitioner"] >= 1  # the members' records refer to them
    assert requests.delete(status_url, headers=headers, timeout=30).status_code == 202
    assert requests.get(status_url, headers=headers, timeout=30).status_code == 404


def test_type_type_filter_and_since_over_http(live):  # noqa: F811
    base = live["base_url"]
    headers = {"Authorization": f"Bearer {_backend_token(live)}", "Accept": "application/fhir+json"}
    labs = "Observation?category=laboratory"
    files = _download(_manifest(_kick_off(
        f"{base}/Group/all-patients/$export?_type=Patient,Observation&_typeFilter={quote(labs)}", headers), headers),
        headers)
    assert set(files) == {"Patient", "Observation"}
    assert len(files["Observation"]) == _total(base, labs, headers) > 0
    assert all(any(c.get("code") == "laboratory" for cat in r["category"] for c in cat["coding"])
               for r in files["Observation"])

    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.05)
    created = requests.post(f"{base}/Observation", headers={"Content-Type": "application/fhir+json"},  # as the EHR
                            timeout=30, json={
        "resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/patient-001"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "effectiveDateTime": "2026-11-25T10:00:00Z", "valueQuantity": {"value": 64, "unit": "/min"}})
    assert created.status_code == 201, created.text
    later = _download(_manifest(_kick_off(f"{base}/$export?_since={since}&_type=Observation,Condition", headers),
                                headers), headers)
    assert {t: [r["id"] for r in rows] for t, rows in later.items()} == {"Observation": [created.json()["id"]]}


def test_a_patient_token_cannot_export(live):  # noqa: F811
    patient_token = mint_system_token(live["database_url"], scope="patient/*.rs")
    response = requests.get(f"{live['base_url']}/$export", timeout=30, headers={
        "Authorization": f"Bearer {patient_token}", "Prefer": "respond-async"})
    assert response.status_code == 403
