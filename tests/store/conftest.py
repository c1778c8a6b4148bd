"""Scratch databases for migration tests: a new SQLite file, or a new PostgreSQL database on the test
server (FHIRPORTAL_TEST_DATABASE_URL) that is dropped afterwards."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url


@pytest.fixture
def scratch_url(tmp_path):
    test_url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL")
    if not test_url:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    parsed = make_url(test_url)
    name = f"fhirportal_scratch_{uuid.uuid4().hex[:12]}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield parsed.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
