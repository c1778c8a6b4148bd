"""Forms assigned as Tasks: the practice assigns, the patient (or caregiver) sees only its own form Tasks (never
the portal invitation's), completing the form completes the Task in the same transaction, the patient never
writes a Task, and the practice finds what came back by searching."""

from __future__ import annotations

import copy

import pytest

from fhirportal.forms.tasks import FORM_TASK_CODE, FORM_TASK_TOKEN
from tests.forms.test_responses import ANSWERED, INTAKE, URL
from tests.support import Fhir, patient

INVITATION_CODE = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-task", "code": "portal-invitation"}


def task(patient_id: str = "p1", *, code: dict = FORM_TASK_CODE, due: str | None = None, **extra) -> dict:
    body = {"resourceType": "Task", "status": "requested", "intent": "order", "code": {"coding": [code]},
            "for": {"reference": f"Patient/{patient_id}"}, "focus": {"reference": "Questionnaire/intake"},
            "authoredOn": "2026-12-01T09:00:00Z", **extra}
    if due:
        body["restriction"] = {"period": {"end": due}}
    return body


@pytest.fixture
def setup(fhir, ctx, client):
    for patient_id in ("p1", "p2"):
        assert fhir.put(f"Patient/{patient_id}", patient(id=patient_id)).status_code == 201
    assert fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"}).status_code == 201
    tokens = {
        "p1": Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.cruds", context={"patient": "p1"})),
        "p2": Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.cruds", context={"patient": "p2"})),
        "staff": Fhir(client, ctx.tokens.mint(client_id="ehr", scope="user/*.cruds",
                                                context={"fhirUser": "Practitioner/doc"})),
    }
    return tokens


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "include"]


def test_the_patient_sees_its_own_form_tasks_only(setup):
    staff, mine, other = setup["staff"], setup["p1"], setup["p2"]
    assigned = staff.create(task(due="2026-12-10T08:00:00Z"))
    invitation = staff.create(task(code=INVITATION_CODE))
    theirs = staff.create(task("p2"))
    assert _ids(mine.get("Task").get_json()) == [assigned["id"]]
    assert mine.get(f"Task/{assigned['id']}").status_code == 200
    assert mine.get(f"Task/{invitation['id']}").status_code == 404  # the portal invitation's Task stays hidden
    assert mine.get(f"Task/{theirs['id']}").status_code == 404
    assert _ids(mine.get(f"Task?code={FORM_TASK_TOKEN}&status=requested").get_json()) == [assigned["id"]]
    assert other.get(f"Task/{assigned['id']}").status_code == 404
    assert _ids(other.get("Task").get_json()) == [theirs["id"]]


def test_completing_the_form_completes_its_task_in_the_same_transaction(setup):
    staff, mine = setup["staff"], setup["p1"]
    later = staff.create(task(due="2026-12-20T08:00:00Z"))
    first = staff.create(task(due="2026-12-10T08:00:00Z"))
    by_canonical = staff.create({**task(), "focus": {"display": "New patient intake"}, "input": [
        {"type": {"text": "questionnaire"}, "valueCanonical": f"{URL}|2"}]})
    staff.put("Questionnaire/other", {**INTAKE, "id": "other", "url": "https://practice.example.org/forms/other"})
    other_form = staff.create(task(focus={"reference": "Questionnaire/other"}))
    draft = copy.deepcopy(ANSWERED) | {"status": "in-progress"}
    assert mine.post("QuestionnaireResponse", draft).status_code == 201
    assert staff.get(f"Task/{first['id']}").get_json()["status"] == "requested"  # not finished: nothing yet
    sent = mine.post("QuestionnaireResponse", ANSWERED)
    assert sent.status_code == 201, sent.get_json()
    response_id = sent.get_json()["id"]
    done = staff.get(f"Task/{first['id']}").get_json()
    assert done["status"] == "completed"  # the one due first
    assert done["output"][0]["valueReference"] == {"reference": f"QuestionnaireResponse/{response_id}"}
    assert done["meta"]["versionId"] == "2"
    assert staff.get(f"Task/{later['id']}").get_json()["status"] == "requested"
    assert mine.post("QuestionnaireResponse", ANSWERED).status_code == 201
    assert staff.get(f"Task/{later['id']}").get_json()["status"] == "completed"
    assert mine.post("QuestionnaireResponse", ANSWERED).status_code == 201  # a canonical names the form too
    assert staff.get(f"Task/{by_canonical['id']}").get_json()["status"] == "completed"
    assert staff.get(f"Task/{other_form['id']}").get_json()["status"] == "requested"
    found = staff.get(f"Task?code={FORM_TASK_TOKEN}&status=completed&patient=Patient/p1").get_json()
    assert sorted(_ids(found)) == sorted([first["id"], later["id"], by_canonical["id"]])
    assert _ids(mine.get("Task?status=completed").get_json()) != []  # the patient sees it done too


def test_a_refused_response_leaves_the_task_open(setup):
    staff, mine = setup["staff"], setup["p1"]
    assigned = staff.create(task())
    incomplete = copy.deepcopy(ANSWERED)
    incomplete["item"].pop(0)
    assert mine.post("QuestionnaireResponse", incomplete).status_code == 422
    assert staff.get(f"Task/{assigned['id']}").get_json()["status"] == "requested"


def test_the_patient_may_not_write_a_task(setup):
    staff, mine = setup["staff"], setup["p1"]
    assigned = staff.create(task())
    current = mine.get(f"Task/{assigned['id']}").get_json()
    for status in ("completed", "cancelled"):
        answer = mine.put(f"Task/{assigned['id']}", {**current, "status": status})
        assert answer.status_code == 403
        assert answer.get_json()["resourceType"] == "OperationOutcome"
    assert mine.patch(f"Task/{assigned['id']}", [{"op": "replace", "path": "/status", "value": "cancelled"}]
                      ).status_code == 403
    assert mine.delete(f"Task/{assigned['id']}").status_code == 403
    assert mine.post("Task", task()).status_code == 403
    assert staff.get(f"Task/{assigned['id']}").get_json()["status"] == "requested"


def test_a_caregiver_sees_and_completes_the_patients_form(setup, ctx, client):
    staff = setup["staff"]
    assigned = staff.create(task())
    caregiver = Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.cruds",
                                             context={"patient": "p1", "fhirUser": "RelatedPerson/mum"}))
    assert _ids(caregiver.get("Task").get_json()) == [assigned["id"]]
    assert caregiver.post("QuestionnaireResponse", ANSWERED).status_code == 201
    assert staff.get(f"Task/{assigned['id']}").get_json()["status"] == "completed"


def test_a_draft_sent_later_completes_the_task_and_an_amendment_completes_no_other(setup):
    staff, mine = setup["staff"], setup["p1"]
    assigned = staff.create(task())
    draft = mine.create(copy.deepcopy(ANSWERED) | {"status": "in-progress"})
    assert staff.get(f"Task/{assigned['id']}").get_json()["status"] == "requested"
    sent = mine.put(f"QuestionnaireResponse/{draft['id']}", {**draft, "status": "completed"})
    assert sent.status_code == 200, sent.get_json()
    assert staff.get(f"Task/{assigned['id']}").get_json()["status"] == "completed"
    again = staff.create(task())  # the form asked for once more
    amended = mine.put(f"QuestionnaireResponse/{draft['id']}", {**sent.get_json(), "status": "amended"})
    assert amended.status_code == 200, amended.get_json()
    assert staff.get(f"Task/{again['id']}").get_json()["status"] == "requested"  # an old answer is no new one


def test_the_practice_hears_of_a_completed_form_task_through_a_subscription(setup, app):
    staff, mine = setup["staff"], setup["p1"]
    deliveries = app.extensions["subscriptions"]
    staff.create({"resourceType": "Subscription", "status": "requested", "reason": "Forms back",
                  "criteria": f"Task?code={FORM_TASK_TOKEN}&status=completed",
                  "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hooks"}})
    assigned = staff.create(task())
    assert deliveries.queue.pending() == []  # requested: not what it watches
    assert mine.post("QuestionnaireResponse", ANSWERED).status_code == 201
    [row] = deliveries.queue.pending()  # enqueued in the patient's write, with the Task's new version
    assert (row.resource_type, row.fhir_id, row.version_id) == ("Task", assigned["id"], 2)
