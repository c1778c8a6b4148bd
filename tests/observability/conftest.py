"""A second app over the test database, as behind a trusted proxy."""

from __future__ import annotations

import pytest

from fhirportal.app import create_app


@pytest.fixture(scope="session")
def ops_app(app, settings):
    """Shares the session app's database (``app`` prepared it); trusts X-Request-ID."""
    application = create_app(settings.with_overrides(trust_request_id=True), create_schema=False)
    yield application
    application.extensions["fhirportal"].database.dispose()


@pytest.fixture
def ops_client(ops_app, app):
    yield ops_app.test_client()
    ops_app.extensions["fhirportal"].audit.flush()  # its rows before the database is emptied
