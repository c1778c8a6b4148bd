"""The search interaction as far as the foundation takes it: criteria from the index tables,
lenient vs strict handling, paging links and totals.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.support import observation, patient


def _ids(response) -> set[str]:
    bundle = response.get_json()
    assert bundle["type"] == "searchset", bundle
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


def test_token_string_date_reference_search(fhir):
    ada = fhir.create(patient())
    grace = fhir.create(patient(name=[{"family": "Hopper", "given": ["Grace"]}], gender="other",
                                birthDate="1906-12-09",
                                identifier=[{"system": "https://fhirportal.dev/fhir/sid/mrn", "value": "MRN-2"}]))
    obs = fhir.create(observation(ada["id"]))
    assert _ids(fhir.get("Patient?family=love")) == {ada["id"]}
    assert _ids(fhir.get("Patient?name=GRACE")) == {grace["id"]}
    assert _ids(fhir.get("Patient?family:exact=Hopper")) == {grace["id"]}
    assert _ids(fhir.get("Patient?family:exact=hopper")) == set()
    assert _ids(fhir.get("Patient?gender=female,other")) == {ada["id"], grace["id"]}
    assert _ids(fhir.get("Patient?identifier=https://fhirportal.dev/fhir/sid/mrn|MRN-2")) == {grace["id"]}
    assert _ids(fhir.get("Patient?birthdate=1906")) == {grace["id"]}
    assert _ids(fhir.get("Patient?birthdate=ge1950-01-01")) == {ada["id"]}
    assert _ids(fhir.get(f"Observation?patient={ada['id']}")) == {obs["id"]}
    assert _ids(fhir.get(f"Observation?subject=Patient/{ada['id']}")) == {obs["id"]}
    assert _ids(fhir.get("Observation?code=http://loinc.org|4548-4")) == {obs["id"]}
    assert _ids(fhir.get("Observation?value-quantity=gt6")) == {obs["id"]}
    assert _ids(fhir.get("Observation?value-quantity=lt6")) == set()
    assert _ids(fhir.get(f"Patient?_id={grace['id']}")) == {grace["id"]}


def test_accents_and_case_are_folded(fhir):
    zoe = fhir.create(patient(name=[{"family": "Ñandú", "given": ["Zoë"]}]))
    assert _ids(fhir.get("Patient?given=zoe")) == {zoe["id"]}
    assert _ids(fhir.get("Patient?family=nandu")) == {zoe["id"]}


def test_deleted_resources_are_not_found(fhir):
    gone = fhir.create(patient())
    fhir.delete(f"Patient/{gone['id']}")
    assert _ids(fhir.get("Patient?family=Lovelace")) == set()


def test_updates_reindex(fhir):
    created = fhir.create(patient())
    fhir.put(f"Patient/{created['id']}", dict(created, name=[{"family": "Byron"}]))
    assert _ids(fhir.get("Patient?family=Lovelace")) == set()
    assert _ids(fhir.get("Patient?family=Byron")) == {created["id"]}


def test_unknown_parameter_lenient_vs_strict(fhir):
    fhir.create(patient())
    lenient = fhir.get("Patient?shoe-size=9&gender=female", headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    self_link = lenient.get_json()["link"][0]["url"]
    assert "shoe-size" not in self_link and "gender=female" in self_link
    strict = fhir.get("Patient?shoe-size=9")  # strict by default
    assert strict.status_code == 400
    assert strict.get_json()["issue"][0]["expression"] == ["shoe-size"]


def test_malformed_values_are_400(fhir):
    assert fhir.get("Patient?birthdate=last-tuesday").status_code == 400
    assert fhir.get("Observation?value-quantity=lots").status_code == 400


def test_post_search_form_encoded(fhir):
    ada = fhir.create(patient())
    response = fhir.post("/fhir/Patient/_search", data={"family": "Lovelace"}, content_type=None)
    assert _ids(response) == {ada["id"]}
    assert fhir.post("/fhir/Patient/_search", json={"family": "x"}, content_type=None).status_code == 415


def test_paging_and_total(fhir):
    ids = {fhir.create(patient())["id"] for _ in range(5)}
    page = fhir.get("Patient?_count=2&_total=accurate").get_json()
    assert page["total"] == 5
    seen = {e["resource"]["id"] for e in page["entry"]}
    while True:
        links = {link["relation"]: link["url"] for link in page["link"]}
        if "next" not in links:
            break
        parts = urlsplit(links["next"])
        page = fhir.get(parts.path + "?" + parts.query).get_json()
        seen |= {e["resource"]["id"] for e in page.get("entry", [])}
    assert seen == ids
    assert fhir.get("Patient?_count=0").get_json()["total"] == 5
