"""``_contained`` / ``_containedType``: searching the resources contained in others — what is found with
each value, the containers' visibility for a patient's token, and the contained rows kept in step
with their container's updates and deletion."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fhirportal.store.contained_schema import CONTAINED_TABLES, contained_resource
from tests.fhir.test_authorization import PATIENT_SCOPES, ids, mint
from tests.support import Fhir, patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
AMOXICILLIN, IBUPROFEN, INSULIN = "308182", "197806", "311034"
BASE = "http://localhost/fhir"


def medication(code: str, **extra) -> dict:
    return {"resourceType": "Medication", "code": {"coding": [{"system": RXNORM, "code": code}]}, **extra}


def prescription(patient_id: str, code: str, **extra) -> dict:
    return {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"},
            "contained": [{**medication(code), "id": "med"}],
            "medicationReference": {"reference": "#med"}, **extra}


@pytest.fixture
def meds(fhir):
    for patient_id in ("p1", "p2"):
        assert fhir.put(f"Patient/{patient_id}", patient(id=patient_id)).status_code == 201
    made = {
        "MedicationRequest/rx1": prescription("p1", AMOXICILLIN),
        "MedicationRequest/rx2": prescription("p2", IBUPROFEN),
        "Medication/top": medication(AMOXICILLIN),
        "Medication/other": medication(INSULIN),
    }
    for reference, body in made.items():
        answer = fhir.put(reference, {**body, "id": reference.split("/")[1]})
        assert answer.status_code == 201, answer.get_json()
    return fhir


def _bundle(client, query: str) -> dict:
    answer = client.get(query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _full_urls(bundle: dict) -> set[str]:
    return {entry["fullUrl"] for entry in bundle.get("entry", [])}


def test_contained_true_finds_the_containers(meds):
    bundle = _bundle(meds, f"Medication?_contained=true&code={RXNORM}|{AMOXICILLIN}")
    assert ids(bundle) == {"MedicationRequest/rx1"}
    assert _full_urls(bundle) == {f"{BASE}/MedicationRequest/rx1"}
    assert ids(_bundle(meds, "Medication?_contained=true")) == {"MedicationRequest/rx1", "MedicationRequest/rx2"}
    assert ids(_bundle(meds, f"Medication?_contained=true&_containedType=container&code={INSULIN}")) == set()


def test_contained_type_contained_returns_the_contained_resources_with_their_local_full_url(meds):
    bundle = _bundle(meds, f"Medication?_contained=true&_containedType=contained&code={AMOXICILLIN}")
    assert [entry["resource"] for entry in bundle["entry"]] == [{**medication(AMOXICILLIN), "id": "med"}]
    assert _full_urls(bundle) == {f"{BASE}/MedicationRequest/rx1#med"}
    assert bundle["entry"][0]["search"] == {"mode": "match"}


def test_contained_false_is_the_usual_search(meds):
    for query in (f"Medication?code={AMOXICILLIN}", f"Medication?_contained=false&code={AMOXICILLIN}"):
        assert ids(_bundle(meds, query)) == {"Medication/top"}


def test_both_finds_top_level_and_contained(meds):
    both = _bundle(meds, f"Medication?_contained=both&code={AMOXICILLIN}&_total=accurate")
    assert ids(both) == {"Medication/top", "MedicationRequest/rx1"}
    assert both["total"] == 2
    contained = _bundle(meds, f"Medication?_contained=both&_containedType=contained&code={AMOXICILLIN}")
    assert _full_urls(contained) == {f"{BASE}/Medication/top", f"{BASE}/MedicationRequest/rx1#med"}


def test_criteria_apply_to_one_contained_resource_and_combine(meds):
    meds.put("MedicationRequest/rx3", {**prescription("p1", INSULIN), "id": "rx3", "contained": [
        {**medication(INSULIN), "id": "a"}, {**medication(IBUPROFEN, status="inactive"), "id": "b"}]})
    query = "Medication?_contained=true&_containedType=contained"
    assert _full_urls(_bundle(meds, f"{query}&code={INSULIN}&status=inactive")) == set()
    assert _full_urls(_bundle(meds, f"{query}&code={IBUPROFEN}&status=inactive")) == {
        f"{BASE}/MedicationRequest/rx3#b"}
    assert _full_urls(_bundle(meds, f"{query}&_id=a")) == {f"{BASE}/MedicationRequest/rx3#a"}
    assert _full_urls(_bundle(meds, f"{query}&code:not={AMOXICILLIN}&status:missing=true")) == {
        f"{BASE}/MedicationRequest/rx2#med", f"{BASE}/MedicationRequest/rx3#a"}


def test_paging_walks_every_match_once(meds):
    for number in range(3, 8):
        meds.put(f"MedicationRequest/rx{number}", {**prescription("p1", AMOXICILLIN), "id": f"rx{number}"})
    seen, query = [], "Medication?_contained=both&_containedType=contained&_count=2"
    bundle = _bundle(meds, query)
    while True:
        seen += [entry["fullUrl"] for entry in bundle.get("entry", [])]
        following = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if following is None:
            break
        bundle = _bundle(meds, following.removeprefix(BASE + "/"))
    assert len(seen) == len(set(seen)) == 9  # 7 contained, 2 top-level


def test_a_patient_finds_only_what_its_own_containers_hold(ctx, client, meds):
    as_p2 = Fhir(client, mint(ctx, PATIENT_SCOPES, patient="p2", fhirUser="Patient/p2"))
    assert ids(_bundle(as_p2, f"Medication?_contained=true&code={AMOXICILLIN}")) == set()
    assert ids(_bundle(as_p2, "Medication?_contained=true")) == {"MedicationRequest/rx2"}
    contained = _bundle(as_p2, "Medication?_contained=both&_containedType=contained&_total=accurate")
    assert _full_urls(contained) == {f"{BASE}/MedicationRequest/rx2#med", f"{BASE}/Medication/top",
                                     f"{BASE}/Medication/other"}
    assert contained["total"] == 3


def test_summary_elements_and_count(meds):
    query = "Medication?_contained=true&_containedType=contained"
    counted = _bundle(meds, f"{query}&_summary=count")
    assert counted["total"] == 2 and "entry" not in counted
    subset = _bundle(meds, f"{query}&_elements=code&code={AMOXICILLIN}")
    assert subset["entry"][0]["resource"]["code"] == medication(AMOXICILLIN)["code"]
    assert "status" not in subset["entry"][0]["resource"]


@pytest.mark.parametrize("cursor", ["abc", "WzEsIDJd", "WyIxIiwgIngiXQ", "WzEsICJcdTAwMDAiXQ", "WzEsICIiXQ"])
def test_a_cursor_of_another_search_or_malformed_is_a_400(meds, cursor):
    answer = meds.get(f"Medication?_contained=true&_cursor={cursor}")
    assert answer.status_code in (200, 400), answer.get_json()
    if answer.status_code == 400:
        assert answer.get_json()["issue"][0]["expression"] == ["_cursor"]


def test_a_token_that_may_not_see_the_containers_finds_nothing_in_them(ctx, client, meds):
    medications_only = Fhir(client, mint(ctx, "system/Medication.rs"))
    assert ids(_bundle(medications_only, "Medication?_contained=true")) == set()
    assert ids(_bundle(medications_only, "Medication?_contained=both")) == {"Medication/top", "Medication/other"}


def _contained_rows(ctx) -> int:
    with ctx.database.read() as conn:
        return sum(conn.execute(select(func.count()).select_from(table)).scalar_one()
                   for table in (contained_resource, *CONTAINED_TABLES.values()))


def test_updating_and_deleting_the_container_updates_and_removes_its_contained_rows(ctx, meds):
    query = "Medication?_contained=true"
    changed = {**prescription("p1", INSULIN), "id": "rx1"}
    assert meds.put("MedicationRequest/rx1", changed).status_code == 200
    assert ids(_bundle(meds, f"{query}&code={AMOXICILLIN}")) == set()
    assert ids(_bundle(meds, f"{query}&code={INSULIN}")) == {"MedicationRequest/rx1"}
    without = {key: value for key, value in changed.items() if key != "contained"}
    without["medicationCodeableConcept"] = medication(INSULIN)["code"]
    del without["medicationReference"]
    assert meds.put("MedicationRequest/rx1", without).status_code == 200
    assert ids(_bundle(meds, query)) == {"MedicationRequest/rx2"}
    before = _contained_rows(ctx)
    assert meds.delete("MedicationRequest/rx2").status_code in (200, 204)
    assert ids(_bundle(meds, query)) == set()
    assert _contained_rows(ctx) < before
    assert _contained_rows(ctx) == 0


@pytest.mark.parametrize("query, named", [
    ("Medication?_contained=maybe", "_contained"),
    ("Medication?_containedType=foo", "_containedType"),
    ("Medication?_contained=true&_sort=code", "_contained"),
    ("Medication?_contained=true&_include=Medication:manufacturer", "_contained"),
    ("Medication?_contained=both&_lastUpdated=gt2020", "_lastUpdated"),
    ("Medication?_contained=true&manufacturer.name=x", "manufacturer.name"),
    ("Medication?_contained=true&_has:MedicationRequest:medication:status=active", "_has"),
    ("Medication?_contained=true&_list=x", "_list"),
    ("?_type=Medication,Observation&_contained=true", "_contained"),
])
def test_what_cannot_be_answered_is_a_400_naming_it(meds, query, named):
    answer = meds.get(query)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["issue"][0]["expression"] == [named]
