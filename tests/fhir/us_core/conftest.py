"""US Core tests send the package's examples, one of which (a Media with its image) is larger than the
test session's body limit: they talk to a second app on the same database with the default limit."""

from __future__ import annotations

import pytest

from fhirportal.app import create_app
from fhirportal.settings import Settings
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir


@pytest.fixture
def us_core_app(ctx, settings):
    application = create_app(settings.with_overrides(max_body_bytes=Settings().max_body_bytes), create_schema=False)
    yield application
    application.extensions["fhirportal"].audit.flush()
    application.extensions["fhirportal"].database.dispose()


@pytest.fixture
def us_core_fhir(us_core_app) -> Fhir:
    ctx = us_core_app.extensions["fhirportal"]
    return Fhir(us_core_app.test_client(), ctx.tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE))
