"""A real server process (gunicorn) on loopback, over the test database, loaded with the demo practice
through the ``fhirportal load`` command.

The server demands a bearer token on every FHIR request: a ``system/*.cruds`` token is minted in the
server's own database (``live_server["token"]``) and added to every ``requests`` call to the live
server that does not carry its own Authorization header (plain ``requests`` and fhirclient alike)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import delete
from sqlalchemy.engine import make_url

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


@contextmanager
def own_database(directory: Path, prefix: str) -> Iterator[str]:
    """A database of the test's own, on the test suite's backend: a new PostgreSQL database beside the
    suite's (``FHIRPORTAL_TEST_DATABASE_URL``; dropped afterwards), else a SQLite file in ``directory``.
    For tests that empty or reload their database: the suite's is shared with the package's live server."""
    base = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{directory / f'{prefix}.db'}"
        return
    parsed = make_url(base)
    name = f"fhirportal_{prefix}_{uuid.uuid4().hex[:10]}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
