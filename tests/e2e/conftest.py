"""A real server process (gunicorn) on loopback, over the test database, loaded with the demo practice
through the ``fhirportal load`` command.

The server demands a bearer token on every FHIR request: a ``system/*.cruds`` token is minted in the
server's own database (``live_server["token"]``) and added to every ``requests`` call to the live
server that does not carry its own Authorization header (plain ``requests`` and fhirclient alike)."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from sqlalchemy import delete

from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.database import Database
from fhirportal.store.schema import metadata
from tests.e2e.gunicorn_server import BIN, ROOT, GunicornServer  # noqa: F401  (ROOT, BIN: for the tests)


def _wipe(url: str) -> None:
    database = Database(url)
    database.create_schema()
    with database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    database.dispose()


def mint_system_token(url: str, scope: str = "system/*.cruds") -> str:
    """An access token stored in the database at ``url`` (the live server's), as the token endpoint
    would issue it."""
    database = Database(url)
    try:
        return TokenStore(database, SUPPORTED_TYPES).mint(client_id="e2e-suite", scope=scope)
    finally:
        database.dispose()


@pytest.fixture(scope="package")  # stopped (its workers flush their access log) before other tests run
def live_server(tmp_path_factory):
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL") or \
        f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'fhirportal-e2e.db'}"
    _wipe(url)
    log_path = tmp_path_factory.mktemp("e2e-log") / "gunicorn.log"
    loaded = subprocess.run([str(BIN / "fhirportal"), "load", "--quiet", str(ROOT / "fixtures" / "demo")],
                            env=dict(os.environ, FHIRPORTAL_DATABASE_URL=url), cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    server = GunicornServer(url, log_path).start()
    try:
        yield {"base_url": server.base_url, "load_output": loaded.stderr, "database_url": url,
               "token": mint_system_token(url), "log_path": log_path}
    finally:
        server.stop()
        _wipe(url)


@pytest.fixture(autouse=True)
def _bearer_token_for_the_live_server(request, monkeypatch):
    """Every ``requests`` call to the live server carries its token unless it sets Authorization."""
    if "live_server" not in request.fixturenames:
        yield
        return
    live = request.getfixturevalue("live_server")
    original = requests.Session.request

    def with_token(self, method, url, *args, headers=None, **kwargs):
        if str(url).startswith(live["base_url"]):
            headers = dict(headers or {})
            if not any(key.lower() == "authorization" for key in headers):
                headers["Authorization"] = f"Bearer {live['token']}"
        return original(self, method, url, *args, headers=headers, **kwargs)

    monkeypatch.setattr(requests.Session, "request", with_token)
    yield
