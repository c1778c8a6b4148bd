"""Secure messages in the portal: the inbox (threads, newest first, unread marked), a thread (its messages
in order; opening it marks the messages addressed to the patient as read), writing to the practice and
replying, and an attachment's download — every one through the FHIR API with the session's token
(``Communication`` and ``Binary``; the server's rules in ``fhirportal/messages/rules.py``).

A thread is its first message and the messages whose ``partOf`` names it; a reply also names the message
it answers (``inResponseTo``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, make_response, request

from .client import ApiError, FhirApi
from .portal import SECURITY_HEADERS, csrf_ok, nav_values, page, see_other, signed_in_page
from .sessions import WebSession
from .summary import patient_banner
from .words import human_name, reference_text, sort_key, when

bp = Blueprint("web_messages", __name__, template_folder="templates")
PRACTICE_TYPES = ("Organization", "Practitioner", "PractitionerRole")
DOWNLOAD_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "text/plain"})
MAX_TEXT = 10_000
MAX_TOPIC = 200


@dataclass
class Message:
    id: str
    sender: str
    mine: bool  # sent from the patient's side
    sent: str
    text: str
    attachments: list[dict] = field(default_factory=list)
    unread: bool = False


@dataclass
class Thread:
    id: str
    topic: str
    messages: list[dict] = field(default_factory=list)  # the Communications, oldest first

    @property
    def latest(self) -> dict:
        return self.messages[-1]


def _ref(value) -> str:
    return value.get("reference", "") if isinstance(value, dict) else ""


def own_references(session: WebSession) -> set[str]:
    """Who the patient's side is: the patient, and the caregiver signed in for them."""
    mine = {f"Patient/{session.patient}"}
    fhir_user = session.content.get("fhir_user") or ""
    if fhir_user.startswith("RelatedPerson/"):
        mine.add(fhir_user)
    return mine


def sender_of(session: WebSession) -> str:
    fhir_user = session.content.get("fhir_user") or ""
    return fhir_user if fhir_user.startswith("RelatedPerson/") else f"Patient/{session.patient}"


def root_of(message: dict) -> str:
    for part in message.get("partOf") or []:
        if _ref(part).startswith("Communication/"):
            return _ref(part).split("/", 1)[1]
    return message["id"]


def unread(message: dict, mine: set[str]) -> bool:
    return not message.get("received") and any(_ref(r) in mine for r in message.get("recipient") or [])


def threads(api: FhirApi, patient: str) -> list[Thread]:
    """The patient's threads, the one with the newest message first."""
    found = api.search("Communication", [("subject", f"Patient/{patient}"), ("_sort", "sent"), ("_count", "500")],
                       every_page=True)
    by_root: dict[str, Thread] = {}
    for message in sorted(found, key=lambda m: sort_key(m.get("sent"))):
        root = root_of(message)
        thread = by_root.setdefault(root, Thread(root, ""))
        thread.messages.append(message)
        if not thread.topic or message["id"] == root:
            thread.topic = (message.get("topic") or {}).get("text") or thread.topic
    return sorted(by_root.values(), key=lambda t: sort_key(t.latest.get("sent")), reverse=True)


def _names(api: FhirApi, messages: list[dict]) -> dict[str, dict]:
    """The practice's people and organizations the messages name (patient tokens read them whole)."""
    wanted = {_ref(m.get("sender")) for m in messages} | {_ref(r) for m in messages for r in m.get("recipient") or []}
    found = {}
    for reference in sorted(wanted):
        kind, _, fhir_id = reference.partition("/")
        if kind in PRACTICE_TYPES and fhir_id:
            resource = api.read(kind, fhir_id)
            if resource:
                found[reference] = resource
    return found


def describe(message: dict, mine: set[str], names: dict[str, dict]) -> Message:
    sender = message.get("sender")
    from_me = _ref(sender) in mine
    who = "You" if from_me else (reference_text(sender, names) or "Your practice")
    text = "\n".join(p["contentString"] for p in message.get("payload") or [] if p.get("contentString"))
    attachments = []
    for item in message.get("payload") or []:
        attachment = item.get("contentAttachment") or {}
        url = attachment.get("url") or ""
        if url.startswith("Binary/"):
            attachments.append({"id": url.split("/", 1)[1], "title": attachment.get("title") or "Attachment",
                                "type": attachment.get("contentType", ""), "size": attachment.get("size")})
    return Message(message["id"], who, from_me, when(message.get("sent"), with_time=True), text, attachments,
                   unread(message, mine))


@bp.route("/portal/messages", methods=["GET"])
def inbox():
    def render(session: WebSession, api: FhirApi) -> Response:
        mine = own_references(session)
        rows = []
        for thread in threads(api, session.patient):
            rows.append({"id": thread.id, "topic": thread.topic or "(no subject)", "count": len(thread.messages),
                         "when": when(thread.latest.get("sent"), with_time=True),
                         "unread": any(unread(m, mine) for m in thread.messages)})
        return page("web/messages.html", threads=rows, sent=request.args.get("sent") == "1",
                    **nav_values(session, "messages", patient_banner(api, session.patient)))

    return signed_in_page(render)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@bp.route("/portal/messages/<thread_id>", methods=["GET"])
def thread_page(thread_id: str):
    def render(session: WebSession, api: FhirApi) -> Response:
        return _thread(session, api, thread_id)

    return signed_in_page(render)


def _thread(session: WebSession, api: FhirApi, thread_id: str, status: int = 200, error: str | None = None,
            text: str = "") -> Response:
    mine = own_references(session)
    thread = next((t for t in threads(api, session.patient) if t.id == thread_id), None)
    banner = patient_banner(api, session.patient)
    if thread is None:
        return page("web/problem.html", 404, title="Message not found",
                    message="This message is not in your portal. It may have been sent to another record.",
                    **nav_values(session, "messages", banner))
    names = _names(api, thread.messages)
    shown = [describe(m, mine, names) for m in thread.messages]
    for message in thread.messages:  # opening the thread marks what was addressed to the patient as read
        if unread(message, mine):
            try:
                api.patch("Communication", message["id"], [{"op": "add", "path": "/received", "value": _now()}])
            except ApiError as refused:
                current_app.logger.info("could not mark Communication/%s as read: %s", message["id"], refused.message)
    return page("web/thread.html", status, thread=thread, topic=thread.topic or "(no subject)", messages=shown,
                error=error, text=text, limit=_limit_text(), **nav_values(session, "messages", banner))


def _limit() -> int:
    return current_app.extensions["fhirportal"].settings.message_attachment_max_bytes


def _limit_text() -> str:
    limit = _limit()
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{max(limit // 1024, 1)} KB"


def _payload(text: str) -> list[dict]:
    """The message's text, and the uploaded file (if any) inline: the server stores it as a Binary."""
    payload = [{"contentString": text}]
    upload = request.files.get("attachment")
    if upload is not None and upload.filename:
        data = upload.stream.read(_limit() + 1)
        if len(data) > _limit():
            raise ValueError(f"The file is too large: attachments may be at most {_limit_text()}.")
        content_type = (upload.mimetype or "").lower()
        if content_type not in DOWNLOAD_TYPES:
            raise ValueError("Attach a PDF, a PNG or JPEG picture, or a plain text file.")
        payload.append({"contentAttachment": {"contentType": content_type, "title": upload.filename[:200],
                                              "data": base64.b64encode(data).decode("ascii")}})
    return payload


def _problem_text(error: ApiError) -> str:
    if error.status in (403, 422):
        return f"The message could not be sent: {error.message}"
    raise error


@bp.route("/portal/messages/<thread_id>/reply", methods=["POST"])
def reply(thread_id: str):
    def render(session: WebSession, api: FhirApi) -> Response:
        if not csrf_ok(session):
            return page("web/problem.html", 400, title="Please try again",
                        message="The form expired. Go back, reload the page and send your message again.")
        text = request.form.get("text", "").strip()[:MAX_TEXT]
        thread = next((t for t in threads(api, session.patient) if t.id == thread_id), None)
        if thread is None:
            return _thread(session, api, thread_id)
        if not text:
            return _thread(session, api, thread_id, 400, "Write your message before sending it.")
        mine = own_references(session)
        # to whoever in the practice wrote last (else whom the thread's first message went to)
        theirs = [m for m in thread.messages if _ref(m.get("sender")) not in mine]
        recipients = [theirs[-1]["sender"]] if theirs else thread.messages[0].get("recipient") or []
        recipients = [r for r in recipients if _ref(r).split("/", 1)[0] in PRACTICE_TYPES]
        try:
            body = {"resourceType": "Communication", "status": "completed",
                    "subject": {"reference": f"Patient/{session.patient}"},
                    "sender": {"reference": sender_of(session)},
                    "recipient": [{"reference": _ref(r)} for r in recipients],
                    "partOf": [{"reference": f"Communication/{thread.id}"}],
                    "inResponseTo": [{"reference": f"Communication/{thread.latest['id']}"}],
                    "payload": _payload(text)}
            if thread.topic:
                body["topic"] = {"text": thread.topic}
            api.create(body)
        except ValueError as problem:
            return _thread(session, api, thread_id, 400, str(problem), text)
        except ApiError as refused:
            return _thread(session, api, thread_id, 422, _problem_text(refused), text)
        return see_other(f"/portal/messages/{thread.id}")

    return signed_in_page(render)



def practice_choices(api: FhirApi, patient: str) -> list[tuple[str, str]]:
    """Whom the patient may write to: their practice (managing organization), their doctors (general
    practitioner, care team), else the practice's organizations on file."""
    record = api.read("Patient", patient) or {}
    wanted = [_ref(record.get("managingOrganization"))] + [_ref(g) for g in record.get("generalPractitioner") or []]
    for team in api.search("CareTeam", [("patient", patient), ("status", "active")]):
        wanted += [_ref(p.get("member")) for p in team.get("participant") or []]
    choices: list[tuple[str, str]] = []
    for reference in wanted:
        kind, _, fhir_id = reference.partition("/")
        if kind in PRACTICE_TYPES and fhir_id and reference not in {c[0] for c in choices}:
            resource = api.read(kind, fhir_id)
            if resource:
                choices.append((reference, human_name(resource, reference)))
    if not any(c[0].startswith("Organization/") for c in choices):
        choices += [(f"Organization/{o['id']}", human_name(o, "Your practice"))
                    for o in api.search("Organization", [("active", "true"), ("_count", "5")])]
    return choices


def _compose(session: WebSession, api: FhirApi, status: int = 200, error: str | None = None, form=None) -> Response:
    return page("web/compose.html", status, choices=practice_choices(api, session.patient), error=error,
                form=form or {}, limit=_limit_text(),
                **nav_values(session, "messages", patient_banner(api, session.patient)))


@bp.route("/portal/messages/new", methods=["GET", "POST"])
def compose():
    def render(session: WebSession, api: FhirApi) -> Response:
        if request.method == "GET":
            return _compose(session, api)
        if not csrf_ok(session):
            return page("web/problem.html", 400, title="Please try again",
                        message="The form expired. Go back, reload the page and send your message again.")
        form = {"recipient": request.form.get("recipient", ""), "topic": request.form.get("topic", "").strip(),
                "text": request.form.get("text", "").strip()[:MAX_TEXT]}
        if form["recipient"] not in {c[0] for c in practice_choices(api, session.patient)}:
            return _compose(session, api, 400, "Choose whom to write to.", form)
        if not form["topic"] or not form["text"]:
            return _compose(session, api, 400, "Give your message a subject and write your message.", form)
        try:
            created = api.create({
                "resourceType": "Communication", "status": "completed",
                "subject": {"reference": f"Patient/{session.patient}"}, "sender": {"reference": sender_of(session)},
                "recipient": [{"reference": form["recipient"]}], "topic": {"text": form["topic"][:MAX_TOPIC]},
                "payload": _payload(form["text"])})
        except ValueError as problem:
            return _compose(session, api, 400, str(problem), form)
        except ApiError as refused:
            return _compose(session, api, 422, _problem_text(refused), form)
        return see_other(f"/portal/messages/{created['id']}")

    return signed_in_page(render)


@bp.route("/portal/messages/attachment/<binary_id>", methods=["GET"])
def attachment(binary_id: str):
    """A message's file, as the API gives it to the patient's token (404 outside their threads)."""
    def render(session: WebSession, api: FhirApi) -> Response:
        binary = api.read("Binary", binary_id)
        if not binary or "data" not in binary:
            return page("web/problem.html", 404, title="Attachment not found",
                        message="This file is not in your messages.")
        content_type = (binary.get("contentType") or "").split(";", 1)[0].strip().lower()
        response = make_response(base64.b64decode(binary["data"]), 200)
        response.headers.update(SECURITY_HEADERS)
        safe = content_type in DOWNLOAD_TYPES
        response.headers["Content-Type"] = content_type if safe else "application/octet-stream"
        response.headers["Content-Disposition"] = f'attachment; filename="attachment-{binary_id}"'
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    return signed_in_page(render)
