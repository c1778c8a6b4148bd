"""Forms assigned as Tasks: the practice (staff or the EHR) asks a patient to fill in a form, e.g. before an
appointment, with a ``Task``:

- ``code`` = ``FORM_TASK_CODE`` (``https://fhirportal.dev/fhir/CodeSystem/form-task|form-assignment``),
- ``for`` = the patient, ``status`` ``requested`` or ``ready``, ``intent`` ``order``,
- the form: ``focus`` = ``Questionnaire/{id}``, or an ``input`` whose ``valueCanonical`` is the form's
  canonical (``url`` or ``url|version``; ``valueReference`` also works),
- optionally ``restriction.period.end`` (due), ``basedOn`` / ``encounter`` (the Appointment or visit).

A patient's (or caregiver's) token sees the form Tasks ``for`` its patient and no other Task (the portal
invitation's Tasks stay the practice's: ``fhir/authorization.py``) and never writes a Task (403). When a
``QuestionnaireResponse`` about the patient becomes ``completed`` (or ``amended``: created so, or updated
from an unfinished version), by anyone, the server completes the patient's open form Task for that form in
the same transaction (``complete``): ``status`` ``completed``, ``output`` the response, ``lastModified`` now.
With several open Tasks for one form, the one due first (then the oldest) is completed. The practice finds
what came back with ``Task?code=…|form-assignment&status=completed&patient=…``.
"""

from __future__ import annotations

from fhirportal.errors import FhirError
from fhirportal.fhir.authorization import FORM_TASK_SYSTEM
from fhirportal.fhir.search_params import parse_criteria
from fhirportal.store import clock
from fhirportal.store.records import StoredResource

from .questionnaires import QUESTIONNAIRE, find

TASK = "Task"
FORM_TASK_CODE = {"system": FORM_TASK_SYSTEM, "code": "form-assignment", "display": "Form to fill in"}
FORM_TASK_TOKEN = f"{FORM_TASK_SYSTEM}|form-assignment"
OPEN_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
FINISHED = ("completed", "amended")


def is_form_task(body: dict) -> bool:
    code = body.get("code") if isinstance(body.get("code"), dict) else {}
    return any(isinstance(c, dict) and c.get("system") == FORM_TASK_SYSTEM and c.get("code") == "form-assignment"
               for c in code.get("coding") or [])


def form_named(body: dict) -> str:
    """The form a form Task asks for, as written: ``Questionnaire/{id}`` or a canonical ('' if none)."""
    focus = body.get("focus")
    if isinstance(focus, dict) and str(focus.get("reference") or "").startswith(f"{QUESTIONNAIRE}/"):
        return focus["reference"]
    for given in body.get("input") or []:
        if not isinstance(given, dict):
            continue
        if isinstance(given.get("valueCanonical"), str) and given["valueCanonical"]:
            return given["valueCanonical"]
        reference = given.get("valueReference")
        if isinstance(reference, dict) and str(reference.get("reference") or "").startswith(f"{QUESTIONNAIRE}/"):
            return reference["reference"]
    return ""


def _identity(ctx, conn, named: str) -> str:
    """A comparable name of a form: ``Questionnaire/{id}`` of the stored form, else the canonical URL."""
    form = find(ctx, conn, named) if named else None
    if form is not None and form.get("id"):
        return f"{QUESTIONNAIRE}/{form['id']}"
    return named.split("|", 1)[0]


def _was_finished(ctx, conn, response: StoredResource) -> bool:
    try:
        before = ctx.repository.vread(conn, response.resource_type, response.fhir_id, response.version_id - 1)
    except FhirError:
        return False
    return before.body.get("status") in FINISHED


def complete(ctx, conn, response: StoredResource) -> StoredResource | None:
    """The server's rule, in the response's transaction: a finished response completes the patient's open
    form Task for that form (its new version, or None)."""
    body = response.body
    if body.get("status") not in FINISHED:
        return None
    subject = body.get("subject")
    patient = subject.get("reference", "") if isinstance(subject, dict) else ""
    if not patient.startswith("Patient/") or not isinstance(body.get("questionnaire"), str):
        return None
    if response.version_id > 1 and _was_finished(ctx, conn, response):
        return None  # finished before: an amendment answers no new Task
    try:
        criteria, _ = parse_criteria(ctx.search_parameters, TASK, [
            ("code", FORM_TASK_TOKEN), ("patient", patient), ("status", ",".join(OPEN_STATUSES))], strict=True)
        ids = ctx.repository.search_ids(conn, TASK, criteria, limit=100)
    except FhirError:
        return None
    if not ids:
        return None
    wanted = _identity(ctx, conn, body["questionnaire"])
    candidates = []
    for fhir_id in ids:
        task = ctx.repository.read(conn, TASK, fhir_id).body
        if is_form_task(task) and _identity(ctx, conn, form_named(task)) == wanted:
            due = ((task.get("restriction") or {}).get("period") or {}).get("end") or "9999"
            candidates.append((due, str(task.get("authoredOn") or ""), fhir_id, task))
    if not candidates:
        return None
    _, _, fhir_id, task = min(candidates, key=lambda c: c[:3])
    done = {**task, "status": "completed", "lastModified": clock.as_instant(clock.now()),
            "output": [*(task.get("output") or []),
                       {"type": {"text": "questionnaire-response"},
                        "valueReference": {"reference": response.reference}}]}
    record, _ = ctx.repository.update(conn, TASK, fhir_id, done)
    return record
