"""Index state and reindex: a parameter new or changed since resources were written is pending until
``Reindexer`` rebuilds their rows; a reindex is resumable, and one process runs a job at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from fhirportal.fhir import conformance
from fhirportal.fhir.authorization import patient_marks
from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.store import clock
from fhirportal.store.contained_schema import CONTAINED_TABLES, contained_resource
from fhirportal.store.index_schema import reindex_job
from fhirportal.store.index_state import CONTAINED, MARKS, IndexState
from fhirportal.store.indexing import IndexExtractor, SearchParameterRegistry
from fhirportal.store.marks import Mark, Marker, TokenMatch
from fhirportal.store.reindex import Reindexer, ReindexRefused
from fhirportal.store.schema import ix_token, resource
from tests.support import observation

METHOD = {"code": "test-method", "base": ["Observation"], "type": "token", "expression": "Observation.method",
          "url": "https://fhirportal.dev/fhir/SearchParameter/test-method"}


def _method(code: str) -> dict:
    return {"coding": [{"system": "http://snomed.info/sct", "code": code}]}


def _setup(ctx, extra=(), marks=None):
    registry = SearchParameterRegistry(SUPPORTED_TYPES, [*conformance.custom_search_parameters(), *extra])
    marker = Marker(marks if marks is not None else patient_marks(registry))
    state = IndexState(ctx.database, registry, marker)
    return registry, marker, state


def _reindexer(ctx, registry, marker, state, batch=500) -> Reindexer:
    return Reindexer(ctx.database, IndexExtractor(registry, ctx.base_url), marker, state, batch=batch)


def _rows(ctx, param: str) -> list[tuple[str, str]]:
    with ctx.database.read() as conn:
        return sorted(conn.execute(select(resource.c.fhir_id, ix_token.c.code).join(
            resource, resource.c.pid == ix_token.c.pid).where(ix_token.c.param == param)).all())


def _observations(ctx, *methods: str) -> None:
    """Observations written by this version (its definitions recorded first, as at start-up)."""
    ctx.search_parameters.readiness.reconcile()
    with ctx.database.write() as conn:
        for number, code in enumerate(methods):
            ctx.repository.create(conn, {**observation("p1"), "method": _method(code)}, fhir_id=f"o{number}")


def test_a_new_parameter_is_pending_on_a_type_with_resources_until_reindexed(ctx):
    _observations(ctx, "a", "b", "a")
    registry, marker, state = _setup(ctx, [METHOD])
    assert state.reconcile() == {("Observation", "test-method")}
    reindexer = _reindexer(ctx, registry, marker, state, batch=2)
    targets = reindexer.targets()
    assert targets == {"Observation": ["test-method"]}
    job = reindexer.run(reindexer.start(targets, named=False))
    assert (job.done, dict(job.counts)) == (3, {"Observation": 3})
    assert _rows(ctx, "test-method") == [("o0", "a"), ("o1", "b"), ("o2", "a")]
    assert state.pending(force=True) == frozenset()
    assert reindexer.start(reindexer.targets(), named=False) is None  # nothing left to do


def test_a_changed_definition_replaces_the_old_rows(ctx):
    _observations(ctx, "a", "b")
    registry, marker, state = _setup(ctx, [METHOD])
    state.reconcile()
    reindexer = _reindexer(ctx, registry, marker, state)
    reindexer.run(reindexer.start(reindexer.targets(), named=False))
    with ctx.database.write() as conn:
        ctx.repository.update(conn, "Observation", "o1", {**observation("p1"), "id": "o1", "method": _method("b"),
                                                          "bodySite": _method("site")})
    changed = {**METHOD, "expression": "Observation.bodySite"}
    registry, marker, state = _setup(ctx, [changed])
    assert state.reconcile() == {("Observation", "test-method")}
    reindexer = _reindexer(ctx, registry, marker, state)
    reindexer.run(reindexer.start(reindexer.targets(), named=False))
    assert _rows(ctx, "test-method") == [("o1", "site")]
    assert [fhir_id for fhir_id, _code in _rows(ctx, "code")] == ["o0", "o1"]  # the other parameters untouched


def test_a_type_without_resources_needs_no_reindex(ctx):
    registry, _marker, state = _setup(ctx, [METHOD])
    assert state.reconcile() == frozenset()


def test_a_stopped_reindex_resumes_where_it_stopped_and_one_process_runs_it(ctx):
    _observations(ctx, "a", "b", "c", "d", "e")
    registry, marker, state = _setup(ctx, [METHOD])
    state.reconcile()
    first = _reindexer(ctx, registry, marker, state, batch=2)
    job = first.start(first.targets(), named=False)
    assert first._batch(job) == 2  # then the process dies
    second = _reindexer(ctx, registry, marker, state, batch=2)
    with pytest.raises(ReindexRefused, match="running in another process"):
        second.start(second.targets(), named=False)
    with ctx.database.write() as conn:  # a minute later nobody has heard of the first process
        conn.execute(update(reindex_job).values(heartbeat=clock.now() - timedelta(seconds=61)))
    with pytest.raises(ReindexRefused, match="must finish first"):
        second.start({"Observation": None}, named=True)
    resumed = second.start(second.targets(), named=False)
    assert (resumed.resumed, resumed.id, resumed.done) == (True, job.id, 2)
    second.run(resumed)
    assert (resumed.done, dict(resumed.counts)) == (5, {"Observation": 5})
    assert [code for _id, code in _rows(ctx, "test-method")] == ["a", "b", "c", "d", "e"]
    with pytest.raises(ReindexRefused, match="taken over"):
        first._batch(job)  # the first process, back, may not write any more
    assert state.pending(force=True) == frozenset()


def test_changed_marks_are_recomputed(ctx):
    _observations(ctx, "hidden", "shown")
    registry, _marker, _state = _setup(ctx)
    hide = Mark(8, frozenset({"Observation"}), (TokenMatch("test-method", "hidden"),))
    marks = (*patient_marks(registry), hide)
    registry, marker, state = _setup(ctx, [METHOD], marks=marks)
    assert state.reconcile() == {("Observation", "test-method"), ("Observation", MARKS)}
    reindexer = _reindexer(ctx, registry, marker, state)
    reindexer.run(reindexer.start(reindexer.targets(), named=False))
    with ctx.database.read() as conn:
        bits = dict(conn.execute(select(resource.c.fhir_id, resource.c.marks).where(
            resource.c.resource_type == "Observation")).all())
    assert bits["o0"] & 8 and not bits["o1"] & 8


def test_named_targets_and_unknown_names(ctx):
    _observations(ctx, "a")
    registry, marker, state = _setup(ctx, [METHOD])
    reindexer = _reindexer(ctx, registry, marker, state)
    assert reindexer.targets(["Observation"]) == {"Observation": None}
    assert reindexer.targets([], ["test-method"]) == {"Observation": ["test-method"]}
    assert set(reindexer.targets([], ["patient"])) >= {"Observation", "Condition", "Encounter"}
    with pytest.raises(ValueError, match="unknown resource type Nope"):
        reindexer.targets(["Nope"])
    with pytest.raises(ValueError, match="no indexed search parameter nope"):
        reindexer.targets(["Observation"], ["nope"])
    job = reindexer.run(reindexer.start(reindexer.targets(["Observation"]), named=True))  # every parameter
    assert job.done == 1
    with ctx.database.read() as conn:
        assert conn.execute(select(func.count()).select_from(ix_token).where(
            ix_token.c.param == "test-method")).scalar_one() == 1


def test_a_reindex_whose_process_died_on_this_host_is_resumed_at_once(ctx):
    import socket
    import subprocess

    _observations(ctx, "a", "b", "c")
    registry, marker, state = _setup(ctx, [METHOD])
    state.reconcile()
    first = _reindexer(ctx, registry, marker, state, batch=2)
    job = first.start(first.targets(), named=False)
    first._batch(job)
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid no process has any more: the reindex was killed
    with ctx.database.write() as conn:
        conn.execute(update(reindex_job).values(worker=f"{socket.gethostname()}:{ended.pid}:0badf00d"))
    second = _reindexer(ctx, registry, marker, state, batch=2)
    resumed = second.start(second.targets(), named=False)  # no minute's wait for its heartbeat to go stale
    assert (resumed.resumed, resumed.id, resumed.done) == (True, job.id, 2)
    with ctx.database.write() as conn:  # on another host only the heartbeat tells
        conn.execute(update(reindex_job).values(worker=f"elsewhere:{ended.pid}:0badf00d", heartbeat=clock.now()))
    with pytest.raises(ReindexRefused, match="running in another process"):
        _reindexer(ctx, registry, marker, state, batch=2).start(second.targets(), named=False)


def test_a_reindex_of_contained_rebuilds_the_rows_of_contained_resources_only(ctx):
    _observations(ctx, "a")
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "List", "status": "current", "mode": "working",
                                     "contained": [{**observation("p1"), "id": "inside"}],
                                     "entry": [{"item": {"reference": "#inside"}}]}, fhir_id="l1")
        for table in (contained_resource, *CONTAINED_TABLES.values()):
            conn.execute(table.delete())  # as a database from before the contained index had them
    registry, marker, state = _setup(ctx)
    reindexer = _reindexer(ctx, registry, marker, state)
    targets = reindexer.targets(codes=[CONTAINED])
    assert targets["List"] == [CONTAINED] and targets["Observation"] == [CONTAINED]
    reindexer.run(reindexer.start(targets, named=True))
    with ctx.database.read() as conn:
        assert conn.execute(select(contained_resource.c.resource_type, contained_resource.c.contained_id)).all() \
            == [("Observation", "inside")]
        token = CONTAINED_TABLES["token"]
        assert ("code", "4548-4") in conn.execute(select(token.c.param, token.c.code)).all()
    assert [fhir_id for fhir_id, _code in _rows(ctx, "code")] == ["o0"]  # the top-level rows untouched
