"""Migration 0011 (index rows without foreign keys): a database at 0010 with resources and their index
rows upgrades in place, keeps every row, and its index tables no longer reference ``resource`` with a
constraint while ``resource_version`` still does; the server then finds the resources by search; the
downgrade puts the constraints back and keeps the rows too."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import text

from fhirportal.store.database import Database
from tests.store.migrations.steps import db, downgrade, found_ids, insert_stored, row_counts

KINDS = ("token", "string", "date", "reference", "quantity", "number", "uri", "composite")
TABLES = (*(f"ix_{kind}" for kind in KINDS), "contained_resource", *(f"cx_{kind}" for kind in KINDS))


def _state(url: str) -> tuple[dict[str, list], dict[str, int]]:
    """Each table's foreign keys (referred tables) and its row count."""
    database = Database(url)
    try:
        inspector = sa.inspect(database.engine)
        keys = {table: sorted(key["referred_table"] for key in inspector.get_foreign_keys(table))
                for table in (*TABLES, "resource_version")}
        with database.engine.connect() as conn:
            counts = row_counts(conn, (*TABLES, "resource", "resource_version"))
        return keys, counts
    finally:
        database.dispose()


def _store_at_0010(url: str) -> None:
    """A patient as a 0010 server stored it: resource, version and its family-name and gender rows."""
    database = Database(url)
    try:
        with database.engine.begin() as conn:
            insert_stored(conn, 1, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor"}],
                                    "gender": "female"})
            conn.execute(text("INSERT INTO ix_string (pid, resource_type, param, norm, exact) VALUES "
                              "(1, 'Patient', 'family', 'okafor', 'Okafor'), "
                              "(1, 'Patient', 'name', 'okafor', 'Okafor')"))
            conn.execute(text("INSERT INTO ix_token (pid, resource_type, param, system, code) VALUES "
                              "(1, 'Patient', 'gender', 'http://hl7.org/fhir/administrative-gender', 'female')"))
    finally:
        database.dispose()


def test_0011_drops_the_index_tables_foreign_keys_and_keeps_every_row(scratch_url):
    db(scratch_url, "upgrade", "--to", "0010")
    _store_at_0010(scratch_url)
    keys, before = _state(scratch_url)
    assert all(keys[table] == ["resource"] for table in TABLES)

    assert "Running upgrade 0010 -> 0011" in db(scratch_url, "upgrade")
    keys, after = _state(scratch_url)
    assert after == before and after["ix_string"] == 2 and after["ix_token"] == 1
    assert all(keys[table] == [] for table in TABLES), keys
    assert keys["resource_version"] == ["resource"]

    assert found_ids(scratch_url, "system/Patient.rs", ["Patient?family=okafor&gender=female"]) == [["p1"]]

    _, served = _state(scratch_url)
    downgrade(scratch_url, "0010")
    keys, down = _state(scratch_url)
    assert down == served
    assert all(keys[table] == ["resource"] for table in TABLES)
