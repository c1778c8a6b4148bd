"""The store's Visibility: per-type rules compiled into the same SQL as the query they restrict."""

from __future__ import annotations

import pytest

from fhirportal.errors import NotFound
from fhirportal.store.search.includes import IncludeSpec
from fhirportal.store.search.visibility import TypeRule, Visibility
from tests.support import observation, patient

OBSERVATION = ("subject", "performer")


@pytest.fixture
def stored(ctx):
    with ctx.database.write() as conn:
        repo = ctx.repository
        repo.update(conn, "Organization", "org1", {"resourceType": "Organization", "id": "org1"})
        repo.update(conn, "Patient", "p1", patient(id="p1", managingOrganization={"reference": "Organization/org1"}))
        repo.update(conn, "Patient", "p2", patient(id="p2"))
        repo.update(conn, "Observation", "o1", {**observation("p1"), "id": "o1"})
        repo.update(conn, "Observation", "o2", {**observation("p2"), "id": "o2"})
    return ctx


def _criteria(ctx, resource_type: str, name: str, value: str):
    from fhirportal.fhir.search_params import parse_search

    return tuple(parse_search(ctx.search_parameters, [resource_type], [(name, value)], strict=True).criteria)


RULES = {
    "patient": {"Patient": TypeRule(patient="p1"), "Observation": TypeRule(patient="p1", compartment=OBSERVATION),
                "Organization": TypeRule(patient="p1")},
    "organization": {"Patient": TypeRule(organization="org1"),
                     "Observation": TypeRule(organization="org1", compartment=OBSERVATION)},
    "types": {"Patient": TypeRule()},
}


@pytest.mark.parametrize(("rules", "patients", "observations"), [
    ("patient", {"p1"}, {"o1"}),
    ("organization", {"p1"}, {"o1"}),
    ("types", {"p1", "p2"}, set()),
])
def test_search_count_and_read_see_only_what_the_rules_allow(stored, rules, patients, observations):
    visibility = Visibility(RULES[rules])
    repo = stored.repository
    with stored.database.read() as conn:
        assert {r.fhir_id for r in repo.search(conn, "Patient", [], visibility=visibility).matches} == patients
        assert {r.fhir_id for r in repo.search(conn, "Observation", [], visibility=visibility).matches} == observations
        assert repo.count(conn, ["Patient", "Observation"], [], visibility=visibility) == len(patients | observations)
        for fhir_id in ("o1", "o2"):
            if fhir_id in observations:
                assert repo.read(conn, "Observation", fhir_id, visibility=visibility).fhir_id == fhir_id
            else:
                with pytest.raises(NotFound):
                    repo.read(conn, "Observation", fhir_id, visibility=visibility)


def test_includes_are_filtered_in_their_query(stored):
    visibility = Visibility(RULES["patient"])
    with stored.database.read() as conn:
        page = stored.repository.search(conn, "Observation", [], include=[IncludeSpec("Observation", "subject")],
                                        include_visibility=visibility)
    assert {r.fhir_id for r in page.matches} == {"o1", "o2"}  # matches unrestricted here
    assert {r.fhir_id for r in page.included} == {"p1"}


def test_required_alternatives_or_within_and_across(stored):
    lab = _criteria(stored, "Observation", "category", "laboratory")
    wrong = _criteria(stored, "Observation", "code", "nothing")
    mine = _criteria(stored, "Observation", "subject", "Patient/p1")
    cases = [
        (((lab,),), {"o1", "o2"}),
        (((wrong,),), set()),
        (((wrong, lab),), {"o1", "o2"}),  # OR of alternatives
        (((lab + mine,),), {"o1"}),  # AND within one
        (((lab,), (mine,)), {"o1"}),  # every requirement
    ]
    with stored.database.read() as conn:
        for require, expected in cases:
            visibility = Visibility({"Observation": TypeRule(require=require)})
            page = stored.repository.search(conn, "Observation", [], visibility=visibility)
            assert {r.fhir_id for r in page.matches} == expected, require
