"""Correlated per-row checks go through the pid index, whatever the value indexes offer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from fhirportal.fhir.search_params import parse_search
from fhirportal.store.schema import resource
from fhirportal.store.search.query import criterion_clause
from fhirportal.store.search.visibility import TypeRule, Visibility, visible_clause
from tests.support import observation, patient

LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"


def _correlated(ctx, name: str, value: str):
    criterion = parse_search(ctx.search_parameters, ["Observation"], [(name, value)], strict=True).criteria[0]
    return select(resource.c.pid).where(criterion_clause(criterion, resource, types=["Observation"], drives=False))


def test_the_index_leading_columns_are_unindexed_on_sqlite_only(ctx):
    statement = _correlated(ctx, "category", LAB)
    assert "+ix_token_1.resource_type" in str(statement.compile(dialect=sqlite.dialect()))
    assert "+" not in str(statement.compile(dialect=postgresql.dialect()))
    reference = _correlated(ctx, "subject", "Patient/p1")
    assert "+ix_reference_1.target_type" in str(reference.compile(dialect=sqlite.dialect()))


def test_a_patient_read_looks_up_the_rows_entries_by_pid(ctx):
    """With many lab results and no statistics, SQLite chose the (type, param, code, system) index
    for the per-row lab check and walked every lab row for each read."""
    with ctx.database.write() as conn:
        ctx.repository.update(conn, "Patient", "p1", patient(id="p1"))
        for n in range(300):
            ctx.repository.update(conn, "Observation", f"o{n}", {**observation("p1"), "id": f"o{n}"})
    lab = parse_search(ctx.search_parameters, ["Observation"], [("category", LAB)], strict=True).criteria
    rule = TypeRule(patient="p1", compartment=("subject", "performer"), require=((tuple(lab),),))
    visible = visible_clause(Visibility({"Observation": rule}), resource, ["Observation"])  # as a read checks
    query = select(resource.c.pid).where(resource.c.resource_type == "Observation", resource.c.fhir_id == "o7",
                                         visible)
    with ctx.database.read() as conn:
        assert conn.execute(query).scalar_one() is not None
        if ctx.database.dialect != "sqlite":
            return
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    lookups = [step for step in plan if step.startswith("SEARCH ix_")]
    assert lookups and all("_pid (pid=?)" in step for step in lookups), plan
