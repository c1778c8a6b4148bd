"""What a patient's (or caregiver's) token may see of the access log: the entries about its own records and
its own actions, and never another patient, nor another patient's caregiver, account or query. Two
patients and their two caregivers try each other's records; then every way each of them has of reading the
log — AuditEvent read, search (unfiltered, by each parameter, paged, with _include), $everything and the
access-log page — leaves no trace of the other family, while the owner sees that someone tried."""

from __future__ import annotations

import json

import pytest

from tests.smart import flows
from tests.support import Fhir, patient

FAMILIES = {
    "alpha": {"patient": "patient-alpha", "caregiver": "rp-alpha", "user": "alpha-user", "carer": "alpha-carer"},
    "bravo": {"patient": "patient-bravo", "caregiver": "rp-bravo", "user": "bravo-user", "carer": "bravo-carer"},
}
VITALS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}


@pytest.fixture
def families(ctx, fhir, app):
    """Each family: the patient, a caregiver, their accounts, tokens, and a record of the patient's."""
    accounts = app.extensions["smart"].accounts
    made = {}
    for name, family in FAMILIES.items():
        fhir.put(f"Patient/{family['patient']}", patient(id=family["patient"], name=[{"family": name.title()}]))
        fhir.put(f"RelatedPerson/{family['caregiver']}", {
            "resourceType": "RelatedPerson", "id": family["caregiver"], "name": [{"family": f"{name.title()}Carer"}],
            "patient": {"reference": f"Patient/{family['patient']}"}})
        record = fhir.create({"resourceType": "Observation", "status": "final", "category": [VITALS],
                              "code": {"text": f"{name} weight"}, "valueQuantity": {"value": 70, "unit": "kg"},
                              "subject": {"reference": f"Patient/{family['patient']}"}})
        own = accounts.create(family["user"], flows.PASSWORD, kind="patient", fhir_user=f"Patient/{family['patient']}",
                              patients=[family["patient"]])
        carer = accounts.create(family["carer"], flows.PASSWORD, kind="patient",
                                fhir_user=f"RelatedPerson/{family['caregiver']}", patients=[family["patient"]])
        tokens = {}
        for who, account, user in (("patient", own, f"Patient/{family['patient']}"),
                                   ("caregiver", carer, f"RelatedPerson/{family['caregiver']}")):
            tokens[who] = ctx.tokens.mint(client_id=f"{name}-{who}-app", scope="patient/*.rs", account_id=account.id,
                                          context={"patient": family["patient"], "fhirUser": user})
        made[name] = {**family, "record": record["id"], "tokens": tokens}
    return made


def _try_each_other(client, families) -> None:
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        target = families[other]
        for who in ("patient", "caregiver"):
            app = Fhir(client, families[name]["tokens"][who])
            assert app.get(f"Patient/{families[name]['patient']}").status_code == 200  # their own
            assert app.get(f"Patient/{target['patient']}").status_code in (403, 404)
            assert app.get(f"Observation/{target['record']}").status_code in (403, 404)
            assert app.get(f"Observation?patient={target['patient']}").status_code in (200, 403)
            assert app.get(f"Observation?subject=Patient/{target['patient']}&code=x").status_code in (200, 403)


def _traces(family: dict) -> list[str]:
    return [family["patient"], family["caregiver"], family["user"], family["carer"], family["record"],
            f"{'alpha' if 'alpha' in family['patient'] else 'bravo'}-patient-app",
            f"{'alpha' if 'alpha' in family['patient'] else 'bravo'}-caregiver-app"]


def _all_pages(app: Fhir, url: str) -> list[dict]:
    bodies = []
    while url:
        answer = app.get(url)
        assert answer.status_code == 200, (url, answer.get_json())
        bodies.append(answer.get_json())
        url = next((link["url"].replace("http://localhost/fhir/", "") for link in answer.get_json().get("link", [])
                    if link["relation"] == "next"), None)
    return bodies


def _what_the_log_shows(client, ctx, family: dict, who: str) -> str:
    """Everything this member of the family can read of the log, as one text."""
    app = Fhir(client, family["tokens"][who])
    ctx.audit.flush()
    seen = []
    searches = ["AuditEvent?_count=5", f"AuditEvent?patient={family['patient']}",
                f"AuditEvent?patient={family['patient']}&_include=AuditEvent:patient&_include=AuditEvent:agent"
                "&_include=AuditEvent:entity", "AuditEvent?outcome=4", "AuditEvent?action=R,E",
                "AuditEvent?subtype=read,search-type", "AuditEvent?date=ge2000", "AuditEvent?entity-type=Observation",
                f"AuditEvent?agent=Patient/{family['patient']}", f"AuditEvent?entity=Patient/{family['patient']}",
                "AuditEvent?_sort=date&_count=3", f"Patient/{family['patient']}/$everything?_count=7",
                f"Patient?_id={family['patient']}&_revinclude=AuditEvent:patient&_revinclude=AuditEvent:agent"
                "&_revinclude=AuditEvent:entity", f"Patient?_id={family['patient']}&_revinclude=*"]
    for number, url in enumerate(searches):
        for body in _all_pages(app, url):
            seen.append(json.dumps(body))
            for entry in body.get("entry", []) if number == 1 else ():  # each event of the patient read too
                if entry["resource"]["resourceType"] == "AuditEvent":
                    read = app.get(f"AuditEvent/{entry['resource']['id']}")
                    assert read.status_code == 200
                    seen.append(read.get_data(as_text=True))
    return "\n".join(seen)


def test_no_family_sees_a_trace_of_the_other_in_the_log(client, ctx, families):
    _try_each_other(client, families)
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        for who in ("patient", "caregiver"):
            shown = _what_the_log_shows(client, ctx, families[name], who)
            for trace in _traces(families[other]):
                assert trace not in shown, f"{name}'s {who} sees {trace}"
            # what they do see: that another portal user tried their records, refused
            attempts = [e["resource"] for body in _all_pages(Fhir(client, families[name]["tokens"][who]),
                                                             "AuditEvent?outcome=4")
                        for e in body.get("entry", [])]
            strangers = [e for e in attempts if e["agent"][0]["who"] == {"display": "another portal user"}]
            assert len(strangers) >= 4, f"{name}'s {who} does not see the other family's attempts"
            assert all({"reference": f"Patient/{families[name]['patient']}"} in [x.get("what") for x in e["entity"]]
                       for e in strangers)


def test_staff_see_the_log_as_recorded(client, ctx, families, fhir):
    _try_each_other(client, families)
    ctx.audit.flush()
    bravo_tried = fhir.get(f"AuditEvent?patient={families['alpha']['patient']}&agent=Patient/patient-bravo"
                           "&outcome=4").get_json()["entry"]
    assert len(bravo_tried) >= 2
    assert all({"reference": "Patient/patient-bravo"} in [x.get("what") for x in e["resource"]["entity"]]
               for e in bravo_tried)


def test_the_access_log_page_names_no_one_of_the_other_family(client, ctx, families):
    _try_each_other(client, families)
    ctx.audit.flush()
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        for user in (FAMILIES[name]["user"], FAMILIES[name]["carer"]):
            page_client = client.application.test_client()  # signs in on the page's own form
            html = page_client.get("/auth/access-log").get_data(as_text=True)
            page_client.post(flows.form_action(html), data={"csrf_token": flows.hidden(html, "csrf_token"),
                                                            "step": "login", "username": user,
                                                            "password": flows.PASSWORD})
            text = page_client.get("/auth/access-log").get_data(as_text=True)
            assert "Another portal user" in text, text[:2000]
            for trace in _traces(families[other]) + ["Bravo" if other == "bravo" else "Alpha"]:
                assert trace not in text, f"{user}'s page shows {trace}"
