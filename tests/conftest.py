"""Shared test fixtures: a real database (SQLite, or PostgreSQL when FHIRPORTAL_TEST_DATABASE_URL is
set), one app per session, and an empty database for every test.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import delete

from fhirportal.app import create_app, prepare_database
from fhirportal.settings import Settings
from fhirportal.store.schema import metadata
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir

BASE_URL = "http://localhost/fhir"


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'fhirportal-test.db'}"


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    # Subscriptions may notify loopback receivers (tests/subscriptions); their deliveries run when a test
    # calls ``run_due`` (no background thread).
    return Settings(database_url=database_url(tmp_path_factory), base_url=BASE_URL, max_body_bytes=256 * 1024,
                    subscription_endpoints=("http://127.0.0.1:",), subscription_worker=False)


@pytest.fixture(scope="session")
def app(settings):
    application = create_app(settings, create_schema=False)
    database = application.extensions["fhirportal"].database
    database.drop_schema()
    prepare_database(application.extensions["fhirportal"])
    yield application
    database.dispose()


@pytest.fixture
def ctx(app):
    return app.extensions["fhirportal"]


@pytest.fixture(autouse=True)
def _empty_database(request):
    """Every test that touches the app starts from an empty database."""
    if "app" not in request.fixturenames:
        yield
        return
    ctx = request.getfixturevalue("ctx")
    yield
    ctx.audit.flush()  # the test's journalled requests, so none lands in the next test's database
    ctx.access_policy.forget_lab_sharing()  # a practice setting cached by this test must not outlive it
    with ctx.database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    ctx.search_parameters.readiness.reconcile()  # as a new database starts: this version's definitions, ready


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(ctx) -> str:
    """An access token with every right (``system/*.cruds``): what the existing tests act with."""
    return ctx.tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE)


@pytest.fixture
def auth_headers(token) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def fhir(client, token) -> Fhir:
    return Fhir(client, token)
