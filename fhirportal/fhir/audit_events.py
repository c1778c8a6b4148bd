"""AuditEvents rendered from the access log (``store/journal_schema.access_log``), and what each reader
may see of them.

One row becomes one AuditEvent (``access-{id}``; IHE BALP-like shape: a RESTful-interaction event with
the user and the app as agents and the patient, the resource or the query as entities). Staff and system
readers get it as recorded. A patient or caregiver (``Viewer`` with patients) gets the rows about their
own records and their own actions, and never a name of anyone else's: who acted is themselves, a person
at the practice (their Practitioner), an app by its client id, or "another portal user"; an entity that
belongs to another patient — another patient's Patient, a resource a refused access named, a query about
someone else — is left out.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhirportal.store import clock
from fhirportal.store.indexing.reference import parse as parse_reference
from fhirportal.store.records import StoredResource

EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ACTION_CODES = {"read": "R", "vread": "R", "search": "E", "history": "R", "create": "C", "update": "U",
                "patch": "U", "delete": "D", "transaction": "E", "batch": "E", "operation": "E", "export": "R"}
INTERACTION_CODES = {"search": "search-type", "history": "history-instance", "operation": "operation",
                     "export": "operation"}
PATIENT_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
DOMAIN_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"}
QUERY_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"}
APPLICATION = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}
HUMAN_USER = {"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser",
              "display": "human user"}
# IHE BALP's "transaction" entity: the HTTP request's X-Request-ID (staff and systems only: an internal detail)
REQUEST_ID_TYPE = {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "code": "XrequestId",
                   "display": "transport specific unique identifier where http X-Request-Id is used"}
ANOTHER_USER = "another portal user"
JOURNAL_PREFIX = "access-"
PORTAL_USERS = ("Patient/", "RelatedPerson/", "Person/")


@dataclass(frozen=True)
class Viewer:
    """Who reads the log: ``patients`` None for staff and systems (as recorded), else the patients whose
    records the reader may see the log of (a caregiver's patients), and the reader's own account."""

    patients: frozenset[str] | None = None
    account_id: int | None = None

    @property
    def is_patient(self) -> bool:
        return self.patients is not None


AS_RECORDED = Viewer()


def journal_id(fhir_id: str) -> int | None:
    """The access-log row of an AuditEvent id (``access-123``), or None for any other id."""
    number = fhir_id[len(JOURNAL_PREFIX):] if fhir_id.startswith(JOURNAL_PREFIX) else ""
    return int(number) if number.isdigit() and len(number) <= 18 else None


def _outcome_code(status: int) -> str:
    return "0" if status < 400 else "4" if status < 500 else "8"


def _own(row, viewer: Viewer) -> bool:
    """The row is an action of the viewer (their account, or their token acting for one of their patients)."""
    return (row.account_id is not None and row.account_id == viewer.account_id) or \
        (row.actor_patient in viewer.patients if row.actor_patient else False)


def _names_only(query: str, patients: frozenset[str]) -> bool:
    """A search string naming no patient but these (by patient/subject/_id of Patient or a Patient/x)."""
    path, _, arguments = query.partition("?")
    if path.startswith("Patient/") and path.split("/")[1] not in patients:
        return False
    for name, value in parse_qsl(arguments):
        base = name.split(":")[0].split(".")[0]
        named = [v.strip() for v in value.split(",")] if base in ("patient", "subject") or \
            (path == "Patient" and base == "_id") else [v for v in value.split(",") if "Patient/" in v]
        for item in named:
            if item.rsplit("Patient/", 1)[-1] not in patients:
                return False
    return True


def _agents(row, viewer: Viewer) -> list[dict]:
    who = row.fhir_user
    if viewer.is_patient and who and not _own(row, viewer) and who.startswith(PORTAL_USERS) \
            and who.split("/", 1)[1] not in viewer.patients:
        # someone else's portal user, with an app of theirs: neither is named
        return [{"type": {"coding": [HUMAN_USER]}, "who": {"display": ANOTHER_USER}, "requestor": True}]
    if who:
        person = {"type": {"coding": [HUMAN_USER]}, "who": {"reference": who}, "requestor": True}
    else:
        return [{"type": {"coding": [APPLICATION]}, "who": {"display": f"app {row.client_id}"}, "requestor": True}]
    agents = [person]
    if row.client_id:
        agents.append({"type": {"coding": [APPLICATION]}, "who": {"display": f"app {row.client_id}"},
                       "requestor": False})
    return agents


def _entities(row, viewer: Viewer) -> list[dict]:
    """What the access was about; for staff and systems, last, the request's id (BALP's "transaction")."""
    entities = _about(row, viewer)
    request_id = getattr(row, "request_id", None)
    if request_id and not viewer.is_patient:
        entities.append({"what": {"identifier": {"value": request_id}}, "type": REQUEST_ID_TYPE})
    return entities


def _about(row, viewer: Viewer) -> list[dict]:
    mine = viewer.patients
    patients = [p for p in (row.patient_id, row.actor_patient) if p]
    if viewer.is_patient:
        patients = [p for p in patients if p in mine]
    entities = [{"what": {"reference": f"Patient/{p}"}, "role": PATIENT_ROLE} for p in dict.fromkeys(patients)]
    query = row.query
    if not query:
        return entities
    if viewer.is_patient and not (row.patient_id in mine and _names_only(query, mine)):
        return entities  # about another record, or naming another patient: the record is not named
    if "?" not in query and "/" in query and "$" not in query:  # Type/id
        entities.append({"what": {"reference": query}, "role": DOMAIN_ROLE})
    else:
        entities.append({"role": QUERY_ROLE, "description": query[:1024],
                         "query": base64.b64encode(query.encode()).decode()})
    return entities


def render(row, base_url: str, viewer: Viewer = AS_RECORDED) -> dict:
    """The AuditEvent (R4) of one access-log row, as ``viewer`` may see it."""
    recorded = clock.as_instant(clock.ensure_utc(row.recorded))
    return {
        "resourceType": "AuditEvent",
        "id": f"{JOURNAL_PREFIX}{row.id}",
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": EVENT_TYPE,
        "subtype": [{"system": INTERACTION_SYSTEM, "code": INTERACTION_CODES.get(row.action, row.action)}],
        "action": ACTION_CODES.get(row.action, "E"),
        "recorded": recorded,
        "outcome": _outcome_code(row.outcome),
        "outcomeDesc": f"HTTP {row.outcome}",
        "agent": _agents(row, viewer),
        "source": {"observer": {"display": f"fhirportal {base_url}"}},
        "entity": _entities(row, viewer),
    }


def redact_stored(body: dict, viewer: Viewer) -> dict:
    """A stored AuditEvent as a patient viewer may see it: no other patient's Patient as an entity, no
    other portal user named as an agent."""
    if not viewer.is_patient:
        return body

    def other(reference: str | None) -> bool:
        if not reference:
            return False
        target_type, target_id = parse_reference(reference)
        return target_type in ("Patient", "RelatedPerson", "Person") and target_id not in viewer.patients

    body = dict(body)
    body["entity"] = [e for e in body.get("entity", []) if not other((e.get("what") or {}).get("reference"))]
    body["agent"] = [{**a, "who": {"display": ANOTHER_USER}} if other((a.get("who") or {}).get("reference")) else a
                     for a in body.get("agent", [])]
    return body


def as_stored(row, base_url: str, viewer: Viewer) -> StoredResource:
    """An access-log row (a journal access, or the index row of a stored AuditEvent) as a resource."""
    if row.stored_pid is not None:
        content = row.content
        if viewer.is_patient:
            content = json.dumps(redact_stored(json.loads(content), viewer), separators=(",", ":"))
        return StoredResource("AuditEvent", row.fhir_id, row.version_id, clock.ensure_utc(row.last_updated),
                              False, content, "POST")
    body = render(row, base_url, viewer)
    return StoredResource("AuditEvent", body["id"], 1, clock.ensure_utc(row.recorded), False,
                          json.dumps(body, separators=(",", ":"), ensure_ascii=False), "POST")
