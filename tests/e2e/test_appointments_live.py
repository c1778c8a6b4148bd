"""No double booking across worker processes: a live gunicorn (2 workers × 4 threads) on the test database
(SQLite, or PostgreSQL with ``FHIRPORTAL_TEST_DATABASE_URL``); patients request one free slot at the same
moment over HTTP — exactly one 201, the others 409 OperationOutcomes, the slot held by one Appointment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.database import Database
from tests.databases import own_database
from tests.e2e.conftest import mint_system_token
from tests.e2e.gunicorn_server import GunicornServer

RIVALS = 8
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture
def server(tmp_path):
    with own_database(tmp_path, "appointments") as url:
        database = Database(url)
        database.create_schema()
        database.dispose()
        live = GunicornServer(url, tmp_path / "gunicorn.log", workers=2, threads=4).start()
        try:
            yield live, url
        finally:
            live.stop()


def test_rivals_over_several_workers(server):
    live, url = server
    staff = {**JSON, "Authorization": f"Bearer {mint_system_token(url)}"}
    base = live.base_url
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    for body in ({"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Doc"}]},
                 {"resourceType": "Schedule", "id": "sched", "actor": [{"reference": "Practitioner/dr"}]},
                 {"resourceType": "Slot", "id": "s1", "schedule": {"reference": "Schedule/sched"}, "status": "free",
                  "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()},
                 *({"resourceType": "Patient", "id": f"r{n}", "name": [{"family": f"Rival{n}"}]}
                   for n in range(RIVALS))):
        put = requests.put(f"{base}/{body['resourceType']}/{body['id']}", json=body, headers=staff, timeout=30)
        assert put.status_code == 201, put.text
    database = Database(url)
    try:
        tokens = [TokenStore(database, SUPPORTED_TYPES).mint(
            client_id="e2e-app", scope="launch/patient patient/*.rs patient/Appointment.cu",
            context={"patient": f"r{n}", "fhirUser": f"Patient/r{n}"}) for n in range(RIVALS)]
    finally:
        database.dispose()
    barrier = threading.Barrier(RIVALS)

    def request(n: int):
        with requests.Session() as session:  # a connection of its own: the workers share them out
            session.get(f"{base}/Slot/s1", headers={**JSON, "Authorization": f"Bearer {tokens[n]}"}, timeout=30)
            barrier.wait()
            answer = session.post(f"{base}/Appointment", headers={**JSON, "Authorization": f"Bearer {tokens[n]}"},
                                  timeout=60, json={
                                      "resourceType": "Appointment", "status": "proposed",
                                      "slot": [{"reference": "Slot/s1"}],
                                      "participant": [{"actor": {"reference": f"Patient/r{n}"}, "status": "accepted"},
                                                      {"actor": {"reference": "Practitioner/dr"},
                                                       "status": "needs-action"}]})
            return answer.status_code, answer.json()

    with ThreadPoolExecutor(RIVALS) as pool:
        answers = list(pool.map(request, range(RIVALS)))
    assert sorted(status for status, _ in answers) == [201] + [409] * (RIVALS - 1), answers
    assert all(body["resourceType"] == "OperationOutcome" for status, body in answers if status == 409)
    slot = requests.get(f"{base}/Slot/s1", headers=staff, timeout=30).json()
    assert slot["status"] == "busy-tentative"
    holding = requests.get(f"{base}/Appointment", params={"slot": "Slot/s1", "_total": "accurate"}, headers=staff,
                           timeout=30).json()
    assert holding["total"] == 1
