"""Auto-invite: a signed chart note (Composition, DocumentReference) invites its patient on behalf of the
practitioner who signed it, when the practice and that user have auto-invite on; and the daily scan
(``fhirportal portal auto-invite``) does the same 30 days after a visit whose note was never signed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from fhirportal.cli import main
from fhirportal.store import clock
from fhirportal.store.auth_schema import portal_invitation
from fhirportal.store.outbox_schema import outbox
from tests.portal.conftest import last_email, params


@pytest.fixture
def auto_invite(ctx, app, practice):
    """The practice switch and the nurse's (Practitioner/dr's) flag on (Practitioner/other has no user);
    returns a setter for both."""
    store = app.extensions["phr_settings"]
    nurse = app.extensions["smart"].accounts.by_username("nurse")
    with ctx.database.write() as conn:  # a practitioner without a user, so without auto-invite
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Other"}]}, fhir_id="other")

    def turn(practice_on: bool = True, user_on: bool = True) -> None:
        with ctx.database.write() as conn:
            store.set(conn, {"auto_invite_enabled": practice_on}, None)
            store.set_user_flag(conn, nurse.id, user_on, None)

    turn()
    return turn


def born_years_ago(years: int, days: int = 0) -> str:
    today = clock.now().date()
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = date(today.year - years, 3, 1)
    return (born + timedelta(days=days)).isoformat()


def add_patient(ctx, fhir_id: str, *, birth_date="1980-04-02", email=True, phone=True) -> None:
    telecom = ([{"system": "email", "value": f"{fhir_id}@example.org"}] if email else []) + \
              ([{"system": "phone", "value": "555-0199"}] if phone else [])
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": fhir_id}], "birthDate": birth_date,
                                     "telecom": telecom, "managingOrganization": {"reference": "Organization/org"}},
                              fhir_id=fhir_id)


def composition(fhir_id: str, patient: str = "p1", status: str = "final", author: str = "Practitioner/dr",
                **extra) -> dict:
    return {"resourceType": "Composition", "id": fhir_id, "status": status,
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
            "subject": {"reference": f"Patient/{patient}"}, "date": "2024-05-01T10:00:00Z",
            "author": [{"reference": author}], "title": "Progress note", **extra}


def document(fhir_id: str, patient: str = "p1", doc_status: str = "final", **extra) -> dict:
    return {"resourceType": "DocumentReference", "id": fhir_id, "status": "current", "docStatus": doc_status,
            "subject": {"reference": f"Patient/{patient}"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "Tm90ZQ=="}}], **extra}


def invitations(ctx, patient: str = "p1") -> list:
    with ctx.database.read() as conn:
        return conn.execute(select(portal_invitation).where(portal_invitation.c.subject_id == patient)
                            .order_by(portal_invitation.c.id)).all()


def emails_to(ctx, to: str) -> int:
    with ctx.database.read() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.recipient == to)).scalar_one()


# ---------------------------------------------------------------------- a signed Composition
def test_a_signed_composition_invites_its_patient(ctx, practice, auto_invite):
    written = practice["nurse"].put("Composition/c1", composition("c1"))
    assert written.status_code == 201, written.get_json()
    [row] = invitations(ctx)
    assert row.state == "invited" and row.requested_by == "Practitioner/dr"
    assert row.email == "maria@example.org" and row.phone == "555-0100"
    email = last_email(ctx, "maria@example.org")
    assert "/portal/register?t=" in email and "I have no PIN: send a code to my phone" in email
    status = params(practice["nurse"].get("Patient/p1/$portal-status"))
    assert status["status"] == "invited" and status["accessCode"]  # the PIN exists; staff can read it
    assert status["accessCode"] not in email and status["accessCode"].replace("-", "") not in email
    task = practice["nurse"].get(f"Task/{row.task_id}").get_json()
    assert task["requester"] == {"reference": "Practitioner/dr"}
    ctx.audit.flush()
    events = practice["nurse"].get("AuditEvent", query_string={"patient": "p1"}).get_json()["entry"]
    [event] = [e["resource"] for e in events if e["resource"]["subtype"][0]["code"] == "portal-auto-invite"]
    assert event["agent"][0]["who"] == {"reference": "Practitioner/dr"}
    assert any("Composition/c1" in entity.get("description", "") for entity in event["entity"])


def test_the_attester_counts_and_only_reaching_final_invites(ctx, practice, auto_invite):
    note = composition("c2", status="preliminary", author="Practitioner/other")
    assert practice["nurse"].put("Composition/c2", note).status_code == 201
    assert invitations(ctx) == []  # not signed yet
    note["status"] = "final"
    note["attester"] = [{"mode": "legal", "party": {"reference": "Practitioner/dr"}}]
    assert practice["nurse"].put("Composition/c2", note).status_code == 200
    [row] = invitations(ctx)
    assert row.requested_by == "Practitioner/dr"


def test_a_transaction_bundle_is_seen_after_its_commit(ctx, practice, auto_invite):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {k: v for k, v in composition("x").items() if k != "id"},
         "request": {"method": "POST", "url": "Composition"}}]}
    answer = practice["nurse"].post("", bundle)
    assert answer.status_code == 200, answer.get_json()
    assert [r.state for r in invitations(ctx)] == ["invited"]


@pytest.mark.parametrize("practice_on, user_on", [(False, True), (True, False)])
def test_nothing_unless_both_the_practice_and_the_user_have_it_on(ctx, practice, auto_invite, practice_on, user_on):
    auto_invite(practice_on, user_on)
    assert practice["nurse"].put("Composition/c1", composition("c1")).status_code == 201
    assert invitations(ctx) == [] and emails_to(ctx, "maria@example.org") == 0


@pytest.mark.parametrize("years, days, invited", [
    (17, 0, False), (18, 1, False), (18, 0, True), (85, 0, True), (86, 1, True), (86, 0, False)])
def test_only_patients_18_to_85(ctx, practice, auto_invite, years, days, invited):
    add_patient(ctx, "p3", birth_date=born_years_ago(years, days))
    assert practice["nurse"].put("Composition/c3", composition("c3", patient="p3")).status_code == 201
    assert len(invitations(ctx, "p3")) == (1 if invited else 0)


@pytest.mark.parametrize("missing", ["email", "phone"])
def test_nothing_without_an_email_and_a_phone(ctx, practice, auto_invite, missing):
    add_patient(ctx, "p3", **{missing: False})
    assert practice["nurse"].put("Composition/c3", composition("c3", patient="p3")).status_code == 201
    assert invitations(ctx, "p3") == []


def test_nothing_for_a_patient_with_an_open_invitation_or_registered(ctx, client, practice, auto_invite):
    from tests.portal.conftest import link_token, register

    pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    assert practice["nurse"].put("Composition/c1", composition("c1", status="preliminary")).status_code == 201
    assert practice["nurse"].put("Composition/c1", composition("c1")).status_code == 200  # signed
    assert len(invitations(ctx)) == 1 and emails_to(ctx, "maria@example.org") == 1
    assert register(client, link_token(ctx, "maria@example.org"), pin=pin).status_code == 201
    assert practice["nurse"].put("Composition/c4", composition("c4")).status_code == 201
    assert [r.state for r in invitations(ctx)] == ["registered"] and emails_to(ctx, "maria@example.org") == 1


def test_nothing_after_staff_cancelled_but_again_after_an_expiry(ctx, practice, auto_invite):
    params(practice["nurse"].post("Patient/p1/$portal-invite"))
    params(practice["nurse"].post("Patient/p1/$portal-cancel"))
    assert practice["nurse"].put("Composition/c1", composition("c1")).status_code == 201
    assert [r.state for r in invitations(ctx)] == ["cancelled"]
    add_patient(ctx, "p3")
    assert practice["nurse"].put("Composition/c3", composition("c3", patient="p3")).status_code == 201
    with ctx.database.write() as conn:
        conn.execute(update(portal_invitation).values(expires_at=clock.now() - timedelta(days=1)))
    assert practice["nurse"].put("Composition/c5", composition("c5", patient="p3")).status_code == 201
    assert len(invitations(ctx, "p3")) == 2  # the expired one, and a new one


def test_a_failing_auto_invite_never_fails_the_write(ctx, app, practice, auto_invite, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("mail server on fire")

    monkeypatch.setattr(app.extensions["portal_auto_invite"].enrollment, "invite", broken)
    monkeypatch.setattr(ctx, "after_commit", [*ctx.after_commit, broken])  # and a hook that fails outright
    assert practice["nurse"].put("Composition/c1", composition("c1")).status_code == 201
    assert practice["nurse"].get("Composition/c1").get_json()["status"] == "final"
    assert invitations(ctx) == []


# ---------------------------------------------------------------------- a signed DocumentReference
def test_a_final_document_reference_invites(ctx, practice, auto_invite):
    draft = document("d1", doc_status="preliminary", authenticator={"reference": "Practitioner/dr"})
    assert practice["nurse"].put("DocumentReference/d1", draft).status_code == 201
    assert invitations(ctx) == []
    assert practice["nurse"].put("DocumentReference/d1", {**draft, "docStatus": "final"}).status_code == 200
    [row] = invitations(ctx)
    assert row.state == "invited" and row.requested_by == "Practitioner/dr"
    assert "I have no PIN" in last_email(ctx, "maria@example.org")


def test_a_document_reference_by_another_author_does_not(ctx, practice, auto_invite):
    note = document("d2", author=[{"reference": "Practitioner/other"}])
    assert practice["nurse"].post("DocumentReference", note).status_code == 201
    assert invitations(ctx) == []


# ---------------------------------------------------------------------- 30 days after a visit
def encounter(fhir_id: str, patient: str, ended_days_ago: int, practitioner: str = "Practitioner/dr") -> dict:
    end = clock.now() - timedelta(days=ended_days_ago)
    return {"resourceType": "Encounter", "id": fhir_id, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient}"},
            "participant": [{"individual": {"reference": practitioner}}],
            "period": {"start": clock.as_instant(end - timedelta(hours=1)), "end": clock.as_instant(end)}}


def test_the_daily_scan_invites_after_a_visit_whose_note_was_never_signed(ctx, app, practice, auto_invite, settings):
    nurse = practice["nurse"]
    for patient in ("p3", "p4", "p5"):
        add_patient(ctx, patient)
    assert nurse.put("Encounter/e1", encounter("e1", "p1", 40)).status_code == 201  # no note at all
    nurse.put("Composition/draft", composition("draft", status="preliminary", encounter={"reference": "Encounter/e1"}))
    assert nurse.put("Encounter/e3", encounter("e3", "p3", 35)).status_code == 201  # a signed note
    signed = composition("n3", patient="p3", author="Practitioner/other", encounter={"reference": "Encounter/e3"})
    assert nurse.put("Composition/n3", signed).status_code == 201
    assert nurse.put("Encounter/e4", encounter("e4", "p4", 10)).status_code == 201  # too recent
    assert nurse.put("Encounter/e5", encounter("e5", "p5", 31, "Practitioner/other")).status_code == 201
    assert invitations(ctx, "p3") == []  # Practitioner/other has no auto-invite

    run = CliRunner().invoke(main, ["--database-url", settings.database_url, "portal", "auto-invite"],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "1 invited" in run.output and "Encounter/e1" in run.output
    [row] = invitations(ctx, "p1")
    assert row.state == "invited" and row.requested_by == "Practitioner/dr"
    assert "I have no PIN" in last_email(ctx, "maria@example.org")
    assert all(invitations(ctx, p) == [] for p in ("p3", "p4", "p5"))

    with ctx.database.write() as conn:  # the invitation expires: the visit was handled, no second one
        conn.execute(update(portal_invitation).values(expires_at=clock.now() - timedelta(days=1)))
    outcomes = app.extensions["portal_auto_invite"].scan_unsigned_visits()
    assert [(o.trigger, o.invited, o.reason) for o in outcomes] == [("Encounter/e1", False, "invited since")]
    assert len(invitations(ctx, "p1")) == 1


def test_the_scan_does_nothing_while_the_practice_switch_is_off(ctx, app, practice, auto_invite):
    auto_invite(False, True)
    assert practice["nurse"].put("Encounter/e1", encounter("e1", "p1", 40)).status_code == 201
    assert app.extensions["portal_auto_invite"].scan_unsigned_visits() == []
    assert invitations(ctx) == []


def test_the_scan_skips_a_signed_document_reference_and_old_visits(ctx, app, practice, auto_invite):
    add_patient(ctx, "p3")
    nurse = practice["nurse"]
    assert nurse.put("Encounter/e1", encounter("e1", "p1", 400)).status_code == 201  # beyond --max-age-days
    assert nurse.put("Encounter/e3", encounter("e3", "p3", 45)).status_code == 201
    note = document("d3", patient="p3", author=[{"reference": "Practitioner/other"}],
                    context={"encounter": [{"reference": "Encounter/e3"}]})
    assert nurse.put("DocumentReference/d3", note).status_code == 201
    assert app.extensions["portal_auto_invite"].scan_unsigned_visits() == []
    assert invitations(ctx) == [] and invitations(ctx, "p3") == []



# ---------------------------------------------------------------------- the FHIR layer's after-commit hook
def test_after_commit_hooks_see_committed_writes_only(ctx, fhir, monkeypatch):
    seen: list[list[str]] = []
    monkeypatch.setattr(ctx, "after_commit", [lambda records: seen.append([r.reference for r in records])])
    assert fhir.post("Patient", {"resourceType": "Patient"}).status_code == 201
    assert fhir.put("Patient/h1", {"resourceType": "Patient", "id": "h1"}).status_code == 201
    assert fhir.patch("Patient/h1", [{"op": "add", "path": "/active", "value": True}]).status_code == 200
    refused = fhir.put("Patient/h2", {"resourceType": "Patient", "id": "h2", "gender": "nope"})
    assert refused.status_code >= 400 and len(seen) == 3  # a refused write: no hook
    transaction = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "h3"}, "request": {"method": "PUT", "url": "Patient/h3"}},
        {"resource": {"resourceType": "Patient", "id": "h4"}, "request": {"method": "PUT", "url": "Patient/h4"}}]})
    assert transaction.status_code == 200
    assert fhir.delete("Patient/h4").status_code in (200, 204)
    assert seen[1:] == [["Patient/h1"], ["Patient/h1"], ["Patient/h3", "Patient/h4"]] and len(seen[0]) == 1
