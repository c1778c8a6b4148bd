"""Secure messages through the FHIR API: a patient (or caregiver) writes to the practice, staff find it in
their inbox and reply, the patient is emailed without the message, reads the thread and marks it read;
what a patient's token may not send or see; attachments stored once as Binaries, readable only with
the thread."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from fhirportal.store.outbox_schema import outbox
from tests.support import Fhir, patient

PASSWORD = "correct horse battery staple"
NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}
PDF = base64.b64encode(b"%PDF-1.4 a lab letter").decode()


@pytest.fixture
def people(ctx, app):
    """Patients p1 (with an email) and p2, Dr. Vasquez and the practice, maria (p1) and linda (caregiver of
    p2, RelatedPerson rp2) with accounts, and a staff user."""
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Organization", "name": "Sunrise Family Practice"},
                              fhir_id="practice")
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"text": "Dr. Elena Vasquez"}]},
                              fhir_id="dr")
        ctx.repository.create(conn, patient(telecom=[{"system": "email", "value": "maria@example.org"}],
                                            managingOrganization={"reference": "Organization/practice"}),
                              fhir_id="p1")
        ctx.repository.create(conn, patient(managingOrganization={"reference": "Organization/practice"}),
                              fhir_id="p2")
        ctx.repository.create(conn, {"resourceType": "RelatedPerson", "patient": {"reference": "Patient/p2"},
                                     "telecom": [{"system": "email", "value": "linda@example.org"}]}, fhir_id="rp2")
    accounts = app.extensions["smart"].accounts
    return {"maria": accounts.create("maria", PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",)),
            "linda": accounts.create("linda", PASSWORD, kind="patient", fhir_user="RelatedPerson/rp2",
                                     patients=("p2",)),
            "nurse": accounts.create("nurse", PASSWORD, kind="staff", fhir_user="Practitioner/dr",
                                     organization="Organization/practice")}


def _token(ctx, account, patient_id=None, scope="patient/Communication.crus patient/Binary.rs"):
    context = {"fhirUser": account.fhir_user}
    if patient_id:
        context["patient"] = patient_id
    if account.organization:
        context["organization"] = account.organization
    return ctx.tokens.mint(client_id="an-app", scope=scope, account_id=account.id, context=context)


@pytest.fixture
def maria(client, ctx, people) -> Fhir:
    return Fhir(client, _token(ctx, people["maria"], "p1"))


@pytest.fixture
def linda(client, ctx, people) -> Fhir:
    return Fhir(client, _token(ctx, people["linda"], "p2"))


@pytest.fixture
def james(client, ctx, app, people) -> Fhir:
    account = app.extensions["smart"].accounts.create("james", PASSWORD, kind="patient", fhir_user="Patient/p2",
                                                      patients=("p2",))
    return Fhir(client, _token(ctx, account, "p2"))


@pytest.fixture
def nurse(client, ctx, people) -> Fhir:
    return Fhir(client, _token(ctx, people["nurse"], scope="user/Communication.cruds user/Binary.r"))


def message(sender: str, recipient: str, subject: str = "Patient/p1", text: str = "Can I take ibuprofen?",
            **extra) -> dict:
    return {"resourceType": "Communication", "status": "completed", "subject": {"reference": subject},
            "sender": {"reference": sender}, "recipient": [{"reference": recipient}],
            "topic": {"text": "Question about my medication"}, "payload": [{"contentString": text}], **extra}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [e["resource"]["id"] for e in response.get_json().get("entry", [])]


def _emails(ctx) -> list:
    with ctx.database.read() as conn:
        return conn.execute(select(outbox.c.recipient, outbox.c.subject, outbox.c.body)
                            .order_by(outbox.c.id)).all()


def test_a_thread_from_the_patient_to_the_practice_and_back(ctx, maria, nurse, fhir):
    sent = maria.post("Communication", message("Patient/p1", "Organization/practice"))
    assert sent.status_code == 201, sent.get_json()
    first = sent.get_json()
    assert first["sent"] and first["sender"] == {"reference": "Patient/p1"}
    assert _emails(ctx) == []  # the patient's own message emails nobody

    inbox = nurse.get("Communication?recipient=Organization/practice&status=completed&_sort=-sent")
    assert _ids(inbox) == [first["id"]]

    reply = nurse.post("Communication", message(
        "Practitioner/dr", "Patient/p1", text="Yes, with food; your A1c of 9.9 is why we talk about metformin.",
        partOf=[{"reference": f"Communication/{first['id']}"}],
        inResponseTo=[{"reference": f"Communication/{first['id']}"}]))
    assert reply.status_code == 201, reply.get_json()
    answer = reply.get_json()
    emails = _emails(ctx)
    assert [(e.recipient, e.subject) for e in emails] == [
        ("maria@example.org", "You have a new message from your practice")]
    assert "ibuprofen" not in emails[0].body and "A1c" not in emails[0].body and "medication" not in emails[0].body
    assert "/portal/messages" in emails[0].body

    thread = maria.get(f"Communication?part-of=Communication/{first['id']}")
    assert _ids(thread) == [answer["id"]]
    assert set(_ids(maria.get("Communication?patient=Patient/p1&_sort=sent"))) == {first["id"], answer["id"]}
    # the patient opens it: received, and nothing else
    opened = maria.patch(f"Communication/{answer['id']}", [{"op": "add", "path": "/received",
                                                           "value": "2026-12-07T10:00:00Z"}])
    assert opened.status_code == 200, opened.get_json()
    assert fhir.get(f"Communication/{answer['id']}").get_json()["received"] == "2026-12-07T10:00:00Z"
    rewrite = maria.patch(f"Communication/{answer['id']}", [{"op": "replace", "path": "/payload/0/contentString",
                                                            "value": "something else"}])
    assert rewrite.status_code == 403
    relabel = maria.patch(f"Communication/{answer['id']}", [{"op": "add", "path": "/meta/tag",
                                                            "value": [{"code": "mine"}]}])
    assert relabel.status_code == 403
    # the patient may not mark their own message as received by the practice
    own = maria.patch(f"Communication/{first['id']}", [{"op": "add", "path": "/received",
                                                       "value": "2026-12-07T10:00:00Z"}])
    assert own.status_code == 403
    # staff mark the patient's message read
    staff_read = nurse.patch(f"Communication/{first['id']}", [{"op": "add", "path": "/received",
                                                              "value": "2026-12-07T09:00:00Z"}])
    assert staff_read.status_code == 200, staff_read.get_json()
    assert _ids(nurse.get("Communication?recipient=Organization/practice&received:missing=true")) == []


def _refused(response, expression: str) -> None:
    assert response.status_code in (403, 422), response.get_json()
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(expression in e for i in outcome["issue"] for e in i.get("expression", [])), outcome


def test_a_patient_writes_only_as_themselves_about_themselves_to_the_practice(maria):
    _refused(maria.post("Communication", message("Patient/p2", "Organization/practice")), "Communication.sender")
    _refused(maria.post("Communication", message("Practitioner/dr", "Organization/practice")), "Communication.sender")
    _refused(maria.post("Communication", message("Patient/p1", "Organization/practice", subject="Patient/p2")),
             "Communication.subject")
    _refused(maria.post("Communication", message("Patient/p1", "Patient/p2")), "Communication.recipient[0]")
    _refused(maria.post("Communication", message("Patient/p1", "RelatedPerson/rp2")), "Communication.recipient[0]")
    _refused(maria.post("Communication", message("Patient/p1", "Organization/practice",
                                                 received="2026-01-01T00:00:00Z")), "Communication.received")
    no_sender = message("Patient/p1", "Practitioner/dr")
    del no_sender["sender"]
    created = maria.post("Communication", no_sender)
    assert created.status_code == 201 and created.get_json()["sender"] == {"reference": "Patient/p1"}


def test_a_caregiver_writes_on_behalf_of_their_patient(linda, nurse, maria):
    sent = linda.post("Communication", message("RelatedPerson/rp2", "Practitioner/dr", subject="Patient/p2"))
    assert sent.status_code == 201, sent.get_json()
    _refused(linda.post("Communication", message("Patient/p2", "Practitioner/dr", subject="Patient/p2")),
             "Communication.sender")
    assert _ids(nurse.get("Communication?recipient=Practitioner/dr&status=completed")) == [sent.get_json()["id"]]
    # another patient neither reads nor finds it, nor replies into it
    assert maria.get(f"Communication/{sent.get_json()['id']}").status_code == 404
    assert _ids(maria.get("Communication")) == []
    _refused(maria.post("Communication", message("Patient/p1", "Practitioner/dr",
                                                 partOf=[{"reference": f"Communication/{sent.get_json()['id']}"}])),
             "Communication.partOf[0]")


def test_a_message_labelled_nopat_is_withheld_from_the_patient(maria, nurse):
    hidden = nurse.create(message("Practitioner/dr", "Organization/practice", text="Staff note about Maria",
                                  meta={"security": [NOPAT]}))
    shown = nurse.create(message("Practitioner/dr", "Patient/p1", text="Your results are in"))
    assert _ids(maria.get("Communication")) == [shown["id"]]
    assert maria.get(f"Communication/{hidden['id']}").status_code == 404


def _with_file(sender: str, recipient: str, data: str = PDF, content_type: str = "application/pdf", **extra):
    body = message(sender, recipient, **extra)
    body["payload"].append({"contentAttachment": {"contentType": content_type, "data": data, "title": "letter.pdf"}})
    return body


def test_an_attachment_is_stored_once_as_a_binary_of_the_thread(ctx, people, maria, james, nurse, fhir):
    sent = maria.post("Communication", _with_file("Patient/p1", "Organization/practice"))
    assert sent.status_code == 201, sent.get_json()
    attachment = sent.get_json()["payload"][1]["contentAttachment"]
    assert "data" not in attachment and attachment["url"].startswith("Binary/") and attachment["size"] == 21
    binary_id = attachment["url"].split("/")[1]
    stored = fhir.get(f"Binary/{binary_id}", headers={"Accept": "application/fhir+json"}).get_json()
    assert stored["securityContext"] == {"reference": f"Communication/{sent.get_json()['id']}"}
    assert base64.b64decode(stored["data"]) == b"%PDF-1.4 a lab letter"
    assert maria.get(f"Binary/{binary_id}", headers={"Accept": "application/fhir+json"}).status_code == 200
    assert nurse.get(f"Binary/{binary_id}", headers={"Accept": "application/fhir+json"}).status_code == 200
    assert james.get(f"Binary/{binary_id}", headers={"Accept": "application/fhir+json"}).status_code == 404
    assert _ids(james.get("Binary")) == []
    # a patient may not point an attachment at someone else's file
    stolen = message("Patient/p2", "Organization/practice", subject="Patient/p2")
    stolen["payload"].append({"contentAttachment": {"contentType": "application/pdf", "url": f"Binary/{binary_id}"}})
    _refused(james.post("Communication", stolen), "Communication.payload[1].contentAttachment.url")
    # nor write a file of its own outside a message
    own = Fhir(james.client, _token(ctx, people["maria"], "p1", scope="patient/Binary.crs"))
    _refused(own.post("Binary", {"resourceType": "Binary", "contentType": "application/x-msdownload", "data": PDF,
                                 "securityContext": {"reference": f"Communication/{sent.get_json()['id']}"}}),
             "Binary")


def test_a_nopat_messages_attachment_is_withheld_too(maria, nurse):
    hidden = nurse.create(_with_file("Practitioner/dr", "Patient/p1", meta={"security": [NOPAT]}))
    binary_id = hidden["payload"][1]["contentAttachment"]["url"].split("/")[1]
    assert maria.get(f"Binary/{binary_id}", headers={"Accept": "application/fhir+json"}).status_code == 404


def test_attachments_are_limited_in_size_and_type(app, ctx, maria):
    _refused(maria.post("Communication", _with_file("Patient/p1", "Organization/practice",
                                                    content_type="application/x-msdownload")),
             "Communication.payload[1].contentAttachment.contentType")
    for allowed in ("image/png", "image/jpeg", "text/plain; charset=utf-8"):
        assert maria.post("Communication", _with_file("Patient/p1", "Organization/practice",
                                                      content_type=allowed)).status_code == 201
    limit = ctx.settings.message_attachment_max_bytes
    try:
        ctx.settings = ctx.settings.with_overrides(message_attachment_max_bytes=10)
        _refused(maria.post("Communication", _with_file("Patient/p1", "Organization/practice")),
                 "Communication.payload[1].contentAttachment.data")
    finally:
        ctx.settings = ctx.settings.with_overrides(message_attachment_max_bytes=limit)
    _refused(maria.post("Communication", _with_file("Patient/p1", "Organization/practice", data="not base64!")),
             "Communication.payload[1].contentAttachment.data")


def test_the_capability_statement_lists_communication_searches(client):
    statement = client.get("/fhir/metadata").get_json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    params = {p["name"] for p in resources["Communication"]["searchParam"]}
    assert {"recipient", "sender", "subject", "patient", "sent", "received", "status", "part-of"} <= params
    assert "security-context" in {p["name"] for p in resources["Binary"]["searchParam"]}


def test_the_consent_page_offers_messages_to_apps(ctx):
    from fhirportal.smart.consent import choices, granted, requested_scopes

    asked = requested_scopes("launch/patient patient/Communication.crs", ctx.resource_types)
    offered = {c.scope: c.label for c in choices(asked, ctx.access_policy.patient_types)}
    assert offered["patient/Communication.crs"] == "read/search/create messages (Communication)"
    grant = granted(asked, ["patient/Communication.crs"], ctx.resource_types, contexts={"patient"},
                    allowed_other=set(), patient_types=ctx.access_policy.patient_types)
    assert [s.text for s in grant.resource_scopes] == ["patient/Communication.crs"]
    wildcard = choices(requested_scopes("patient/*.rs", ctx.resource_types), ctx.access_policy.patient_types)
    messages = next(c for c in wildcard if c.label == "Messages and their attachments")
    assert "patient/Binary.rs" in messages.scope.split() and "patient/Communication.rs" in messages.scope.split()


def test_caregivers_with_accounts_are_emailed_too_and_drafts_email_nobody(ctx, nurse):
    nurse.create(message("Practitioner/dr", "Patient/p2", subject="Patient/p2", status="preparation"))
    assert _emails(ctx) == []
    nurse.create(message("Practitioner/dr", "Patient/p2", subject="Patient/p2", text="Your MRI shows a tumour"))
    emails = _emails(ctx)
    assert [e.recipient for e in emails] == ["linda@example.org"]  # p2 has no account of their own here
    assert "MRI" not in emails[0].body and "tumour" not in emails[0].body
