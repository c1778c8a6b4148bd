"""Liveness and readiness: /readyz follows the database, /healthz only the process."""

from __future__ import annotations

from fhirportal.app import create_app
from fhirportal.settings import Settings


def test_ready_and_alive(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "reachable"


def test_not_ready_while_the_database_is_away(tmp_path):
    path = tmp_path / "later.db"
    path.mkdir()  # "unable to open database file": the database cannot be reached
    app = create_app(Settings(database_url=f"sqlite:///{path}"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    path.rmdir()
    assert client.get("/readyz").status_code == 200
    app.extensions["fhirportal"].database.dispose()


def test_the_pooler_setting():
    assert Settings.from_env({"FHIRPORTAL_DATABASE_POOLER": "transaction"}).database_pooler == "transaction"
    assert Settings.from_env({}).database_pooler == "none"
