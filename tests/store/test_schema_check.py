"""A database this version cannot serve is refused at start-up with what to do, not served with 500s."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fhirportal.store.database import Database, OutdatedSchema


def test_a_table_missing_a_column_is_refused_with_what_to_do(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    database.create_schema()
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE resource DROP COLUMN marks"))
    with pytest.raises(OutdatedSchema, match=r"resource\.marks missing.*init-db --drop"):
        database.create_schema()
    with database.engine.begin() as conn:  # the same without a schema version: older than the baseline
        conn.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(OutdatedSchema, match=r"resource\.marks missing.*init-db --drop"):
        database.create_schema()
    database.drop_schema()
    database.create_schema()  # a fresh schema is accepted
    database.dispose()
