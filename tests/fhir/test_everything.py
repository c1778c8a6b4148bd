"""Patient/$everything: the compartment, paged, filtered, and nobody else's data."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.support import observation, patient


def _entries(fhir, url: str) -> list[dict]:
    page = fhir.get(url).get_json()
    entries = list(page.get("entry", []))
    while (nxt := {link["relation"]: link["url"] for link in page["link"]}.get("next")):
        parts = urlsplit(nxt)
        page = fhir.get(parts.path + "?" + parts.query).get_json()
        entries += page.get("entry", [])
    return entries


def test_everything_returns_the_compartment_and_referenced_resources(fhir):
    doctor = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    mine = fhir.create(patient(generalPractitioner=[{"reference": f"Practitioner/{doctor['id']}"}]))
    other = fhir.create(patient(name=[{"family": "Other"}]))
    my_obs = [fhir.create(observation(mine["id"]))["id"] for _ in range(3)]
    fhir.create(observation(other["id"]))
    fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                 "member": [{"entity": {"reference": f"Patient/{p['id']}"}} for p in (mine, other)]})
    entries = _entries(fhir, f"Patient/{mine['id']}/$everything?_count=2")
    matched = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries if e["search"]["mode"] == "match"}
    assert ("Patient", mine["id"]) in matched
    assert {i for t, i in matched if t == "Observation"} == set(my_obs)
    everything_ids = {e["resource"]["id"] for e in entries}
    assert other["id"] not in everything_ids
    assert doctor["id"] in everything_ids


def test_everything_type_and_since_filters(fhir):
    mine = fhir.create(patient())
    fhir.create(observation(mine["id"]))
    only_obs = _entries(fhir, f"Patient/{mine['id']}/$everything?_type=Observation")
    assert {e["resource"]["resourceType"] for e in only_obs if e["search"]["mode"] == "match"} <= {"Observation",
                                                                                                   "Patient"}
    later = _entries(fhir, f"Patient/{mine['id']}/$everything?_since=2999-01-01T00:00:00Z")
    assert later == []


def test_everything_errors(fhir):
    assert fhir.get("Patient/nobody/$everything").status_code == 404
    mine = fhir.create(patient())
    assert fhir.get(f"Patient/{mine['id']}/$everything?_type=Spaceship").status_code == 400
    assert fhir.get(f"Observation/{mine['id']}/$everything").status_code == 404
