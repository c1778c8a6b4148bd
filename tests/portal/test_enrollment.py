"""Portal enrollment: every transition of the invitation and every refusal, through the FHIR
operations and the registration page, with the email read from the outbox (no SMTP configured)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from fhirportal.store.auth_schema import portal_invitation
from tests.portal.conftest import CAREGIVER_BIRTH_DATE, PASSWORD, last_email, link_token, params, register
from tests.support import Fhir


def test_invite_register_and_sign_in(ctx, app, client, practice):
    invited = practice["nurse"].post("Patient/p1/$portal-invite")
    assert invited.status_code == 200, invited.get_json()
    answer = params(invited)
    assert answer["status"] == "invited" and answer["email"] == "maria@example.org" and answer["phone"] == "555-0100"
    pin = answer["accessCode"]
    email = last_email(ctx, "maria@example.org")
    assert "/portal/register?t=" in email
    assert pin not in email and pin.replace("-", "") not in email  # the PIN is never emailed
    task = practice["nurse"].get(answer["invitation"]["reference"]).get_json()
    assert task["status"] == "requested" and task["businessStatus"]["text"] == "invited"
    assert task["for"] == {"reference": "Patient/p1"} and task["requester"] == {"reference": "Practitioner/dr"}
    assert task["restriction"]["period"]["end"]
    person = practice["nurse"].get(answer["account"]["reference"]).get_json()
    assert person["active"] is False and person["link"][0]["target"] == {"reference": "Patient/p1"}

    registered = register(client, link_token(ctx, "maria@example.org"), pin=pin.lower())  # case does not matter
    assert registered.status_code == 201, registered.get_data(as_text=True)
    status = params(practice["nurse"].get("Patient/p1/$portal-status"))
    assert status["status"] == "registered" and "accessCode" not in status
    person = practice["nurse"].get(answer["account"]["reference"]).get_json()
    assert person["active"] is True and person["link"][0]["assurance"] == "level3"
    account = app.extensions["smart"].accounts.by_username("maria")
    assert account.fhir_user == "Patient/p1" and account.patients == ("p1",)
    assert app.extensions["smart"].accounts.authenticate("maria", PASSWORD).id == account.id
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 410  # single use


def test_refusals_of_invite(ctx, practice):
    nurse = practice["nurse"]
    with ctx.database.write() as conn:  # registration asks for the date of birth: without one, no invitation
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "Unborn"}],
                                     "telecom": [{"system": "email", "value": "u@example.org"}]}, fhir_id="p9")
    no_birth_date = nurse.post("Patient/p9/$portal-invite")
    assert no_birth_date.status_code == 422
    assert no_birth_date.get_json()["issue"][0]["expression"] == ["birthDate"]
    no_email = nurse.post("Patient/p2/$portal-invite")
    assert no_email.status_code == 422 and "email" in no_email.get_json()["issue"][0]["diagnostics"]
    given = nurse.post("Patient/p2/$portal-invite", {"resourceType": "Parameters", "parameter": [
        {"name": "email", "valueString": "given@example.org"}]})
    assert given.status_code == 200 and params(given)["email"] == "given@example.org"
    assert nurse.post("Patient/p2/$portal-invite").status_code == 409  # an open invitation
    assert practice["clerk"].post("Patient/p1/$portal-invite").status_code == 403  # not allowed to invite
    assert nurse.post("Patient/nope/$portal-invite").status_code == 404
    bad = nurse.post("Patient/p1/$portal-invite", {"resourceType": "Parameters", "parameter": [
        {"name": "email", "valueString": "not an email"}]})
    assert bad.status_code == 400


def test_status_shows_the_access_code_only_to_inviters_and_journals_it(ctx, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert params(practice["nurse"].get("Patient/p1/$portal-status"))["accessCode"] == pin
    clerk_view = params(practice["clerk"].get("Patient/p1/$portal-status"))
    assert clerk_view["status"] == "invited" and "accessCode" not in clerk_view
    assert params(practice["clerk"].get("Patient/p2/$portal-status")) == {"status": "not-invited"}
    ctx.audit.flush()
    events = practice["nurse"].get("AuditEvent", query_string={"patient": "p1"}).get_json()["entry"]
    assert any(e["resource"]["subtype"][0]["code"] == "portal-access-code" for e in events)


def test_resend_keeps_the_pin_and_replaces_the_link(ctx, client, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    first = link_token(ctx, "maria@example.org")
    again = params(practice["nurse"].post("Patient/p1/$portal-resend"))
    assert again["accessCode"] == pin
    second = link_token(ctx, "maria@example.org")
    assert second != first
    assert "expired" in register(client, first, pin=pin).get_data(as_text=True)
    assert register(client, second, pin=pin).status_code == 201


def test_cancel_then_invite_makes_a_new_pin_and_kills_the_old_link(ctx, client, practice):
    old_pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    old_link = link_token(ctx, "maria@example.org")
    cancelled = params(practice["nurse"].post("Patient/p1/$portal-cancel"))
    assert cancelled["status"] == "cancelled"
    assert register(client, old_link, pin=old_pin).status_code == 410
    assert practice["nurse"].post("Patient/p1/$portal-cancel").status_code == 409  # nothing open
    new_pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert new_pin != old_pin
    assert register(client, link_token(ctx, "maria@example.org"), pin=old_pin).status_code == 400
    assert register(client, link_token(ctx, "maria@example.org"), pin=new_pin).status_code == 201


def test_five_wrong_answers_lock_until_resend(ctx, client, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    token = link_token(ctx, "maria@example.org")
    wrong_birth = register(client, token, pin=pin, birth_date="1999-01-01")
    assert wrong_birth.status_code == 400 and "date of birth or the PIN" in wrong_birth.get_data(as_text=True)
    for _ in range(3):
        assert register(client, token, pin="WRONG12").status_code == 400
    locked = register(client, token, pin="WRONG12")
    assert locked.status_code == 410 and "locked" in locked.get_data(as_text=True)
    assert register(client, token, pin=pin).status_code == 410  # even the right PIN now
    status = params(practice["nurse"].get("Patient/p1/$portal-status"))
    assert status["status"] == "locked" and status["failedAttempts"] == 5
    params(practice["nurse"].post("Patient/p1/$portal-resend"))
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 201


def test_weak_passwords_and_taken_names_are_refused_without_using_the_invitation(ctx, client, practice, app):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    token = link_token(ctx, "maria@example.org")
    assert "at least 8" in register(client, token, pin=pin, password="short").get_data(as_text=True)
    assert "too common" in register(client, token, pin=pin, password="password123").get_data(as_text=True)
    app.extensions["smart"].accounts.create("taken", "whatever-pass-1", kind="patient")
    assert "taken" in register(client, token, pin=pin, username="taken").get_data(as_text=True)
    assert register(client, token, pin=pin).status_code == 201


def test_revoke_ends_access_at_once(ctx, app, client, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 201
    account = app.extensions["smart"].accounts.by_username("maria")
    token = ctx.tokens.mint(client_id="patient-app", scope="patient/*.rs", account_id=account.id,
                            context={"patient": "p1", "fhirUser": "Patient/p1"})
    patient_app = Fhir(app.test_client(), token)
    assert patient_app.get("Patient/p1").status_code == 200
    revoked = params(practice["nurse"].post("Patient/p1/$portal-revoke"))
    assert revoked["status"] == "revoked"
    assert patient_app.get("Patient/p1").status_code == 401  # the very next request
    from fhirportal.smart.accounts import LoginRefused

    with pytest.raises(LoginRefused):
        app.extensions["smart"].accounts.authenticate("maria", PASSWORD)
    person = practice["nurse"].get(f"Person/{revoked['account']['reference'].split('/')[1]}").get_json()
    assert person["active"] is False
    assert practice["nurse"].post("Patient/p1/$portal-revoke").status_code == 409
    assert params(practice["nurse"].post("Patient/p1/$portal-invite"))["status"] == "invited"  # re-invite


def test_caregiver_gets_an_own_account_for_the_patient(ctx, app, client, practice):
    pin = params(practice["nurse"].post("RelatedPerson/rp1/$portal-invite"))["accessCode"]
    response = register(client, link_token(ctx, "carer@example.org"), pin=pin, username="carer",
                        birth_date=CAREGIVER_BIRTH_DATE)
    assert response.status_code == 201, response.get_data(as_text=True)
    carer = app.extensions["smart"].accounts.by_username("carer")
    assert carer.fhir_user == "RelatedPerson/rp1" and carer.patients == ("p1",)
    assert params(practice["nurse"].get("Patient/p1/$portal-status"))["status"] == "not-invited"  # separate
    assert params(practice["nurse"].get("RelatedPerson/rp1/$portal-status"))["status"] == "registered"


def test_the_pin_is_stored_encrypted_and_hashed(ctx, practice):
    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    with ctx.database.read() as conn:
        row = conn.execute(select(portal_invitation)).one()
    stored = " ".join(str(v) for v in row)
    assert pin not in stored and pin.replace("-", "") not in stored


def test_an_invitation_and_its_queued_email_are_one_transaction(ctx, app, practice, monkeypatch):
    """No SMTP server: the invitation, its Task and Person, the email in the outbox and "sent" commit in one
    write transaction (a writer waits its turn once, not three times) — and roll back together."""
    notifier = app.extensions["portal"].notifier
    assert notifier.queues_email
    writes, write = [], ctx.database.write

    def counted(*args, **kwargs):
        writes.append(threading.get_ident())
        return write(*args, **kwargs)

    monkeypatch.setattr(ctx.database, "write", counted)
    answer = params(practice["nurse"].post("Patient/p1/$portal-invite"))
    assert writes.count(threading.get_ident()) == 1
    assert answer["status"] == "invited" and answer["sent"]
    assert "/portal/register?t=" in last_email(ctx, answer["email"])

    def broken(conn, to, subject, body):
        raise RuntimeError("the outbox is full")

    monkeypatch.setattr(notifier, "queue_email", broken)
    assert practice["nurse"].post("RelatedPerson/rp1/$portal-invite").status_code == 500  # a server fault
    with ctx.database.read() as conn:
        rows = conn.execute(select(portal_invitation.c.id).where(portal_invitation.c.subject_id == "rp1")).all()
    assert rows == []  # nothing of the invitation was kept
