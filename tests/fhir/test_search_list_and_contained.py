"""``_list`` (the entries of a List) and ``_contained`` / ``_containedType`` (their values; searching
into contained resources itself: test_search_contained.py)."""

from __future__ import annotations

import pytest

from tests.fhir.test_authorization import SHARED, ids, mint, practice  # noqa: F401  (the fixture)
from tests.support import Fhir, observation, patient


@pytest.fixture
def lists(fhir, practice):  # noqa: F811
    made = [
        {"resourceType": "List", "id": "mixed", "status": "current", "mode": "working",
         "subject": {"reference": "Patient/p1"},
         "contained": [{**observation("p1"), "id": "inside"}],
         "entry": [{"item": {"reference": r}} for r in (
             "Observation/p1-vital", "Observation/p1-lab-unshared", "Observation/p2-vital", "Patient/p1",
             "#inside", "http://elsewhere.org/fhir/Observation/1")]},
        {"resourceType": "List", "id": "other", "status": "current", "mode": "working",
         "subject": {"reference": "Patient/p2"}, "entry": [{"item": {"reference": "Observation/p2-lab-shared"}}]},
        {"resourceType": "List", "id": "empty", "status": "current", "mode": "working",
         "emptyReason": {"text": "nothing yet"}},
    ]
    for body in made:
        answer = fhir.put(f"List/{body['id']}", body)
        assert answer.status_code == 201, answer.get_json()
    return fhir


def test_list_selects_its_entries_of_the_searched_type(lists):
    bundle = lists.get("Observation?_list=mixed").get_json()
    assert ids(bundle) == {"Observation/p1-vital", "Observation/p1-lab-unshared", "Observation/p2-vital"}
    assert ids(lists.get("Patient?_list=mixed").get_json()) == {"Patient/p1"}
    assert ids(lists.get("Observation?_list=mixed,other").get_json()) == {
        "Observation/p1-vital", "Observation/p1-lab-unshared", "Observation/p2-vital", "Observation/p2-lab-shared"}


def test_list_combines_with_other_parameters(lists):
    assert ids(lists.get("Observation?_list=mixed&patient=p2").get_json()) == {"Observation/p2-vital"}
    assert ids(lists.get("Observation?_list=mixed&code=http://loinc.org|8867-4").get_json()) == {
        "Observation/p1-vital", "Observation/p2-vital"}


def test_an_unknown_empty_or_deleted_list_matches_nothing(lists):
    for query in ("Observation?_list=nope", "Observation?_list=empty"):
        answer = lists.get(query)
        assert answer.status_code == 200 and "entry" not in answer.get_json(), query
    assert lists.delete("List/other").status_code in (200, 204)
    assert "entry" not in lists.get("Observation?_list=other").get_json()


def test_a_patient_sees_only_its_own_lists_and_what_it_may_see_of_their_entries(ctx, client, lists):
    as_p1 = Fhir(client, mint(ctx, "launch/patient patient/*.rs", patient="p1", fhirUser="Patient/p1"))
    # its own List: the entries it may see (not p2's vital, not the unshared lab)
    assert ids(as_p1.get("Observation?_list=mixed").get_json()) == {"Observation/p1-vital"}
    # p2's List: not visible, so nothing — not even that it exists
    assert "entry" not in as_p1.get("Observation?_list=other").get_json()


def test_a_token_that_may_not_read_lists_gets_nothing_through_them(ctx, client, lists):
    observations_only = Fhir(client, mint(ctx, "system/Observation.rs"))
    assert "entry" not in observations_only.get("Observation?_list=mixed").get_json()
    assert len(ids(observations_only.get("Observation").get_json())) >= 3


@pytest.mark.parametrize("query, named", [
    ("Observation?_list=$current-problems", "_list"),
    ("Observation?_list=a%20b", "_list"),
    ("Observation?_list:not=mixed", "_list:not"),
    ("Observation?_list=", "_list"),
    ("Observation?_contained=yes", "_contained"),
    ("Observation?_containedType=everything", "_containedType"),
    ("Observation?_contained=true&_list=mixed", "_list"),
])
def test_what_is_not_supported_is_a_400_naming_it(lists, query, named):
    answer = lists.get(query)
    assert answer.status_code == 400, answer.get_json()
    issue = answer.get_json()["issue"][0]
    assert issue["expression"] == [named], issue


def test_lenient_handling_ignores_unknown_contained_values_and_leaves_them_out_of_the_self_link(lists):
    answer = lists.get("Observation?_contained=yes&patient=p2", headers={"Prefer": "handling=lenient"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert "_contained" not in body["link"][0]["url"]
    assert ids(body) == {"Observation/p2-vital", "Observation/p2-lab-shared"}


def test_the_contained_observation_of_a_list_is_found_inside_it(lists):
    assert ids(lists.get("Observation?_contained=true&patient=p1").get_json()) == {"List/mixed"}
    bundle = lists.get("Observation?_contained=true&_containedType=contained").get_json()
    assert [entry["fullUrl"] for entry in bundle["entry"]] == ["http://localhost/fhir/List/mixed#inside"]


def test_a_patient_finds_no_contained_record_its_rules_hide(ctx, client, lists):
    as_p1 = Fhir(client, mint(ctx, "launch/patient patient/*.rs", patient="p1", fhirUser="Patient/p1"))
    # its own List holds an unshared lab result: hidden inside the List as it is at the top level
    assert "entry" not in as_p1.get("Observation?_contained=true").get_json()
    shown = {"resourceType": "List", "id": "shown", "status": "current", "mode": "working",
             "subject": {"reference": "Patient/p1"}, "contained": [{**observation("p1", meta={"tag": [SHARED]}),
                                                                    "id": "lab"}]}
    assert lists.put("List/shown", shown).status_code == 201
    assert ids(as_p1.get("Observation?_contained=true").get_json()) == {"List/shown"}
    as_p2 = Fhir(client, mint(ctx, "launch/patient patient/*.rs", patient="p2", fhirUser="Patient/p2"))
    assert "entry" not in as_p2.get("Observation?_contained=true&patient=p1").get_json()


def test_the_defaults_are_accepted(lists):
    answer = lists.get("Patient?_contained=false&_containedType=container")
    assert answer.status_code == 200
    assert {"Patient/p1", "Patient/p2"} <= ids(answer.get_json())


def test_list_works_in_conditional_writes(lists):
    answer = lists.post("Patient", patient(id=None), headers={"If-None-Exist": "_list=mixed"})
    assert answer.status_code == 200  # Patient/p1 is the one match: nothing created
    assert answer.get_json()["id"] == "p1"
