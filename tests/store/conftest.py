"""Scratch databases for migration tests: a new SQLite file, or a new PostgreSQL database on the test
server (FHIRPORTAL_TEST_DATABASE_URL) that is dropped afterwards."""

from __future__ import annotations

import pytest

from tests.databases import own_database


@pytest.fixture
def scratch_url(tmp_path):
    with own_database(tmp_path, "scratch") as url:
        yield url
