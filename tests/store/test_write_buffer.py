"""An update replaces its resource's index rows in every index table, and only its own
(``store.write_buffer.clear_indexes``: one statement on PostgreSQL, one per table on SQLite)."""

from __future__ import annotations

from sqlalchemy import func, select

from fhirportal.store.schema import INDEX_TABLES, resource

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
