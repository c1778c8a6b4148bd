"""A caregiver's access as a FHIR Consent (written on registration, made inactive on revoke), and the
practice's lab-sharing default as patient and caregiver tokens see it."""

from __future__ import annotations

from datetime import datetime

import pytest
from fhir.resources.R4B.consent import Consent
from sqlalchemy import select

from fhirportal.fhir.authorization import AccessPolicy
from fhirportal.portal.settings_api import PracticeSettings
from fhirportal.smart.accounts import LoginRefused
from fhirportal.store.auth_schema import portal_invitation
from tests.portal.conftest import CAREGIVER_BIRTH_DATE, PASSWORD, link_token, params, register
from tests.support import Fhir, observation, patient

CONSENT_SCOPE = {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
PATIENT_CONSENT = {"system": "http://loinc.org", "code": "59284-0"}
OPTIN = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
IRCP = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}
SHARED = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}


def _coding(concept: dict) -> dict:
    return {k: concept["coding"][0][k] for k in ("system", "code")}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _consent_id(ctx, subject_id: str) -> str | None:
    with ctx.database.read() as conn:
        return conn.execute(select(portal_invitation.c.consent_id).where(
            portal_invitation.c.subject_id == subject_id).order_by(portal_invitation.c.id.desc()).limit(1)).scalar()


def _enroll_caregiver(ctx, client, nurse: Fhir, related_person: str, email: str, username: str) -> None:
    pin = params(nurse.post(f"RelatedPerson/{related_person}/$portal-invite"))["accessCode"]
    response = register(client, link_token(ctx, email), pin=pin, username=username, birth_date=CAREGIVER_BIRTH_DATE)
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.fixture
def two_caregivers(ctx, app, client, practice):
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {
            "resourceType": "RelatedPerson", "patient": {"reference": "Patient/p1"}, "name": [{"family": "Second"}],
            "birthDate": CAREGIVER_BIRTH_DATE, "telecom": [{"system": "email", "value": "second@example.org"}]},
            fhir_id="rp2")
    _enroll_caregiver(ctx, client, practice["nurse"], "rp1", "carer@example.org", "carer")
    _enroll_caregiver(ctx, client, practice["nurse"], "rp2", "second@example.org", "second")
    return practice


def test_a_registered_caregiver_has_an_active_consent(ctx, two_caregivers):
    nurse = two_caregivers["nurse"]
    consent_id = _consent_id(ctx, "rp1")
    assert consent_id
    consent = nurse.get(f"Consent/{consent_id}").get_json()
    Consent.model_validate(consent)  # a valid R4(B) Consent
    assert consent["status"] == "active"
    assert _coding(consent["scope"]) == CONSENT_SCOPE
    assert _coding(consent["category"][0]) == PATIENT_CONSENT
    assert consent["patient"] == {"reference": "Patient/p1"}
    assert _coding(consent["policyRule"]) == OPTIN
    provision = consent["provision"]
    assert provision["type"] == "permit" and "end" not in provision["period"]
    assert _instant(provision["period"]["start"]) == _instant(consent["dateTime"])
    assert [a["reference"] for a in provision["actor"]] == [{"reference": "RelatedPerson/rp1"}]
    assert _coding(provision["actor"][0]["role"]) == IRCP
    # one Consent per caregiver, found by search too
    found = nurse.get("Consent", query_string={"patient": "p1", "status": "active"}).get_json()
    actors = sorted(e["resource"]["provision"]["actor"][0]["reference"]["reference"] for e in found["entry"])
    assert actors == ["RelatedPerson/rp1", "RelatedPerson/rp2"]


def test_a_patients_own_registration_writes_no_consent(ctx, client, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 201
    assert _consent_id(ctx, "p1") is None
    assert practice["nurse"].get("Consent", query_string={"patient": "p1"}).get_json().get("total", 0) == 0


def test_revoking_one_caregiver_ends_only_that_consent(ctx, app, two_caregivers):
    nurse, accounts = two_caregivers["nurse"], app.extensions["smart"].accounts
    first, second = _consent_id(ctx, "rp1"), _consent_id(ctx, "rp2")
    assert first != second
    revoked = nurse.post("RelatedPerson/rp1/$portal-revoke")
    assert revoked.status_code == 200, revoked.get_json()

    ended = nurse.get(f"Consent/{first}").get_json()
    Consent.model_validate(ended)
    assert ended["status"] == "inactive"
    period = ended["provision"]["period"]
    assert _instant(period["end"]) >= _instant(period["start"])
    assert ended["provision"]["actor"][0]["reference"] == {"reference": "RelatedPerson/rp1"}
    with pytest.raises(LoginRefused):
        accounts.authenticate("carer", PASSWORD)

    other = nurse.get(f"Consent/{second}").get_json()
    assert other["status"] == "active" and "end" not in other["provision"]["period"]
    assert other["meta"]["versionId"] == "1"  # not touched at all
    assert accounts.authenticate("second", PASSWORD).username == "second"
    assert params(nurse.get("RelatedPerson/rp2/$portal-status"))["status"] == "registered"

    # invited again and registered again: a new Consent, the ended one stays as it was
    _enroll_caregiver(ctx, app.test_client(), nurse, "rp1", "carer@example.org", "carer-again")
    renewed = _consent_id(ctx, "rp1")
    assert renewed not in (first, second)
    assert nurse.get(f"Consent/{renewed}").get_json()["status"] == "active"
    assert nurse.get(f"Consent/{first}").get_json()["status"] == "inactive"


# ---------------------------------------------------------------------- the lab-sharing default
@pytest.fixture
def labs(ctx, app, client, monkeypatch):
    """A patient's three lab results (untagged, labelled NOPAT, tagged shared), an admin, the patient's
    app and a caregiver's app; the policy reads the setting on every request."""
    smart = app.extensions["smart"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Organization", "name": "Practice"}, fhir_id="org")
        ctx.repository.create(conn, patient(managingOrganization={"reference": "Organization/org"}), fhir_id="lp")
        ctx.repository.create(conn, {"resourceType": "RelatedPerson", "patient": {"reference": "Patient/lp"}},
                              fhir_id="lrp")
        ctx.repository.create(conn, observation("lp"), fhir_id="untagged")
        ctx.repository.create(conn, observation("lp", meta={"security": [NOPAT]}), fhir_id="nopat")
        ctx.repository.create(conn, observation("lp", meta={"tag": [SHARED]}), fhir_id="tagged")
    admin = smart.accounts.create("boss", "boss-password-1", kind="staff", fhir_user="Practitioner/boss",
                                  organization="Organization/org", roles=("staff", "admin"))
    policy = ctx.access_policy
    monkeypatch.setattr(policy, "lab_sharing_refresh", 0)
    policy.forget_lab_sharing()
    yield {
        "admin": ctx.tokens.mint(client_id="ehr", scope="user/*.cruds", account_id=admin.id,
                                 context={"fhirUser": admin.fhir_user, "organization": "Organization/org"}),
        "patient": Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.rs",
                                                context={"patient": "lp", "fhirUser": "Patient/lp"})),
        "caregiver": Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/Observation.rs",
                                                  context={"patient": "lp", "fhirUser": "RelatedPerson/lrp"})),
    }
    policy.forget_lab_sharing()  # the next test reads the (emptied) settings afresh


def _visible_labs(app: Fhir) -> set[str]:
    bundle = app.get("Observation", query_string={"patient": "lp"}).get_json()
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


def _set_default(client, admin_token: str, value: str) -> None:
    response = client.patch("/admin/phr-settings", json={"lab_sharing_default": value},
                            headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.get_json()


def test_labs_withheld_by_default_then_shared_by_the_practice(client, labs):
    for app in (labs["patient"], labs["caregiver"]):
        assert _visible_labs(app) == {"tagged"}
        assert app.get("Observation/untagged").status_code == 404
    _set_default(client, labs["admin"], "shared")
    for app in (labs["patient"], labs["caregiver"]):
        assert _visible_labs(app) == {"tagged", "untagged"}
        assert app.get("Observation/untagged").status_code == 200
        assert app.get("Observation/nopat").status_code == 404  # NOPAT stays hidden
    _set_default(client, labs["admin"], "withheld")  # and back: the cached visibility does not keep the old rule
    assert _visible_labs(labs["patient"]) == {"tagged"}
    assert labs["patient"].get("Observation/untagged").status_code == 404


def test_a_change_through_the_api_applies_at_once_in_this_worker(ctx, client, labs, monkeypatch):
    monkeypatch.setattr(ctx.access_policy, "lab_sharing_refresh", 3600)
    assert _visible_labs(labs["patient"]) == {"tagged"}  # read (withheld) and trusted for an hour
    with ctx.database.write() as conn:  # written behind the API's back: not seen within the window
        PracticeSettings(ctx.database).set(conn, {"lab_sharing_default": "shared"}, None)
    assert _visible_labs(labs["patient"]) == {"tagged"}
    _set_default(client, labs["admin"], "shared")  # through the API: this worker reads it again
    assert _visible_labs(labs["patient"]) == {"tagged", "untagged"}


def test_the_default_is_read_at_most_once_per_window(ctx, monkeypatch):
    reads = []
    setting = {"value": "withheld"}

    def read(conn=None) -> str:
        reads.append(setting["value"])
        return setting["value"]

    now = [1000.0]
    monkeypatch.setattr("fhirportal.fhir.authorization.time.monotonic", lambda: now[0])
    policy = AccessPolicy(ctx.search_parameters, ctx.resource_types, lab_sharing_default=read)
    assert policy.labs_shared() is False and policy.labs_shared() is False
    setting["value"] = "shared"
    now[0] += 29
    assert policy.labs_shared() is False and len(reads) == 1  # still within the 30 s window
    now[0] += 2
    assert policy.labs_shared() is True and len(reads) == 2
    assert PracticeSettings(ctx.database).get("lab_sharing_default") == "withheld"  # nothing stored by this test


def test_a_failed_read_keeps_the_last_value(ctx):
    def broken(conn=None) -> str:
        raise RuntimeError("database down")

    policy = AccessPolicy(ctx.search_parameters, ctx.resource_types, lab_sharing_default=broken, lab_sharing_refresh=0)
    assert policy.labs_shared() is False  # withheld: the restrictive choice
    values = iter(["shared"])
    policy.lab_sharing_default = lambda conn: next(values)
    assert policy.labs_shared() is True
    policy.lab_sharing_default = broken
    assert policy.labs_shared() is True
