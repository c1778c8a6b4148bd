"""A full Bulk Data export over HTTP against the live server, as the EHR (backend services) runs it:
token by private_key_jwt, Group kick-off, polling, manifest, downloads, counts equal to searches."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

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


def test_group_export_cycle_with_a_backend_token(live):  # noqa: F811
    base = live["base_url"]
    headers = {"Authorization": f"Bearer {_backend_token(live)}", "Accept": "application/fhir+json"}
    kick_off = requests.get(f"{base}/Group/all-patients/$export", timeout=30,
                            headers={**headers, "Prefer": "respond-async"})
    assert kick_off.status_code == 202, kick_off.text
    status_url = kick_off.headers["Content-Location"]
    assert status_url.startswith(f"{base}/$export-status/")
    deadline = time.monotonic() + 60
    while True:
        status = requests.get(status_url, headers=headers, timeout=30)
        if status.status_code == 200:
            break
        assert status.status_code == 202 and status.headers["Retry-After"], status.text
        assert time.monotonic() < deadline
        time.sleep(0.2)
    manifest = status.json()
    assert status.headers["Content-Type"].startswith("application/json")
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    counts = {}
    for item in manifest["output"]:
        assert item["url"].startswith(base)
        assert requests.get(item["url"], headers={"Authorization": ""}, timeout=30).status_code == 401  # no token
        download = requests.get(item["url"], headers={**headers, "Accept": "application/fhir+ndjson"}, timeout=60)
        assert download.headers["Content-Type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in download.text.splitlines() if line.strip()]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        counts[item["type"]] = len(lines)
    assert counts["Patient"] == 28  # every member of the demo practice's Group
    searched = requests.get(f"{base}/Observation", params={"_summary": "count"}, headers=headers, timeout=30)
    assert counts["Observation"] == searched.json()["total"]
    assert requests.delete(status_url, headers=headers, timeout=30).status_code == 202
    assert requests.get(status_url, headers=headers, timeout=30).status_code == 404


def test_a_patient_token_cannot_export(live):  # noqa: F811
    patient_token = mint_system_token(live["database_url"], scope="patient/*.rs")
    response = requests.get(f"{live['base_url']}/$export", timeout=30, headers={
        "Authorization": f"Bearer {patient_token}", "Prefer": "respond-async"})
    assert response.status_code == 403
