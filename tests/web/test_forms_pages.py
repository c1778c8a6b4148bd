"""The portal's intake-form pages with the Flask test client: the practice's forms and the one waiting
for the patient, a form filled in and sent (a QuestionnaireResponse through the API), answers the server
refuses shown on the form, a form with a number that is not one, a patient's token that may not send a
form about someone else."""

from __future__ import annotations

import re

from tests.forms.test_responses import INTAKE
from tests.web.flows import follow, form, sign_in, text


def _responses(fhir) -> list[dict]:
    return [e["resource"] for e in fhir.get("QuestionnaireResponse?_sort=_lastUpdated").get_json().get("entry", [])]


def _answers(fields: dict) -> dict:
    return {**fields, "item:name": "Maria", "item:smoker": "0", "item:packs": "1", "item:allergies": ["1"],
            "other:allergies": "Bee stings", "item:visit.reason": "Check-up", "item:visit.date": "2027-01-15"}


def test_filling_in_a_form_waiting_for_the_patient(client, practice, fhir):
    assert fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"}).status_code == 201
    waiting = fhir.create({"resourceType": "QuestionnaireResponse", "status": "in-progress",
                           "questionnaire": INTAKE["url"], "subject": {"reference": "Patient/p1"},
                           "author": {"reference": "Practitioner/dr"}})
    sign_in(client, "maria")
    listed = client.get("/portal/forms")
    assert listed.status_code == 200 and "New patient intake" in text(listed)
    assert f"/portal/forms/intake?response={waiting['id']}" in listed.get_data(as_text=True)

    page = client.get(f"/portal/forms/intake?response={waiting['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Do you smoke?" in html and 'type="radio" name="item:smoker"' in html
    assert 'type="checkbox" name="item:allergies"' in html and 'type="date"' in html and "Thank you" in html
    action, fields = form(html, "<h1>")
    assert fields["response"] == waiting["id"]
    sent = client.post(action, data=_answers(fields))
    assert sent.status_code == 303, text(sent)
    assert "your answers were sent" in text(follow(client, sent))
    [stored] = _responses(fhir)
    assert stored["id"] == waiting["id"] and stored["status"] == "completed"
    by_link = {item["linkId"]: item for item in stored["item"]}
    assert by_link["smoker"]["answer"][0]["valueCoding"]["code"] == "LA33-6"
    assert by_link["packs"]["answer"] == [{"valueInteger": 1}]
    assert by_link["allergies"]["answer"] == [{"valueString": "Latex"}, {"valueString": "Bee stings"}]
    assert by_link["visit"]["item"][1]["answer"] == [{"valueDate": "2027-01-15"}]
    assert stored["subject"] == {"reference": "Patient/p1"}
    assert "New patient intake" in text(client.get("/portal/forms")).split("Sent")[-1]


def test_answers_the_server_refuses_are_shown_on_the_form(client, practice, fhir):
    fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"})
    sign_in(client, "maria")
    action, fields = form(client.get("/portal/forms/intake").get_data(as_text=True), "<h1>")
    answers = {k: v for k, v in _answers(fields).items() if k != "item:name"}  # a required item left out
    refused = client.post(action, data=answers)
    assert refused.status_code == 422 and "Please check your answers" in text(refused)
    assert "(Preferred name) is required" in text(refused) and 'value="1"' in refused.get_data(as_text=True)
    not_a_number = client.post(action, data={**_answers(fields), "item:packs": "one"})
    assert not_a_number.status_code == 400 and "needs a number" in text(not_a_number)
    expired = client.post(action, data={**_answers(fields), "csrf_token": "nope"})
    assert expired.status_code == 400
    assert _responses(fhir) == []


def test_a_patient_token_sends_forms_only_about_its_patient(client, practice, fhir, ctx):
    from tests.support import Fhir

    fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"})
    token = ctx.tokens.mint(client_id="app", scope="patient/QuestionnaireResponse.crs", context={"patient": "p1"})
    patient_api = Fhir(client, token)
    body = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire": INTAKE["url"],
            "subject": {"reference": "Patient/p2"}, "author": {"reference": "Patient/p1"}}
    refused = patient_api.post("QuestionnaireResponse", body)
    assert refused.status_code == 403 and refused.get_json()["issue"][0]["expression"] == [
        "QuestionnaireResponse.subject"]
    as_other = patient_api.post("QuestionnaireResponse", {**body, "subject": {"reference": "Patient/p1"},
                                                          "author": {"reference": "Practitioner/dr"}})
    assert as_other.status_code == 403
    assert patient_api.post("QuestionnaireResponse", {**body, "subject": {"reference": "Patient/p1"}}
                            ).status_code == 201


def test_a_form_assigned_as_a_task_is_listed_with_its_due_date_and_completed_by_sending_it(client, practice, fhir):
    from fhirportal.forms.tasks import FORM_TASK_CODE, FORM_TASK_TOKEN
    from fhirportal.web.forms import FORM_TASK

    assert FORM_TASK == FORM_TASK_TOKEN  # the web app's copy of the server's code
    fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"})
    fhir.put("Questionnaire/history", {**INTAKE, "id": "history", "url": "https://practice.example.org/forms/history",
                                       "title": "Family history", "status": "retired"})

    def assign(patient_id: str, form: str, due: str) -> dict:
        return fhir.create({"resourceType": "Task", "status": "requested", "intent": "order",
                            "code": {"coding": [FORM_TASK_CODE]}, "for": {"reference": f"Patient/{patient_id}"},
                            "focus": {"reference": form}, "authoredOn": "2026-12-01T09:00:00Z",
                            "restriction": {"period": {"end": due}}})

    task = assign("p1", "Questionnaire/intake", "2027-01-14T09:00:00Z")
    assign("p1", "Questionnaire/history", "2027-01-20T09:00:00Z")  # no longer active: still shown, it was asked for
    assign("p2", "Questionnaire/intake", "2027-01-10T09:00:00Z")  # someone else's
    sign_in(client, "maria")
    listed = client.get("/portal/forms")
    html, words = listed.get_data(as_text=True), text(listed)
    assert listed.status_code == 200
    assigned = html.split('id="assigned"')[1].split("</ul>")[0]
    assert assigned.count("<li>") == 2  # hers only, the one due first first
    assert assigned.index("/portal/forms/intake") < assigned.index("/portal/forms/history")
    assert "due January 14, 2027" in words and "due January 10, 2027" not in words
    assert "No form is waiting for you" not in words

    action, fields = form(client.get("/portal/forms/intake").get_data(as_text=True), "<h1>")
    sent = client.post(action, data=_answers(fields))
    assert sent.status_code == 303, text(sent)
    [response] = _responses(fhir)
    done = fhir.get(f"Task/{task['id']}").get_json()
    assert done["status"] == "completed"
    assert done["output"][0]["valueReference"] == {"reference": f"QuestionnaireResponse/{response['id']}"}
    after = client.get("/portal/forms").get_data(as_text=True).split('id="assigned"')[1].split("</ul>")[0]
    assert "/portal/forms/intake" not in after and "/portal/forms/history" in after


def test_an_assigned_form_the_patient_started_opens_with_its_answers(client, practice, fhir):
    from fhirportal.forms.tasks import FORM_TASK_CODE

    fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"})
    fhir.create({"resourceType": "Task", "status": "ready", "intent": "order", "code": {"coding": [FORM_TASK_CODE]},
                 "for": {"reference": "Patient/p1"}, "input": [{"type": {"text": "questionnaire"},
                                                                "valueCanonical": INTAKE["url"]}]})
    draft = fhir.create({"resourceType": "QuestionnaireResponse", "status": "in-progress",
                         "questionnaire": INTAKE["url"], "subject": {"reference": "Patient/p1"}})
    sign_in(client, "maria")
    html = client.get("/portal/forms").get_data(as_text=True)
    assert html.count(f"/portal/forms/intake?response={draft['id']}") == 1  # listed once, as the assigned form


VALUE_SETS = {
    "resourceType": "Questionnaire", "id": "about-you", "url": "https://practice.example.org/forms/about-you",
    "status": "active", "title": "About you",
    "item": [
        {"linkId": "gender", "text": "Gender", "type": "choice", "required": True,
         "answerValueSet": "http://hl7.org/fhir/ValueSet/administrative-gender"},
        {"linkId": "language", "text": "Preferred language", "type": "choice",
         "answerValueSet": "http://hl7.org/fhir/ValueSet/languages"},
        {"linkId": "contact", "text": "How to reach you", "type": "open-choice", "repeats": True,
         "answerValueSet": "http://hl7.org/fhir/ValueSet/contact-point-system"},
        {"linkId": "condition", "text": "Main health problem", "type": "choice",
         "answerValueSet": "http://hl7.org/fhir/ValueSet/condition-code"},  # SNOMED CT: not expandable here
    ]}


def test_answer_value_sets_are_listed_from_the_expansion_and_stored_as_codings(client, practice, fhir):
    assert fhir.put("Questionnaire/about-you", VALUE_SETS).status_code == 201
    sign_in(client, "maria")
    page = client.get("/portal/forms/about-you")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count('type="radio" name="item:gender"') == 4 and "> Female</label>" in html
    assert '<select id="item-language" name="item:language">' in html and ">German (Austria)</option>" in html
    assert html.count('type="checkbox" name="item:contact"') == 7 and 'name="other:contact"' in html
    assert '<input type="text" id="item-condition" name="item:condition"' in html  # the fallback
    action, fields = form(html, "<h1>")
    labels = {"gender": "Female", "language": "German (Austria)", "contact": "Email"}
    chosen = {}
    for link, label in labels.items():
        [index] = re.findall(rf'name="item:{link}" value="(\d+)"> {re.escape(label)}</label>', html) or \
            re.findall(rf'<option value="(\d+)">{re.escape(label)}</option>', html)
        chosen[f"item:{link}"] = [index] if link == "contact" else index
    sent = client.post(action, data={**fields, **chosen, "other:contact": "Carrier pigeon",
                                     "item:condition": "Asthma"})
    assert sent.status_code == 303, text(sent)
    [stored] = _responses(fhir)
    by_link = {item["linkId"]: item["answer"] for item in stored["item"]}
    assert by_link["gender"] == [{"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                                  "code": "female", "display": "Female"}}]
    assert by_link["language"][0]["valueCoding"]["system"] == "urn:ietf:bcp:47"
    assert by_link["language"][0]["valueCoding"]["code"] == "de-AT"
    assert by_link["contact"] == [{"valueCoding": {"system": "http://hl7.org/fhir/contact-point-system",
                                                   "code": "email", "display": "Email"}},
                                  {"valueString": "Carrier pigeon"}]
    assert by_link["condition"] == [{"valueString": "Asthma"}]
    again = client.get(f"/portal/forms/about-you?response={stored['id']}").get_data(as_text=True)
    assert re.search(r'name="item:gender" value="\d+" checked> Female', again)
