"""A second app over the test database, as behind a trusted proxy and with metrics on."""

from __future__ import annotations

import pytest

from fhirportal.app import create_app

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture(scope="session")
def ops_app(app, settings):
    """Shares the session app's database (``app`` prepared it); trusts X-Request-ID, serves /metrics."""
    application = create_app(settings.with_overrides(trust_request_id=True, metrics_token=METRICS_TOKEN),
                             create_schema=False)
    yield application
    application.extensions["fhirportal"].database.dispose()


@pytest.fixture
def ops_client(ops_app, app):
    yield ops_app.test_client()
    ops_app.extensions["fhirportal"].audit.flush()  # its rows before the database is emptied
