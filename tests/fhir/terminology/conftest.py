"""The terminology is public: its tests speak without a token."""

from __future__ import annotations

import pytest

from tests.support import Fhir


@pytest.fixture
def anonymous(client) -> Fhir:
    return Fhir(client, token=None)
