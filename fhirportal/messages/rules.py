"""What a secure message (a FHIR ``Communication``) may say, checked when it is written (create, update,
patch, transaction), and where its attachments go.

A patient's token (``patient/`` context; a caregiver's too, acting for their patient):

- creates a message only about its patient (``subject`` = ``Patient/<patient>``), with itself as
  ``sender`` (``Patient/<patient>``, a caregiver: its ``RelatedPerson``; filled in when left out), to the
  practice only (every ``recipient`` an Organization, Practitioner or PractitionerRole), never already
  ``received``; a reply (``partOf``, ``inResponseTo``) only to a message it may read. Anything else is a 403
  OperationOutcome naming the element.
- changes a message only to mark one addressed to the patient (or to the caregiver) as read: the new
  version differs from the current one in ``received`` alone, set once.

Everyone: a message the writer leaves without ``sent`` is stamped with the server's time when it is
``completed``. An attachment (``payload.contentAttachment``) is a PDF, PNG, JPEG or plain text of at most
``FHIRPORTAL_MESSAGE_ATTACHMENT_MAX_BYTES``; sent inline (``data``), it is stored once as a ``Binary``
whose ``securityContext`` is the message (a patient reads it exactly while they may read the message)
and the attachment keeps ``url`` = ``Binary/<id>``, ``size`` and ``hash`` (SHA-1) instead of the data. A
patient's token may not point an attachment at any other Binary (only at those of this very message), nor
write a Binary itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

from fhirportal.errors import Forbidden, Unprocessable
from fhirportal.store.repository import new_id

COMMUNICATION = "Communication"
BINARY = "Binary"
ALLOWED_CONTENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "text/plain"})
PRACTICE_RECIPIENTS = frozenset({"Organization", "Practitioner", "PractitionerRole"})
PATIENT_SENDERS = frozenset({"Patient", "RelatedPerson"})
REPLY_ELEMENTS = ("partOf", "inResponseTo")
# What a patient's read receipt may change: ``received`` (and ``text``, the narrative; the server stamps
# ``meta.versionId`` and ``meta.lastUpdated``, the rest of ``meta`` must stay as it is).
RECEIPT_ELEMENTS = frozenset({"received", "text", "id"})
SERVER_META = ("versionId", "lastUpdated")


def _comparable(body: dict, key: str):
    if key != "meta":
        return body.get(key)
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in SERVER_META}
    return meta or None


def reference_of(value) -> str:
    return value.get("reference", "") if isinstance(value, dict) else ""


def type_and_id(reference: str) -> tuple[str, str]:
    """``Patient/p1`` (or an absolute URL ending so) → ("Patient", "p1"); ("", "") otherwise."""
    parts = reference.rstrip("/").split("/")
    if len(parts) < 2 or "_history" in parts:
        return "", ""
    return parts[-2], parts[-1]


def patient_acting(auth) -> bool:
    """Does this request act in a patient's context (a patient or caregiver's token)?"""
    return auth.access is not None and auth.access.context == "patient"


def own_sender(access) -> str:
    """Who a patient-context token writes as: the caregiver's RelatedPerson, otherwise the patient."""
    fhir_user = access.fhir_user or ""
    if fhir_user.startswith("RelatedPerson/"):
        return fhir_user
    return f"Patient/{access.patient}"


def accept(writer, body: dict, interaction: str, fhir_id: str) -> dict:
    """The Communication as stored (``fhir_id``: its id, assigned before a create), or a 403/422."""
    auth = writer.auth
    if patient_acting(auth):
        if interaction == "create":
            body = check_patient_message(writer, body)
        else:
            check_read_receipt(writer, body, fhir_id)
    body = dict(body)
    if interaction == "create" and not body.get("sent") and body.get("status") == "completed":
        body["sent"] = datetime.now(UTC).isoformat(timespec="seconds")
    return store_attachments(writer, body, fhir_id)


def check_patient_message(writer, body: dict) -> dict:
    access = writer.auth.access
    patient = f"Patient/{access.patient}"
    if type_and_id(reference_of(body.get("subject"))) != ("Patient", access.patient or ""):
        raise Forbidden(f"A message from the patient's side must be about {patient} (Communication.subject)",
                        expression="Communication.subject")
    sender = own_sender(access)
    if body.get("sender") is None:
        body = {**body, "sender": {"reference": sender}}
    elif "/".join(type_and_id(reference_of(body["sender"]))) != sender:
        raise Forbidden(f"A message sent with this token must have {sender} as its sender (Communication.sender)",
                        expression="Communication.sender")
    recipients = body.get("recipient")
    if not isinstance(recipients, list) or not recipients:
        raise Forbidden("A message from the patient's side goes to the practice: Communication.recipient must name "
                        "its Organization or a Practitioner", expression="Communication.recipient")
    for index, recipient in enumerate(recipients):
        if type_and_id(reference_of(recipient))[0] not in PRACTICE_RECIPIENTS:
            raise Forbidden("A message from the patient's side goes to the practice only (an Organization, "
                            f"Practitioner or PractitionerRole), not {reference_of(recipient) or 'this recipient'}",
                            expression=f"Communication.recipient[{index}]")
    if body.get("received"):
        raise Forbidden("Only the recipient marks a message as received", expression="Communication.received")
    read = writer.auth.visibility("read")
    for element in REPLY_ELEMENTS:
        for index, item in enumerate(body.get(element) or []):
            kind, fhir_id = type_and_id(reference_of(item))
            if kind != COMMUNICATION or not writer.repository.visible(writer.conn, kind, fhir_id, read):
                raise Forbidden(f"Communication.{element} must be a message of this patient's "
                                f"({reference_of(item) or 'no reference'} is not)",
                                expression=f"Communication.{element}[{index}]")
    return body


def addressed_to_patient(body: dict, access) -> bool:
    mine = {f"Patient/{access.patient}", own_sender(access)}
    return any("/".join(type_and_id(reference_of(r))) in mine for r in body.get("recipient") or [])


def check_read_receipt(writer, body: dict, fhir_id: str) -> None:
    """A patient-context update or patch: only ``received`` set, on a message to the patient."""
    access = writer.auth.access
    read = writer.auth.visibility("read")
    if not writer.repository.visible(writer.conn, COMMUNICATION, fhir_id, read):
        writer.auth.refuse_write(f"{COMMUNICATION}/{fhir_id}", "update")
    current = writer.repository.read(writer.conn, COMMUNICATION, fhir_id).body
    if not addressed_to_patient(current, access):
        raise Forbidden("A patient may only mark a message addressed to them as read", expression="Communication")
    changed = {k for k in set(current) | set(body) if _comparable(current, k) != _comparable(body, k)} - \
        RECEIPT_ELEMENTS
    if changed:
        raise Forbidden("A patient may only mark a message as read (Communication.received); it also changes "
                        + ", ".join(sorted(changed)), expression=f"Communication.{sorted(changed)[0]}")
    if current.get("received") and body.get("received") != current["received"]:
        raise Forbidden("The message was already marked as read", expression="Communication.received")
    if not body.get("received"):
        raise Forbidden("A patient may only mark a message as read (Communication.received)",
                        expression="Communication.received")


def _content_type(value) -> str:
    return value.split(";", 1)[0].strip().lower() if isinstance(value, str) else ""


def _decode(data, where: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except (binascii.Error, ValueError) as exc:
        raise Unprocessable(f"{where}.data is not base64", expression=f"{where}.data") from exc


def store_attachments(writer, body: dict, fhir_id: str) -> dict:
    payload = body.get("payload")
    if not isinstance(payload, list):
        return body
    limit = writer.ctx.settings.message_attachment_max_bytes
    items = []
    for index, item in enumerate(payload):
        attachment = item.get("contentAttachment") if isinstance(item, dict) else None
        if not isinstance(attachment, dict):
            items.append(item)
            continue
        where = f"Communication.payload[{index}].contentAttachment"
        content_type = _content_type(attachment.get("contentType"))
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise Unprocessable(f"{where}.contentType: a message may carry PDF, PNG, JPEG or plain text files only "
                                f"({', '.join(sorted(ALLOWED_CONTENT_TYPES))}), not "
                                f"{attachment.get('contentType') or 'an unnamed type'}",
                                expression=f"{where}.contentType")
        if "data" in attachment:
            items.append({**item, "contentAttachment": _store(writer, body, fhir_id, attachment, where, limit)})
            continue
        _check_link(writer, attachment, fhir_id, where, limit)
        items.append(item)
    return {**body, "payload": items}


def _store(writer, body: dict, fhir_id: str, attachment: dict, where: str, limit: int) -> dict:
    data = _decode(attachment["data"], where)
    if len(data) > limit:
        raise Unprocessable(f"{where}: the file is {len(data)} bytes; a message's attachment may be at most "
                            f"{limit} bytes", expression=f"{where}.data")
    binary = {"resourceType": BINARY, "contentType": attachment["contentType"],
              "securityContext": {"reference": f"{COMMUNICATION}/{fhir_id}"},
              "data": base64.b64encode(data).decode("ascii")}
    security = (body.get("meta") or {}).get("security")
    if security:
        binary["meta"] = {"security": security}
    record = writer.repository.create(writer.conn, binary)
    writer.written.append(record)
    stored = {k: v for k, v in attachment.items() if k != "data"}
    stored.update(url=f"{BINARY}/{record.fhir_id}", size=len(data),
                  hash=base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"))  # noqa: S324 (R4's hash)
    return stored


def _check_link(writer, attachment: dict, fhir_id: str, where: str, limit: int) -> None:
    """An attachment by ``url``: within the size limit; a patient's token only to this message's Binaries."""
    size = attachment.get("size")
    if isinstance(size, int) and size > limit:
        raise Unprocessable(f"{where}: the file is {size} bytes; a message's attachment may be at most {limit} bytes",
                            expression=f"{where}.size")
    if not patient_acting(writer.auth):
        return
    kind, binary_id = type_and_id(attachment.get("url") or "")
    owner = None
    if kind == BINARY and writer.repository.visible(writer.conn, BINARY, binary_id, None):
        owner = reference_of(writer.repository.read(writer.conn, BINARY, binary_id).body.get("securityContext"))
    if owner != f"{COMMUNICATION}/{fhir_id}":
        raise Forbidden(f"{where}.url: send the file itself (data); a message from the patient's side may not point "
                        "at other files", expression=f"{where}.url")


def refuse_patient_binary(auth) -> None:
    """A patient's token never writes a Binary itself: its files go inside a message (checked, stored)."""
    if patient_acting(auth):
        raise Forbidden("A file from the patient's side is sent inside its message "
                        "(Communication.payload.contentAttachment.data)", expression=BINARY)


def assign_id(fhir_id: str | None) -> str:
    """A create's id, chosen before its attachments are stored (they name the message)."""
    return fhir_id or new_id()
