"""A database of a test's own, on the suite's backend (for tests that create, empty or reload theirs)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


@contextmanager
def own_database(directory: Path, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database beside the suite's (``FHIRPORTAL_TEST_DATABASE_URL``; dropped afterwards),
    else a new SQLite file in ``directory``: its URL."""
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
