"""Concurrent writers: no lost updates, no duplicate conditional creates (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import Fhir, patient

MRN = "https://fhirportal.dev/fhir/sid/mrn"
WRITERS = 8


def test_concurrent_updates_keep_every_write(app, fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"

    def write(n: int) -> int:
        client = Fhir(app.test_client(), fhir.token)
        body = dict(created, name=[{"family": f"Writer{n}"}])
        return client.put(path, body).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = list(pool.map(write, range(WRITERS)))
    assert statuses == [200] * WRITERS
    history = fhir.get(f"{path}/_history?_count=100").get_json()
    later = [e["resource"] for e in history["entry"] if e["resource"]["meta"]["versionId"] != "1"]
    families = {resource["name"][0]["family"] for resource in later}
    assert families == {f"Writer{n}" for n in range(WRITERS)}
    assert history["total"] == WRITERS + 1
    assert fhir.get(path).get_json()["meta"]["versionId"] == str(WRITERS + 1)


def test_concurrent_if_match_updates_one_wins(app, fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"

    def write(n: int) -> int:
        client = Fhir(app.test_client(), fhir.token)
        return client.put(path, dict(created, name=[{"family": f"W{n}"}]), headers={"If-Match": 'W/"1"'}).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = sorted(pool.map(write, range(WRITERS)))
    assert statuses == [200] + [412] * (WRITERS - 1)


def test_concurrent_conditional_creates_make_one_resource(app, fhir):
    def create(_: int) -> int:
        client = Fhir(app.test_client(), fhir.token)
        body = patient(identifier=[{"system": MRN, "value": "RACE-1"}])
        return client.post("Patient", body, headers={"If-None-Exist": f"identifier={MRN}|RACE-1"}).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = sorted(pool.map(create, range(WRITERS)))
    assert statuses.count(201) == 1
    assert statuses.count(200) == WRITERS - 1
    found = fhir.get("Patient", query_string={"identifier": f"{MRN}|RACE-1", "_total": "accurate"}).get_json()
    assert found["total"] == 1


def test_concurrent_update_as_create_of_one_id(app, fhir):
    def put(n: int) -> int:
        client = Fhir(app.test_client(), fhir.token)
        return client.put("Patient/same-id", patient(id="same-id", name=[{"family": f"P{n}"}])).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = sorted(pool.map(put, range(WRITERS)))
    assert statuses.count(201) == 1
    assert fhir.get("Patient/same-id/_history?_count=50").get_json()["total"] == WRITERS
