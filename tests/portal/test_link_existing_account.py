"""Registering a second record into an account the person already has: one Person, several links."""

from __future__ import annotations

from tests.portal.conftest import CAREGIVER_BIRTH_DATE, PASSWORD, link_token, params, register


def test_a_second_record_joins_the_existing_account(ctx, app, client, practice):
    with ctx.database.write() as conn:  # the same person's record at a second practice on this server
        ctx.repository.create(conn, {
            "resourceType": "Patient", "name": [{"family": "Garcia", "given": ["Maria"]}], "birthDate": "1980-04-02",
            "telecom": [{"system": "email", "value": "maria.other@example.org"}]}, fhir_id="p9")
    first_pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert register(client, link_token(ctx, "maria@example.org"), pin=first_pin).status_code == 201
    second = params(practice["nurse"].post("Patient/p9/$portal-invite"))
    token = link_token(ctx, "maria.other@example.org")
    wrong = register(client, token, pin=second["accessCode"], password="not the password", existing=True)
    assert wrong.status_code == 400 and "do not match" in wrong.get_data(as_text=True)
    linked = register(client, token, pin=second["accessCode"], existing=True)
    assert linked.status_code == 201, linked.get_data(as_text=True)
    account = app.extensions["smart"].accounts.by_username("maria")
    assert account.patients == ("p1", "p9") and account.fhir_user == "Patient/p1"
    first_person = params(practice["nurse"].get("Patient/p1/$portal-status"))["account"]["reference"]
    assert params(practice["nurse"].get("Patient/p9/$portal-status"))["account"]["reference"] == first_person
    person = practice["nurse"].get(first_person).get_json()
    assert [link["target"]["reference"] for link in person["link"]] == ["Patient/p1", "Patient/p9"]
    assert app.extensions["smart"].accounts.authenticate("maria", PASSWORD).patients == ("p1", "p9")


def test_a_caregiver_invitation_cannot_join_a_patient_account(ctx, app, client, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 201
    carer_pin = params(practice["nurse"].post("RelatedPerson/rp1/$portal-invite"))["accessCode"]
    refused = register(client, link_token(ctx, "carer@example.org"), pin=carer_pin, existing=True,
                       birth_date=CAREGIVER_BIRTH_DATE)
    assert refused.status_code == 400 and "cannot hold this record" in refused.get_data(as_text=True)
    assert params(practice["nurse"].get("RelatedPerson/rp1/$portal-status"))["status"] == "invited"
