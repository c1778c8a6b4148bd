"""Consent by kind of record: a wildcard patient scope (v2 ``patient/*.rs`` or v1 ``patient/*.read``) is
offered as one choice per kind; what is unticked is refused to the app (403), the token's scope says
exactly what was granted, and the connected-apps page shows the grant by kind and narrows it."""

from __future__ import annotations

import re

import pytest

from fhirportal.smart.consent import choices, grant_choices, granted
from fhirportal.smart.scopes import parse_scopes
from tests.smart.flows import authorization_params, consent, exchange, login, redirect_params
from tests.support import observation

LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
SHARED = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}


@pytest.fixture
def patient_types(app):
    return app.extensions["smart"].patient_types


@pytest.mark.parametrize("wildcard", ["patient/*.rs", "patient/*.read"])
def test_a_wildcard_is_offered_as_kinds_of_record(wildcard, patient_types):
    offered = choices(parse_scopes(f"openid launch/patient {wildcard}"), patient_types)
    labels = [c.label for c in offered]
    for kind in ("Medications", "Allergies", "Immunizations", "Problems and diagnoses", "Lab results",
                 "Vital signs (weight, blood pressure, …)", "Visits", "Visit notes, documents and imaging reports",
                 "Appointments", "Care plans, goals and care team", "Other records not listed above"):
        assert kind in labels, kind
    forms = next(c for c in offered if c.label == "Forms you filled in and forms to fill in")
    assert "patient/Task.rs" in forms.scope.split()  # the forms the practice assigns (Tasks)
    labs = next(c for c in offered if c.label == "Lab results")
    assert labs.ticked and f"patient/Observation.rs?category={LAB}" in labs.scope.split()
    assert "patient/DiagnosticReport.rs?category=http://terminology.hl7.org/CodeSystem/v2-0074|LAB" in labs.scope


def _grant(patient_types, unticked: tuple[str, ...] = (), requested="patient/*.rs"):
    asked = parse_scopes(f"openid {requested}")
    ticked = [c.scope for c in choices(asked, patient_types) if c.label not in unticked]
    return granted(asked, ticked, patient_types, contexts={"patient"}, allowed_other={"openid"},
                   patient_types=patient_types)


def test_everything_ticked_grants_the_wildcard_itself(patient_types):
    assert _grant(patient_types).text == "patient/*.rs openid"
    assert _grant(patient_types, requested="patient/*.read").text == "patient/*.rs openid"


def test_unticking_a_kind_leaves_it_out_and_keeps_whole_types_whole(patient_types):
    scopes = _grant(patient_types, ("Allergies", "Lab results")).text.split()
    assert "patient/AllergyIntolerance.rs" not in scopes and "patient/*.rs" not in scopes
    assert "patient/Condition.rs" in scopes and "patient/Immunization.rs" in scopes
    assert f"patient/Observation.rs?category={VITALS}" in scopes and "patient/Observation.rs" not in scopes
    assert not any("laboratory" in s for s in scopes)
    kept = _grant(patient_types, ("Allergies",)).text.split()
    assert "patient/Observation.rs" in kept  # every slice of Observation ticked: the whole type


def test_slices_never_collapse_into_more_than_was_asked(patient_types):
    asked = parse_scopes(f"patient/Observation.rs?category={LAB} patient/Observation.rs?category={VITALS}")
    result = granted(asked, [s.text for s in asked.resource_scopes], patient_types, contexts={"patient"},
                     allowed_other=set(), patient_types=patient_types)
    assert result.text == f"patient/Observation.rs?category={LAB} patient/Observation.rs?category={VITALS}"


def test_the_apps_page_shows_a_grant_by_kind(patient_types):
    narrowed = _grant(patient_types, ("Allergies",))
    labels = [c.label for c in grant_choices(narrowed, patient_types)]
    assert "Allergies" not in labels and "Lab results" in labels and "Medications" in labels
    assert "Lab results" in [c.label for c in grant_choices(parse_scopes("patient/*.rs"), patient_types)]


# ---------------------------------------------------------------------- against the API
@pytest.fixture
def chart(ctx, record):
    with ctx.database.write() as conn:
        ctx.repository.create(conn, observation("p1", meta={"tag": [SHARED]}), fhir_id="lab1")
        ctx.repository.create(conn, observation("p1", category=[{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]),
            fhir_id="vital1")
        ctx.repository.create(conn, {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p1"},
                                     "code": {"text": "Penicillin"}}, fhir_id="allergy1")


def _authorized(client, app_id, unticked=()):
    auth = authorization_params(app_id, "launch/patient openid patient/*.rs")
    page = login(client, auth, "ada")
    html = page.get_data(as_text=True)
    ticked = [v.replace("&amp;", "&") for v, label in re.findall(
        r'name="scope" value="([^"]*)" checked> ([^<(]+)', html) if label.strip() not in unticked]
    code = redirect_params(consent(client, page, scopes=ticked))["code"]
    token = exchange(client, code, auth, app_id).get_json()
    return token


def _observation_ids(fhir, token):
    response = fhir.with_token(token).get("Observation?patient=p1")
    assert response.status_code == 200
    return {e["resource"]["id"] for e in response.get_json().get("entry", [])}


def test_an_unticked_kind_is_refused_to_the_app(client, fhir, public_app, patient_account, chart):
    token = _authorized(client, public_app.client_id, unticked=("Allergies", "Lab results"))
    assert "AllergyIntolerance" not in token["scope"] and "laboratory" not in token["scope"]
    assert fhir.with_token(token["access_token"]).get("AllergyIntolerance?patient=p1").status_code == 403
    assert _observation_ids(fhir, token["access_token"]) == {"vital1"}
    assert fhir.with_token(token["access_token"]).get("Condition?patient=p1").status_code == 200


def test_the_connected_apps_page_narrows_an_app(client, fhir, public_app, patient_account, chart):
    token = _authorized(client, public_app.client_id)
    assert token["scope"].split()[0] == "patient/*.rs"
    assert _observation_ids(fhir, token["access_token"]) == {"lab1", "vital1"}
    page = client.get("/auth/apps").get_data(as_text=True)
    section = page[page.index("/auth/apps/narrow"):]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', section).group(1)
    kinds = re.findall(r'name="scope" value="([^"]*)" checked> ([^<]+)</label>', section[:section.index("</form>")])
    keep = [value.replace("&amp;", "&") for value, label in kinds if label.strip() not in ("Allergies",
                                                                                           "Lab results")]
    assert len(keep) == len(kinds) - 2
    narrowed = client.post("/auth/apps/narrow", data={"csrf_token": csrf, "client_id": public_app.client_id,
                                                      "scope": keep})
    assert narrowed.status_code == 200 and "access narrowed" in narrowed.get_data(as_text=True)
    assert fhir.with_token(token["access_token"]).get("AllergyIntolerance?patient=p1").status_code == 403
    assert _observation_ids(fhir, token["access_token"]) == {"vital1"}
    forged = client.post("/auth/apps/narrow", data={"csrf_token": "x", "client_id": public_app.client_id,
                                                    "scope": ["patient/*.rs"]})
    assert forged.status_code == 400
    widened = client.post("/auth/apps/narrow", data={"csrf_token": csrf, "client_id": public_app.client_id,
                                                     "scope": [*keep, "patient/*.rs", "patient/AllergyIntolerance.rs"]})
    assert widened.status_code == 200  # nothing beyond the current grant can be ticked back in
    assert fhir.with_token(token["access_token"]).get("AllergyIntolerance?patient=p1").status_code == 403
    emptied = client.post("/auth/apps/narrow", data={"csrf_token": csrf, "client_id": public_app.client_id})
    assert "access revoked" in emptied.get_data(as_text=True)  # nothing left ticked: revoked
    assert fhir.with_token(token["access_token"]).get("Condition?patient=p1").status_code == 401
