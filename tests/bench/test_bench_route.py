"""The benchmark ceiling route serves exactly the bytes of a FHIR read, and only when enabled."""

from __future__ import annotations

import pytest

from fhirportal.app import create_app
from fhirportal.settings import Settings
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir

PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Ceiling", "given": ["Bench"]}],
    "gender": "female",
    "birthDate": "1980-02-29",
}


def _client(benchmark_routes: bool) -> Fhir:
    app = create_app(Settings(database_url="sqlite://", benchmark_routes=benchmark_routes))
    token = app.extensions["fhirportal"].tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE)
    return Fhir(app.test_client(), token)


def _create_patient(client) -> str:
    created = client.post("/fhir/Patient", PATIENT)
    assert created.status_code == 201, created.get_data(as_text=True)
    return created.get_json()["id"]


def test_raw_route_serves_the_bytes_of_a_fhir_read():
    client = _client(True)
    fhir_id = _create_patient(client)
    read = client.get(f"/fhir/Patient/{fhir_id}")
    raw = client.client.get(f"/_bench/raw/Patient/{fhir_id}")
    assert read.status_code == 200
    assert raw.status_code == 200
    assert raw.get_data() == read.get_data()
    assert raw.mimetype == "application/fhir+json"


@pytest.mark.parametrize("path", ["/_bench/raw/Patient/unknown", "/_bench/raw/Nope/x"])
def test_raw_route_answers_404_with_an_empty_body_when_absent(path):
    response = _client(True).client.get(path)
    assert response.status_code == 404
    assert response.get_data() == b""


def test_raw_route_is_absent_when_disabled():
    client = _client(False)
    fhir_id = _create_patient(client)
    assert client.get(f"/fhir/Patient/{fhir_id}").status_code == 200
    assert client.client.get(f"/_bench/raw/Patient/{fhir_id}").status_code == 404
    assert client.client.get(f"/_bench/open/Patient/{fhir_id}").status_code == 404


def test_open_read_is_the_fhir_read_without_authorization(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", benchmark_routes=True))
    ctx = app.extensions["fhirportal"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "A"}]}, fhir_id="pa")
    client = app.test_client()
    response = client.get("/_bench/open/Patient/pa")
    assert response.status_code == 200 and response.headers["ETag"] == 'W/"1"'
    assert client.get("/_bench/open/Patient/nope").status_code == 404
    assert client.get("/fhir/Patient/pa").status_code == 401  # the real API still wants a token
