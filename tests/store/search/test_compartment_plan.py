"""A patient's compartment check reads the reference rows of the searched type only: a patient with many
lab results does not make their Condition searches walk the Observation rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from fhirportal.fhir.loading import expand_paths, load
from fhirportal.store.schema import resource
from fhirportal.store.search.visibility import TypeRule, Visibility, visible_clause
from tests.support import observation

DEMO = Path(__file__).resolve().parents[3] / "fixtures" / "demo"


def test_a_condition_search_of_a_patient_with_many_lab_results_reads_condition_rows_only(ctx):
    if ctx.database.dialect != "sqlite":
        pytest.skip("the plan is SQLite's (PostgreSQL chooses from its own statistics)")
    load(ctx, expand_paths([str(DEMO)]))  # a practice's variety of references, and its statistics
    with ctx.database.write() as conn:
        for n in range(300):
            ctx.repository.update(conn, "Observation", f"lab-{n}", {**observation("patient-001"), "id": f"lab-{n}"})
    ctx.database.analyze()
    rule = TypeRule(patient="patient-001", compartment=("patient", "asserter"))
    visible = visible_clause(Visibility({"Condition": rule}), resource, ["Condition"], drives=True)  # as a search
    query = select(resource.c.pid).where(resource.c.resource_type == "Condition", visible)
    with ctx.database.read() as conn:
        assert conn.execute(query).all()
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    lookups = [step for step in plan if step.startswith("SEARCH ix_reference")]
    assert lookups and all("resource_type=?" in step for step in lookups), plan
