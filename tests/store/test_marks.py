"""Marks: bits decided when a resource is written, kept on its row and tested by Visibility rules."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fhirportal.errors import NotFound
from fhirportal.fhir.authorization import UNSHARED_LAB_MARK, WITHHELD_MARK
from fhirportal.store.marks import Mark, Marker, TokenMatch
from fhirportal.store.schema import resource
from fhirportal.store.search.visibility import TypeRule, Visibility
from tests.support import observation, patient

LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
VITAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
SHARED = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}
NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}


def _row(param, code, system=None):
    return {"param": param, "code": code, "system": system, "text": None}


def test_a_mark_needs_a_matching_row_and_none_of_its_exceptions():
    mark = Mark(4, frozenset({"Observation"}), (TokenMatch("category", "laboratory", "s"),),
                unless=(TokenMatch("_tag", "shared"),))
    marker = Marker([mark, Mark(1, frozenset({"Observation"}), (TokenMatch("status", "entered-in-error"),))])
    assert marker.marks_of("Observation", {"token": [_row("category", "laboratory", "s")]}) == 4
    assert marker.marks_of("Observation", {"token": [_row("category", "laboratory", "other")]}) == 0
    assert marker.marks_of("Observation", {"token": [_row("category", "laboratory", "s"),
                                                      _row("_tag", "shared", "any")]}) == 0
    assert marker.marks_of("Observation", {"token": [_row("category", "laboratory", "s"),
                                                      _row("status", "entered-in-error", "x")]}) == 5
    assert marker.marks_of("Condition", {"token": [_row("category", "laboratory", "s")]}) == 0
    assert marker.marks_of("Observation", {}) == 0


@pytest.mark.parametrize("bit", [0, 3, -2, 1 << 15])
def test_a_mark_is_one_bit_of_a_small_integer(bit):
    with pytest.raises(ValueError, match="power of two"):
        Marker([Mark(bit, frozenset({"Observation"}), (TokenMatch("status", "final"),))])


def _marks(ctx, resource_type, fhir_id) -> int:
    with ctx.database.read() as conn:
        return conn.execute(select(resource.c.marks).where(resource.c.resource_type == resource_type,
                                                           resource.c.fhir_id == fhir_id)).scalar_one()


def test_the_repository_marks_what_it_writes_and_remarks_on_update(ctx):
    repo = ctx.repository
    lab = {**observation("p1"), "category": [LAB]}
    with ctx.database.write() as conn:
        repo.update(conn, "Patient", "p1", patient(id="p1", meta={"security": [NOPAT]}))
        repo.create(conn, lab, fhir_id="lab")
        repo.create(conn, {**lab, "meta": {"tag": [SHARED]}}, fhir_id="shared")
        repo.create(conn, {**lab, "meta": {"tag": [SHARED], "security": [NOPAT]}}, fhir_id="nopat")
        repo.create(conn, {**observation("p1", category=[VITAL]), "status": "entered-in-error"}, fhir_id="error")
        repo.create(conn, observation("p1", category=[VITAL]), fhir_id="vital")
    assert _marks(ctx, "Patient", "p1") == 0  # the people are never withheld from themselves
    assert _marks(ctx, "Observation", "lab") == UNSHARED_LAB_MARK
    assert _marks(ctx, "Observation", "shared") == 0
    assert _marks(ctx, "Observation", "nopat") == WITHHELD_MARK
    assert _marks(ctx, "Observation", "error") == WITHHELD_MARK
    assert _marks(ctx, "Observation", "vital") == 0
    with ctx.database.write() as conn:  # sharing it, then withdrawing the result, changes its marks
        repo.update(conn, "Observation", "lab", {**lab, "meta": {"tag": [SHARED]}})
    assert _marks(ctx, "Observation", "lab") == 0
    with ctx.database.write() as conn:
        repo.update(conn, "Observation", "lab", {**lab, "status": "entered-in-error"})
    assert _marks(ctx, "Observation", "lab") == WITHHELD_MARK | UNSHARED_LAB_MARK


def test_a_rule_without_marks_hides_marked_rows_from_reads_searches_and_counts(ctx):
    repo = ctx.repository
    lab = {**observation("p1"), "category": [LAB]}
    with ctx.database.write() as conn:
        repo.update(conn, "Patient", "p1", patient(id="p1"))
        repo.create(conn, lab, fhir_id="lab")
        repo.create(conn, {**lab, "meta": {"security": [NOPAT]}}, fhir_id="nopat")
        repo.create(conn, observation("p1", category=[VITAL]), fhir_id="vital")
    hide_all = Visibility({"Observation": TypeRule(without_marks=WITHHELD_MARK | UNSHARED_LAB_MARK)})
    hide_withheld = Visibility({"Observation": TypeRule(without_marks=WITHHELD_MARK)})
    with ctx.database.read() as conn:
        assert {r.fhir_id for r in repo.search(conn, "Observation", [], visibility=hide_all).matches} == {"vital"}
        assert {r.fhir_id for r in repo.search(conn, "Observation", [], visibility=hide_withheld).matches} == {
            "vital", "lab"}
        assert repo.count(conn, ["Observation"], [], visibility=hide_all) == 1
        with pytest.raises(NotFound):
            repo.read(conn, "Observation", "lab", visibility=hide_all)
        assert repo.read(conn, "Observation", "lab", visibility=hide_withheld).fhir_id == "lab"
