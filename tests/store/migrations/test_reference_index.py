"""Migration 0012 (the reference index by target ends with the referring type): a database at 0011 with a
patient, a condition and lab results upgrades in place, keeps every row, and both reference indexes
(``ix_reference``, ``cx_reference``) end with ``resource_type``; the server then finds the condition in
the patient's compartment; the downgrade puts the three-column index back and keeps the rows."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import text

from fhirportal.store.database import Database
from tests.store.migrations.steps import db, downgrade, found_ids, insert_stored, row_counts

TABLES = ("ix_reference", "cx_reference")
OLD = ["target_type", "target_id", "param"]
NEW = [*OLD, "resource_type"]


def _state(url: str) -> tuple[dict[str, list], dict[str, int]]:
    """Each reference table's first value index (its columns), and the rows of the tables involved."""
    database = Database(url)
    try:
        inspector = sa.inspect(database.engine)
        columns = {table: next(index["column_names"] for index in inspector.get_indexes(table)
                               if index["name"] == f"ix_{table}_0") for table in TABLES}
        with database.engine.connect() as conn:
            counts = row_counts(conn, (*TABLES, "resource", "resource_version"))
        return columns, counts
    finally:
        database.dispose()


def _store_at_0011(url: str) -> None:
    """Patient p1, its condition c1 and three lab results, with their reference rows as 0011 wrote them."""
    stored = [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor"}]},
              {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
               "code": {"text": "Asthma"}}]
    stored += [{"resourceType": "Observation", "id": f"o{n}", "status": "final", "code": {"text": "Glucose"},
                "subject": {"reference": "Patient/p1"}} for n in range(3)]
    database = Database(url)
    try:
        with database.engine.begin() as conn:
            for pid, body in enumerate(stored, start=1):
                insert_stored(conn, pid, body)
                if body["resourceType"] != "Patient":
                    for param in ("subject", "patient"):
                        conn.execute(text("INSERT INTO ix_reference (pid, resource_type, param, target_type, "
                                          "target_id) VALUES (:pid, :type, :param, 'Patient', 'p1')"),
                                     {"pid": pid, "type": body["resourceType"], "param": param})
    finally:
        database.dispose()


def test_0012_ends_the_reference_index_with_the_referring_type_and_keeps_every_row(scratch_url):
    db(scratch_url, "upgrade", "--to", "0011")
    _store_at_0011(scratch_url)
    columns, before = _state(scratch_url)
    assert columns == {table: OLD for table in TABLES}
    assert before["ix_reference"] == 8

    assert "Running upgrade 0011 -> 0012" in db(scratch_url, "upgrade")
    columns, after = _state(scratch_url)
    assert after == before
    assert columns == {table: NEW for table in TABLES}

    scope = "patient/Condition.rs patient/Observation.rs"
    assert found_ids(scratch_url, scope, ["Condition?patient=p1", "Observation"], {"patient": "p1"}) == \
        [["c1"], ["o0", "o1", "o2"]]

    _, served = _state(scratch_url)
    downgrade(scratch_url, "0011")
    columns, down = _state(scratch_url)
    assert down == served
    assert columns == {table: OLD for table in TABLES}
