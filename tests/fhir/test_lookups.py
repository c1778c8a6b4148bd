"""A transaction's conditional searches are built before its write begins (``fhir.lookups``): inside
the write, which on SQLite holds the one writers' turn, only their statements run."""

from __future__ import annotations

from contextlib import contextmanager

from tests.support import observation, patient

MRN = "https://fhirportal.dev/fhir/sid/mrn"
LAB = "urn:lab"


def _push(mrn: str, lab_id: str, previous: str | None) -> dict:
    """The EHR's shape: a lab result created unless it exists, the previous one updated, both with a
    conditional reference to their patient."""
    subject = {"reference": f"Patient?identifier={MRN}|{mrn}"}
    entries = [{"resource": observation("x", subject=subject, identifier=[{"system": LAB, "value": lab_id}]),
                "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier={LAB}|{lab_id}"}}]
    if previous:
        entries.append({"resource": observation("x", subject=subject, status="final",
                                                identifier=[{"system": LAB, "value": previous}]),
                        "request": {"method": "PUT", "url": f"Observation?identifier={LAB}|{previous}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@contextmanager
def _watching(ctx, monkeypatch):
    """Records, for each statement of a search by ids built, whether a write was open."""
    writing, built = [False], []
    database, repository = ctx.database, ctx.repository
    write, ids_query = database.write, repository.ids_query

    @contextmanager
    def watched_write(*args, **kwargs):
        with write(*args, **kwargs) as conn:
            writing[0] = True
            try:
                yield conn
            finally:
                writing[0] = False

    def watched_ids_query(*args, **kwargs):
        built.append(writing[0])
        return ids_query(*args, **kwargs)

    monkeypatch.setattr(database, "write", watched_write)
    monkeypatch.setattr(repository, "ids_query", watched_ids_query)
    yield built


def test_conditional_searches_are_built_before_the_write(fhir, ctx, monkeypatch):
    response = fhir.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(identifier=[{"system": MRN, "value": "L1"}]), "request": {"method": "POST",
                                                                                     "url": "Patient"}}]},
        content_type="application/fhir+json")
    assert response.status_code == 200
    fhir.post("/fhir", json=_push("L1", "lab-1", None), content_type="application/fhir+json")
    with _watching(ctx, monkeypatch) as built:
        response = fhir.post("/fhir", json=_push("L1", "lab-2", "lab-1"), content_type="application/fhir+json")
    assert response.status_code == 200, response.get_json()
    assert [e["response"]["status"] for e in response.get_json()["entry"]] == ["201 Created", "200 OK"]
    # ifNoneExist, the PUT's criteria and the one conditional reference (the same in both entries)
    assert built == [False, False, False]
    found = fhir.get(f"/fhir/Observation?identifier={LAB}|lab-1").get_json()["entry"][0]["resource"]
    assert found["status"] == "final" and found["subject"]["reference"].startswith("Patient/")


def test_a_search_that_cannot_be_built_fails_at_its_entry(fhir):
    bad = _push("L2", "lab-3", None)
    bad["entry"][0]["request"]["ifNoneExist"] = "no-such-parameter=1"
    response = fhir.post("/fhir", json=bad, content_type="application/fhir+json")
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert "no-such-parameter" in issue["diagnostics"]
    assert issue["expression"][0].startswith("Bundle.entry[0]")

    unresolvable = _push("L2", "lab-3", None)
    unresolvable["entry"][0]["resource"]["subject"] = {"reference": "Patient?identifier=nobody|none"}
    response = fhir.post("/fhir", json=unresolvable, content_type="application/fhir+json")
    assert response.status_code == 422
    assert "matches no resources" in response.get_json()["issue"][0]["diagnostics"]
    assert fhir.get(f"/fhir/Observation?identifier={LAB}|lab-3").get_json().get("total", 0) == 0
