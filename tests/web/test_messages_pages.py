"""The portal's secure-message pages with the Flask test client: the inbox, writing to the practice with an
attachment (CSRF-protected), the practice's reply (an email without the message), opening the thread
(marked read through the API), downloading the attachment, replying."""

from __future__ import annotations

import io

from sqlalchemy import select

from fhirportal.store.outbox_schema import outbox
from tests.web.flows import follow, form, sign_in, text


def _form(client, path: str) -> tuple[str, dict]:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return form(page.get_data(as_text=True), "<h1>")


def _communications(fhir) -> list[dict]:
    bundle = fhir.get("Communication?_sort=sent").get_json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_writing_to_the_practice_reading_the_reply_and_answering(client, ctx, practice, fhir):
    inbox = sign_in(client, "maria")
    assert 'href="/portal/messages"' in inbox.get_data(as_text=True)
    empty = client.get("/portal/messages")
    assert empty.status_code == 200 and "No messages yet" in text(empty)

    action, fields = _form(client, "/portal/messages/new")
    assert action == "/portal/messages/new" and "Dr. Elena Vasquez" in text(client.get("/portal/messages/new"))
    refused = client.post(action, data={"recipient": "Practitioner/dr", "topic": "Refill", "text": "Hi"})
    assert refused.status_code == 400
    sent = client.post(action, data={**fields, "recipient": "Practitioner/dr", "topic": "Metformin refill",
                                     "text": "Could you refill my metformin?",
                                     "attachment": (io.BytesIO(b"pharmacy: Main St"), "pharmacy.txt", "text/plain")})
    assert sent.status_code == 303, sent.get_data(as_text=True)
    thread = follow(client, sent)
    assert "Could you refill my metformin?" in text(thread) and "pharmacy.txt" in text(thread)
    [first] = _communications(fhir)
    assert first["sender"] == {"reference": "Patient/p1"} and first["recipient"] == [{"reference": "Practitioner/dr"}]
    assert first["topic"] == {"text": "Metformin refill"}
    binary = first["payload"][1]["contentAttachment"]["url"].split("/")[1]
    download = client.get(f"/portal/messages/attachment/{binary}")
    assert download.status_code == 200 and download.data == b"pharmacy: Main St"
    assert download.headers["Content-Type"].startswith("text/plain") and "attachment" in \
        download.headers["Content-Disposition"]

    answer = fhir.create({"resourceType": "Communication", "status": "completed",
                          "subject": {"reference": "Patient/p1"}, "sender": {"reference": "Practitioner/dr"},
                          "recipient": [{"reference": "Patient/p1"}], "topic": {"text": "Metformin refill"},
                          "partOf": [{"reference": f"Communication/{first['id']}"}],
                          "inResponseTo": [{"reference": f"Communication/{first['id']}"}],
                          "payload": [{"contentString": "Sent to your pharmacy; keep checking your A1c."}]})
    with ctx.database.read() as conn:
        emails = conn.execute(select(outbox.c.recipient, outbox.c.body)).all()
    assert [e.recipient for e in emails] == ["maria@example.org"]
    assert "A1c" not in emails[0].body and "metformin" not in emails[0].body.lower()

    listed = client.get("/portal/messages")
    assert 'class="unread"' in listed.get_data(as_text=True) and "Metformin refill" in text(listed)
    opened = client.get(f"/portal/messages/{first['id']}")
    assert opened.status_code == 200
    shown = text(opened)
    assert shown.index("Could you refill my metformin?") < shown.index("Sent to your pharmacy")
    assert "Dr. Elena Vasquez" in shown
    assert fhir.get(f"Communication/{answer['id']}").get_json().get("received")
    assert 'class="unread"' not in client.get("/portal/messages").get_data(as_text=True)

    action, fields = form(opened.get_data(as_text=True), "<h2 id=\"reply\">")
    assert action == f"/portal/messages/{first['id']}/reply"
    replied = client.post(action, data={**fields, "text": "Thank you!"})
    assert replied.status_code == 303
    last = _communications(fhir)[-1]
    assert last["payload"][0]["contentString"] == "Thank you!"
    assert last["partOf"] == [{"reference": f"Communication/{first['id']}"}]
    assert last["inResponseTo"] == [{"reference": f"Communication/{answer['id']}"}]
    assert last["recipient"] == [{"reference": "Practitioner/dr"}]
    bad_file = client.post(action, data={**fields, "text": "my scan",
                                         "attachment": (io.BytesIO(b"MZ\x90"), "scan.exe", "application/x-msdownload")})
    assert bad_file.status_code == 400 and "PDF" in text(bad_file)


def test_a_thread_of_another_patient_is_not_shown(client, practice, fhir):
    other = fhir.create({"resourceType": "Communication", "status": "completed", "subject": {"reference": "Patient/p2"},
                         "sender": {"reference": "Practitioner/dr"}, "recipient": [{"reference": "Patient/p2"}],
                         "payload": [{"contentString": "For James only"}]})
    sign_in(client, "maria")
    assert client.get(f"/portal/messages/{other['id']}").status_code == 404
    assert "For James only" not in text(client.get("/portal/messages"))
