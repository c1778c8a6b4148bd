"""End to end over HTTP: a real gunicorn process, the demo data loaded by the CLI, a real SMART
client library (fhirclient) and plain ``requests``, as a third-party app would talk to us."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from fhirclient import client as smart_client
from fhirclient.models.patient import Patient

FHIR_JSON = "application/fhir+json"


def test_cli_loaded_the_demo_practice(live_server):
    assert "0 failed" in live_server["load_output"]
    bundle = requests.get(f"{live_server['base_url']}/Patient", params={"_total": "accurate", "_count": 1}).json()
    assert bundle["total"] >= 20


def test_fhirclient_reads_capabilities_and_patients(live_server):
    smart = smart_client.FHIRClient(settings={"app_id": "e2e", "api_base": live_server["base_url"]})
    smart.prepare()
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"
    first = requests.get(f"{live_server['base_url']}/Patient", params={"_count": 1}).json()["entry"][0]
    patient = Patient.read(first["resource"]["id"], smart.server)
    assert patient.name[0].family == first["resource"]["name"][0]["family"]


def test_write_cycle_over_http(live_server):
    base = live_server["base_url"]
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    body = {"resourceType": "Practitioner", "name": [{"family": "Apgar", "given": ["Virginia"]}]}
    created = requests.post(f"{base}/Practitioner", json=body, headers=headers)
    assert created.status_code == 201
    location = created.headers["Location"]
    assert location.startswith(f"{base}/Practitioner/") and location.endswith("/_history/1")
    resource = created.json()
    url = f"{base}/Practitioner/{resource['id']}"
    resource["active"] = True
    stale = requests.put(url, json=resource, headers={**headers, "If-Match": 'W/"0"'})
    assert stale.status_code == 412
    updated = requests.put(url, json=resource, headers={**headers, "If-Match": created.headers["ETag"]})
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    assert requests.delete(url).status_code == 200
    assert requests.get(url).status_code == 410
    history = requests.get(f"{url}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]


def test_parallel_updates_across_worker_processes_lose_nothing(live_server):
    base = live_server["base_url"]
    created = requests.post(f"{base}/Practitioner", json={"resourceType": "Practitioner"},
                            headers={"Content-Type": FHIR_JSON}).json()
    url = f"{base}/Practitioner/{created['id']}"

    def write(n: int) -> int:
        body = {"resourceType": "Practitioner", "id": created["id"], "name": [{"family": f"W{n}"}]}
        return requests.put(url, json=body, headers={"Content-Type": FHIR_JSON}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(write, range(16))) == {200}
    history = requests.get(f"{url}/_history", params={"_count": 100}).json()
    assert history["total"] == 17


def test_errors_over_http_are_operation_outcomes(live_server):
    base = live_server["base_url"]
    for response in (
        requests.get(f"{base}/Nonsense/1"),
        requests.post(f"{base}/Patient", data="{", headers={"Content-Type": FHIR_JSON}),
        requests.post(f"{base}/Patient", data="<Patient/>", headers={"Content-Type": "application/fhir+xml"}),
        requests.get(f"{base}/metadata", headers={"Accept": "text/turtle"}),
    ):
        assert 400 <= response.status_code < 500
        assert response.json()["resourceType"] == "OperationOutcome"
