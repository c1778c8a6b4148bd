"""Intake forms in the portal: the practice's forms (active Questionnaires) and the ones waiting for the
patient — a form Task the practice assigned (``fhirportal/forms/tasks.py``: open, with its due date), or an
``in-progress`` QuestionnaireResponse about them (started by the patient, or put there by the practice
before a visit) —, a form rendered as HTML (no JavaScript) and the answers sent back as a
QuestionnaireResponse — every one through the FHIR API with the session's token. The server checks
the answers against the form (``fhirportal/forms/responses.py``); what it refuses is shown on the form.

Items: string, text, url, boolean, integer, decimal, date, dateTime (as a date), time, choice and
open-choice (``answerOption``; checkboxes when the item repeats), groups (nested), display text.
Attachment, reference and quantity items are shown as "ask the practice" and left unanswered.

A choice or open-choice with an ``answerValueSet`` offers the codes of the value set's expansion, asked
of the API (``ValueSet/$expand?url=…``) like everything else: radio buttons, a drop-down list when there
are many, checkboxes when the item repeats; the answer is the chosen code's Coding. When the API cannot
expand the value set (or it has too many codes to list), the item is a text input and the answer free text.
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation

from flask import Blueprint, Response, request

from .client import ApiError, FhirApi, TokenRejected
from .portal import csrf_ok, nav_values, page, see_other, signed_in_page
from .sessions import WebSession
from .summary import patient_banner
from .words import when

bp = Blueprint("web_forms", __name__, template_folder="templates")
INPUTS = {"string": "text", "url": "url", "integer": "number", "decimal": "number", "date": "date",
          "dateTime": "date", "time": "time"}
UNSUPPORTED = ("attachment", "reference", "quantity")
# The code of a form the practice assigns (a Task), as ``fhirportal/forms/tasks.py`` defines it (the web app
# is a client of the API: it imports nothing of the server's).
FORM_TASK = "https://fhirportal.dev/fhir/CodeSystem/form-task|form-assignment"
OPEN_TASK = "draft,requested,received,accepted,ready,in-progress,on-hold"
CHOICES = ("choice", "open-choice")
MAX_CODES = 200  # a value set with more codes is a text input, not a list to scroll through
RADIO_AT_MOST = 8  # more options than this (and one answer): a drop-down list
FREE_TEXT = "_free_text"  # marks a value-set item whose codes could not be listed (never sent)


class Unanswerable(ValueError):
    """What the patient typed cannot be an answer (a number that is not one)."""


def _option_label(option: dict) -> str:
    for key, value in option.items():
        if key == "valueCoding":
            return value.get("display") or value.get("code") or "?"
        if key.startswith("value"):
            return str(value.get("reference") if isinstance(value, dict) else value)
    return "?"


def _expansion(api: FhirApi, url: str) -> list[dict] | None:
    """The Codings of the value set ``url`` as the API expands them; None when it cannot (or they are too many)."""
    try:
        expanded = api.get("ValueSet/$expand", [("url", url), ("count", str(MAX_CODES))])
    except TokenRejected:
        raise
    except ApiError:
        return None
    expansion = (expanded or {}).get("expansion") or {}
    codes = [{k: c[k] for k in ("system", "code", "display") if c.get(k)} for c in expansion.get("contains") or []
             if isinstance(c, dict) and c.get("code") and not c.get("abstract")]
    if not codes or (isinstance(expansion.get("total"), int) and expansion["total"] > len(codes)):
        return None
    return codes


def with_value_sets(api: FhirApi, form: dict) -> dict:
    """The form with the codes of each item's ``answerValueSet`` as its ``answerOption``s (a copy; each
    value set expanded once), or the item marked free text when the codes cannot be listed."""
    form = copy.deepcopy(form)
    expanded: dict[str, list[dict] | None] = {}

    def walk(items) -> None:
        for item in items or []:
            if not isinstance(item, dict):
                continue
            url = item.get("answerValueSet")
            if item.get("type") in CHOICES and isinstance(url, str) and url and not item.get("answerOption"):
                if url not in expanded:
                    expanded[url] = _expansion(api, url)
                if expanded[url]:
                    item["answerOption"] = [{"valueCoding": coding} for coding in expanded[url]]
                else:
                    item[FREE_TEXT] = True
            walk(item.get("item"))

    walk(form.get("item"))
    return form


def _prepare(items: list, prefilled: dict[str, list]) -> list[dict]:
    """The form's items for the template: input kind, options with labels, what is filled in already."""
    shown = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        options = [{"index": n, "label": _option_label(o), "code": (o.get("valueCoding") or {}).get("code")}
                   for n, o in enumerate(item.get("answerOption") or [])]
        shown.append({"link": str(item.get("linkId")), "text": item.get("text") or str(item.get("linkId")),
                      "type": kind, "input": INPUTS.get(kind, "text"), "required": bool(item.get("required")),
                      "repeats": bool(item.get("repeats")), "max_length": item.get("maxLength"),
                      "options": options, "select": len(options) > RADIO_AT_MOST and not item.get("repeats"),
                      "conditional": bool(item.get("enableWhen")),
                      "unsupported": kind in UNSUPPORTED, "given": prefilled.get(str(item.get("linkId")), []),
                      "children": _prepare(item.get("item") or [], prefilled)})
    return shown


def _filled(response: dict | None) -> dict[str, list]:
    """linkId → the form values of a saved response's answers (to fill the form in again)."""
    found: dict[str, list] = {}

    def walk(items):
        for item in items or []:
            for answer in item.get("answer") or []:
                for key, value in answer.items():
                    if key.startswith("value"):
                        found.setdefault(str(item.get("linkId")), []).append(
                            value.get("code") if isinstance(value, dict) else str(value).lower()
                            if isinstance(value, bool) else str(value))
            walk(item.get("item"))

    walk((response or {}).get("item"))
    return found


def _answer(item: dict, raw: str) -> dict | None:
    kind = item.get("type")
    raw = raw.strip()
    if not raw:
        return None
    if kind in ("choice", "open-choice"):
        options = item.get("answerOption") or []
        if raw.isdigit() and int(raw) < len(options):
            return {k: v for k, v in options[int(raw)].items() if k.startswith("value")}
        if kind == "open-choice" or item.get(FREE_TEXT):
            return {"valueString": raw}
        raise Unanswerable(f"Choose one of the answers to '{item.get('text') or item.get('linkId')}'.")
    try:
        if kind == "integer":
            return {"valueInteger": int(raw)}
        if kind == "decimal":
            return {"valueDecimal": float(Decimal(raw))}
    except (ValueError, InvalidOperation) as exc:
        raise Unanswerable(f"'{item.get('text') or item.get('linkId')}' needs a number.") from exc
    if kind == "boolean":
        return {"valueBoolean": raw == "true"}
    if kind == "time":
        return {"valueTime": raw if raw.count(":") == 2 else f"{raw}:00"}
    key = {"date": "valueDate", "dateTime": "valueDateTime", "url": "valueUri"}.get(kind, "valueString")
    return {key: raw}


def _answered(items: list, form) -> list[dict]:
    """The response's items from the posted form (a group when something inside it is answered)."""
    built = []
    for item in items or []:
        link, kind = str(item.get("linkId")), item.get("type")
        if kind == "group":
            inner = _answered(item.get("item") or [], form)
            if inner:
                built.append({"linkId": link, "item": inner})
            continue
        if kind == "display" or kind in UNSUPPORTED:
            continue
        raws = form.getlist(f"item:{link}") + ([form.get(f"other:{link}", "")] if kind == "open-choice" else [])
        answers = [a for a in (_answer(item, raw) for raw in raws) if a is not None]
        if answers:
            built.append({"linkId": link, "answer": answers})
    return built


def _task_form(task: dict) -> str:
    """The form an assigned Task names: ``Questionnaire/{id}`` (its focus or an input) or a canonical."""
    focus = task.get("focus") or {}
    if str(focus.get("reference") or "").startswith("Questionnaire/"):
        return focus["reference"]
    for given in task.get("input") or []:
        if given.get("valueCanonical"):
            return given["valueCanonical"]
        if str((given.get("valueReference") or {}).get("reference") or "").startswith("Questionnaire/"):
            return given["valueReference"]["reference"]
    return ""


def _forms_page(session: WebSession, api: FhirApi) -> Response:
    responses = api.search("QuestionnaireResponse", [("subject", f"Patient/{session.patient}"),
                                                     ("_sort", "-authored"), ("_count", "100")])
    tasks = api.search("Task", [("patient", f"Patient/{session.patient}"), ("code", FORM_TASK),
                                ("status", OPEN_TASK), ("_count", "100")])
    forms = {f["id"]: f for f in api.search("Questionnaire", [("status", "active"), ("_count", "100")])}
    by_url = {f.get("url"): f for f in forms.values() if f.get("url")}

    def form_named(named: str, *, assigned: bool = False) -> dict | None:
        """A form by what names it; one the practice assigned by id is read even if no longer active."""
        if named.startswith("Questionnaire/"):
            fhir_id = named.split("/", 1)[1]
            return forms.get(fhir_id) or (api.read("Questionnaire", fhir_id) if assigned else None)
        return by_url.get(named.split("|", 1)[0])

    waiting, done = [], []
    started: dict[str, dict] = {}  # form id -> the newest in-progress response to it
    for response in responses:
        form = form_named(str(response.get("questionnaire") or ""))
        if form is None:
            continue
        row = {"form": form["id"], "response": response["id"], "title": form.get("title") or form.get("name"),
               "when": when(response.get("authored"))}
        if response.get("status") == "in-progress":
            waiting.append(row)
            started.setdefault(form["id"], row)
        else:
            done.append(row)
    assigned = []
    for task in sorted(tasks, key=lambda t: (((t.get("restriction") or {}).get("period") or {}).get("end") or "9999",
                                             str(t.get("authoredOn") or ""))):
        form = form_named(_task_form(task), assigned=True)
        if form is None:
            continue
        draft = started.get(form["id"])
        if draft is not None and draft in waiting:
            waiting.remove(draft)  # listed once: as the assigned form, opening the answers saved so far
        due = ((task.get("restriction") or {}).get("period") or {}).get("end")
        assigned.append({"form": form["id"], "task": task["id"], "response": draft["response"] if draft else "",
                         "title": form.get("title") or form.get("name") or form["id"],
                         "due": when(due) if due else "", "when": when(task.get("authoredOn"))
                         if task.get("authoredOn") else ""})
    return page("web/forms.html", assigned=assigned, waiting=waiting, done=done,
                forms=[{"id": f["id"], "title": f.get("title") or f.get("name") or f["id"],
                        "description": f.get("description")} for f in forms.values()],
                sent=request.args.get("sent") == "1",
                **nav_values(session, "forms", patient_banner(api, session.patient)))


@bp.route("/portal/forms", methods=["GET"])
def forms_list():
    return signed_in_page(_forms_page)


def _fill(session: WebSession, api: FhirApi, form: dict, response: dict | None, status: int = 200,
          errors: list[str] | None = None, prefilled: dict | None = None) -> Response:
    values = prefilled if prefilled is not None else _filled(response)
    return page("web/form.html", status, form=form, title=form.get("title") or form.get("name") or form["id"],
                items=_prepare(form.get("item") or [], values), response_id=(response or {}).get("id", ""),
                errors=errors or [], **nav_values(session, "forms", patient_banner(api, session.patient)))


@bp.route("/portal/forms/<form_id>", methods=["GET", "POST"])
def fill(form_id: str):
    def render(session: WebSession, api: FhirApi) -> Response:
        form = api.read("Questionnaire", form_id)
        form = with_value_sets(api, form) if form else None
        response_id = request.values.get("response", "")
        response = api.read("QuestionnaireResponse", response_id) if response_id else None
        if not form or (response_id and not response):
            return page("web/problem.html", 404, title="Form not found", message="This form is not in your portal.",
                        **nav_values(session, "forms", patient_banner(api, session.patient)))
        if request.method == "GET":
            return _fill(session, api, form, response)
        if not csrf_ok(session):
            return page("web/problem.html", 400, title="Please try again",
                        message="The form expired. Go back, reload the page and fill it in again.")
        posted = {key.split(":", 1)[1]: request.form.getlist(key) for key in request.form if key.startswith("item:")}
        try:
            items = _answered(form.get("item") or [], request.form)
        except Unanswerable as problem:
            return _fill(session, api, form, response, 400, [str(problem)], posted)
        body = {"resourceType": "QuestionnaireResponse", "status": "completed",
                "questionnaire": form["url"] if form.get("url") else f"Questionnaire/{form['id']}",
                "subject": {"reference": f"Patient/{session.patient}"}, "authored": _now(), "item": items}
        try:
            if response is not None:
                api.update({**body, "id": response["id"]})
            else:
                api.create(body)
        except ApiError as refused:
            if refused.status not in (403, 422):
                raise
            return _fill(session, api, form, response, 422, [refused.message], posted)
        return see_other("/portal/forms?sent=1")

    return signed_in_page(render)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
