"""An update replaces its resource's index rows in every index table, and only its own
(``store.write_buffer.clear_indexes``: one statement on PostgreSQL, one per table on SQLite); rows
appended in bulk are stored as SQLAlchemy would store them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from fhirportal.store.schema import INDEX_TABLES, resource, resource_version
from fhirportal.store.write_buffer import append_rows

LOINC = "http://loinc.org"


def _observation(code: str, family_date: str, value: float) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": f"Patient/p-{code}"},
            "effectiveDateTime": family_date,
            "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                              "code": "mg/dL"}}


def _rows(conn, pid: int) -> dict[str, int]:
    return {kind: conn.execute(select(func.count()).select_from(table).where(table.c.pid == pid)).scalar_one()
            for kind, table in INDEX_TABLES.items()}


def _pid(conn, fhir_id: str) -> int:
    return conn.execute(select(resource.c.pid).where(resource.c.resource_type == "Observation",
                                                     resource.c.fhir_id == fhir_id)).scalar_one()


def test_updates_in_one_transaction_replace_only_their_own_rows(ctx):
    repository, token = ctx.repository, INDEX_TABLES["token"]
    with ctx.database.write() as conn:
        for fhir_id, code in (("wb-1", "1111-1"), ("wb-2", "2222-2"), ("wb-3", "3333-3")):
            repository.update(conn, "Observation", fhir_id, {**_observation(code, "2020-01-01", 1.0), "id": fhir_id})
    with ctx.database.read() as conn:
        before = {fhir_id: _rows(conn, _pid(conn, fhir_id)) for fhir_id in ("wb-1", "wb-2", "wb-3")}
    assert all(count > 0 for kind, count in before["wb-3"].items() if kind in ("token", "reference", "date",
                                                                                 "quantity"))
    with ctx.database.write() as conn:  # two updates in one transaction: both pids cleared together
        for fhir_id, code in (("wb-1", "4444-4"), ("wb-2", "5555-5")):
            repository.update(conn, "Observation", fhir_id, {**_observation(code, "2024-06-30", 9.0), "id": fhir_id})
    with ctx.database.read() as conn:
        after = {fhir_id: _rows(conn, _pid(conn, fhir_id)) for fhir_id in ("wb-1", "wb-2", "wb-3")}
        codes = {fhir_id: {row.code for row in conn.execute(select(token.c.code).where(
            token.c.pid == _pid(conn, fhir_id), token.c.param == "code"))} for fhir_id in ("wb-1", "wb-2", "wb-3")}
        years = conn.execute(select(func.count()).select_from(INDEX_TABLES["date"]).where(
            INDEX_TABLES["date"].c.pid == _pid(conn, "wb-1"))).scalar_one()
    # the same shape of resource: the same number of rows per table, none left of the old version
    assert after["wb-1"] == before["wb-1"] and after["wb-2"] == before["wb-2"]
    assert codes == {"wb-1": {"4444-4"}, "wb-2": {"5555-5"}, "wb-3": {"3333-3"}}
    assert years == before["wb-1"]["date"]
    assert after["wb-3"] == before["wb-3"]  # untouched


def test_appended_rows_are_stored_as_sqlalchemy_would_store_them(ctx):
    """``append_rows`` (SQLite: the driver's executemany with the columns' conversions; PostgreSQL:
    COPY or one multi-row INSERT) stores what SQLAlchemy's own INSERT stores: a datetime, a boolean,
    NULL for a column the row lacks, a float."""
    moment = datetime(2026, 12, 7, 19, 30, 1, 123456, tzinfo=UTC)
    with ctx.database.write() as conn:
        ctx.repository.update(conn, "Observation", "wb-rows", {**_observation("6666-6", "2021-01-01", 2.0),
                                                               "id": "wb-rows"})
    with ctx.database.write() as conn:
        pid = _pid(conn, "wb-rows")
        version = dict(pid=pid, resource_type="Observation", fhir_id="wb-rows", last_updated=moment, method="PUT",
                       deleted=False, content=None)
        quantity = dict(pid=pid, resource_type="Observation", param="wb-check", value=1.25, code="mg")  # no unit
        append_rows(conn, resource_version, [{**version, "version_id": 7}])
        append_rows(conn, INDEX_TABLES["quantity"], [{**quantity, "system": "ours"}])
        conn.execute(insert(resource_version), [{**version, "version_id": 8}])
        conn.execute(insert(INDEX_TABLES["quantity"]), [{**quantity, "system": "sqlalchemy's"}])
    with ctx.database.read() as conn:
        versions = {row.version_id: row for row in conn.execute(select(resource_version).where(
            resource_version.c.pid == pid, resource_version.c.version_id.in_((7, 8))))}
        quantities = {row.system: row for row in conn.execute(select(INDEX_TABLES["quantity"]).where(
            INDEX_TABLES["quantity"].c.param == "wb-check"))}
    ours, theirs = versions[7]._asdict(), versions[8]._asdict()
    assert ours.pop("version_id") == 7 and theirs.pop("version_id") == 8
    assert ours == theirs and ours["deleted"] is False and ours["content"] is None
    assert ours["last_updated"].replace(tzinfo=None) == moment.replace(tzinfo=None)
    ours, theirs = quantities["ours"]._asdict(), quantities["sqlalchemy's"]._asdict()
    assert ours.pop("system") == "ours" and theirs.pop("system") == "sqlalchemy's"
    assert ours == theirs and ours["unit"] is None and ours["value"] == 1.25
