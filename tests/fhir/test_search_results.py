"""Result parameters and cross-resource search: _sort with paging, _include/_revinclude (also
:iterate and *), chains, _has, _summary, _elements, _type, and how bad ones are refused."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support import observation, patient


def _get(fhir, url: str) -> dict:
    parts = urlsplit(url)
    return fhir.get(parts.path + ("?" + parts.query if parts.query else "")).get_json()


def _all_pages(fhir, first: str) -> list[dict]:
    page = fhir.get(first).get_json()
    entries = list(page.get("entry", []))
    while (nxt := {link["relation"]: link["url"] for link in page["link"]}.get("next")):
        page = _get(fhir, nxt)
        entries += page.get("entry", [])
    return entries


@pytest.fixture
def people(fhir) -> dict[str, dict]:
    names = [("Zed", "1990-01-01"), ("Adams", "1970-05-05"), ("Moss", "1980-03-03"), ("Baker", "2000-07-07")]
    created = {family: fhir.create(patient(name=[{"family": family}], birthDate=born)) for family, born in names}
    created["Nobirth"] = fhir.create({"resourceType": "Patient", "name": [{"family": "Nobirth"}]})
    return created


def test_sort_ascending_and_descending_across_pages(fhir, people):
    ascending = [e["resource"]["name"][0]["family"] for e in _all_pages(fhir, "Patient?_sort=family&_count=2")]
    assert ascending == ["Adams", "Baker", "Moss", "Nobirth", "Zed"]
    by_birth = [e["resource"]["name"][0]["family"] for e in _all_pages(fhir, "Patient?_sort=-birthdate&_count=2")]
    assert by_birth == ["Baker", "Zed", "Moss", "Adams", "Nobirth"]  # no value sorts last either way


def test_sort_paging_is_stable_while_data_changes(fhir, people):
    page = fhir.get("Patient?_sort=family&_count=2").get_json()
    fhir.create(patient(name=[{"family": "Aaron"}]))  # would shift an OFFSET-based second page
    nxt = {link["relation"]: link["url"] for link in page["link"]}["next"]
    second = [e["resource"]["name"][0]["family"] for e in _get(fhir, nxt)["entry"]]
    assert second == ["Moss", "Nobirth"]


def test_sort_by_several_keys_and_last_updated(fhir, people):
    fhir.create(patient(name=[{"family": "Adams"}], birthDate="1960-01-01"))
    families = [(e["resource"]["name"][0]["family"], e["resource"].get("birthDate"))
                for e in _all_pages(fhir, "Patient?_sort=family,-birthdate")]
    assert families[:2] == [("Adams", "1970-05-05"), ("Adams", "1960-01-01")]
    newest_first = _all_pages(fhir, "Patient?_sort=-_lastUpdated")
    assert newest_first[0]["resource"]["birthDate"] == "1960-01-01"


def test_include_and_revinclude(fhir, people):
    subject = people["Moss"]
    obs = fhir.create(observation(subject["id"]))
    included = fhir.get(f"Observation?_id={obs['id']}&_include=Observation:patient").get_json()["entry"]
    assert [(e["resource"]["resourceType"], e["search"]["mode"]) for e in included] == [
        ("Observation", "match"), ("Patient", "include")]
    reverse = fhir.get(f"Patient?_id={subject['id']}&_revinclude=Observation:subject").get_json()["entry"]
    assert [(e["resource"]["resourceType"], e["search"]["mode"]) for e in reverse] == [
        ("Patient", "match"), ("Observation", "include")]
    star = fhir.get(f"Observation?_id={obs['id']}&_include=*").get_json()["entry"]
    assert {e["resource"]["resourceType"] for e in star} == {"Observation", "Patient"}


def test_revinclude_provenance_and_iterate(fhir, people):
    practitioner = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    obs = fhir.create(observation(people["Zed"]["id"], performer=[{"reference": f"Practitioner/{practitioner['id']}"}]))
    fhir.create({"resourceType": "Provenance", "target": [{"reference": f"Observation/{obs['id']}"}],
                 "recorded": "2024-03-05T10:00:00Z",
                 "agent": [{"who": {"reference": f"Practitioner/{practitioner['id']}"}}]})
    entries = fhir.get(f"Observation?_id={obs['id']}&_revinclude=Provenance:target").get_json()["entry"]
    assert [e["resource"]["resourceType"] for e in entries] == ["Observation", "Provenance"]
    chained = fhir.get(f"Patient?_id={people['Zed']['id']}&_revinclude=Observation:subject"
                       "&_include:iterate=Observation:performer").get_json()["entry"]
    assert {e["resource"]["resourceType"] for e in chained} == {"Patient", "Observation", "Practitioner"}


def test_chained_parameters(fhir, people):
    obs = fhir.create(observation(people["Moss"]["id"]))
    fhir.create(observation(people["Zed"]["id"]))

    def ids(query):
        return {e["resource"]["id"] for e in fhir.get(query).get_json().get("entry", [])}

    assert ids("Observation?subject:Patient.name=moss") == {obs["id"]}
    assert ids("Observation?patient.family=Moss") == {obs["id"]}
    assert ids("Observation?patient.birthdate=1980") == {obs["id"]}
    assert ids("Observation?patient.family=Nobody") == set()


def test_has(fhir, people):
    fhir.create(observation(people["Baker"]["id"]))
    found = fhir.get("Patient?_has:Observation:patient:code=4548-4").get_json()["entry"]
    assert [e["resource"]["id"] for e in found] == [people["Baker"]["id"]]
    assert "entry" not in fhir.get("Patient?_has:Observation:patient:code=0000-0").get_json()


def test_summary_and_elements(fhir, people):
    subject = fhir.create(patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Ada</div>"},
                                  photo=[{"contentType": "image/png", "data": "AAAA"}]))
    summary = fhir.get(f"Patient?_id={subject['id']}&_summary=true").get_json()["entry"][0]["resource"]
    assert "photo" not in summary and summary["name"] and summary["meta"]["tag"][-1]["code"] == "SUBSETTED"
    data = fhir.get(f"Patient?_id={subject['id']}&_summary=data").get_json()["entry"][0]["resource"]
    assert "text" not in data and "photo" in data
    count = fhir.get("Patient?_summary=count").get_json()
    assert count["total"] == 6 and "entry" not in count
    picked = fhir.get(f"Patient?_id={subject['id']}&_elements=gender").get_json()["entry"][0]["resource"]
    assert set(picked) == {"resourceType", "id", "meta", "gender"}


def test_search_across_types(fhir, people):
    fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    bundle = fhir.get("/fhir?_type=Patient,Practitioner&_count=100").get_json()
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Patient", "Practitioner"}
    assert len(bundle["entry"]) == 6
    assert fhir.get("/fhir?_type=Spaceship").status_code == 404
    assert fhir.get("/fhir").status_code == 400


@pytest.mark.parametrize("query", [
    "Patient?_sort=shoe-size", "Patient?_include=Patient:nothing", "Patient?_summary=most",
    "Patient?_total=exact", "Observation?subject.shoe-size=9", "Patient?_has:Observation:patient:shoe=1",
    "Observation?subject:Practitioner.name=x", "Observation?code:nope=x",
])
def test_unsupported_result_parameters_strict_400_lenient_ignored(fhir, query):
    assert fhir.get(query).status_code == 400
    lenient = fhir.get(query, headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    name = query.split("?")[1].split("=")[0]
    assert name not in lenient.get_json()["link"][0]["url"]


def test_cursor_from_another_search_is_400(fhir, people):
    page = fhir.get("Patient?_sort=family&_count=2").get_json()
    cursor = {link["relation"]: link["url"] for link in page["link"]}["next"].split("_cursor=")[1]
    assert fhir.get(f"Patient?_count=2&_cursor={cursor}").status_code == 400


def test_total_estimate_is_a_count_that_costs_no_counting(fhir, ctx):
    for n in range(5):
        fhir.post("Patient", {"resourceType": "Patient", "name": [{"family": f"Estimate{n}"}]})
    estimated = fhir.get("Patient?_total=estimate").get_json()
    assert isinstance(estimated["total"], int) and estimated["total"] >= 0
    if ctx.database.dialect == "sqlite":  # no planner estimate to give: it counts
        assert estimated["total"] == 5
    assert "total" not in fhir.get("Patient?_total=none").get_json()
    assert "total" not in fhir.get("Patient").get_json()
    assert fhir.get("Patient?_total=accurate").get_json()["total"] == 5


def test_one_criterion_pages_in_pid_order_once_each_although_it_matches_several_rows(fhir):
    """A single criterion's index subquery yields only the page (its pids distinct): a patient whose
    family and given names both match appears once, deleted ones never, every page in order."""
    made = [fhir.create(patient(name=[{"family": f"Samson{n}", "given": ["Samuel", "Sam"]}]))["id"] for n in range(7)]
    fhir.create(patient(name=[{"family": "Other"}]))
    gone = fhir.create(patient(name=[{"family": "Samsonite"}]))["id"]
    assert fhir.delete(f"Patient/{gone}").status_code in (200, 204)
    entries = _all_pages(fhir, "Patient?name=sam&_count=3")
    assert [e["resource"]["id"] for e in entries] == made  # insertion order, no repeats, no gaps
    two = _all_pages(fhir, "Patient?name=sam&_count=2&given=samuel")  # two criteria: the general path
    assert [e["resource"]["id"] for e in two] == made
