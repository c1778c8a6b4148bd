"""Intake forms: a QuestionnaireResponse is checked against the Questionnaire it names — one failing case
per kind of rule, each a 422 naming the item's linkId at the response's element; a fitting response is
stored; a form from elsewhere (a canonical this server does not hold) is stored unchecked."""

from __future__ import annotations

import copy

import pytest

from fhirportal.forms.responses import issues
from tests.support import patient

URL = "https://practice.example.org/forms/intake"
YES_NO = [{"valueCoding": {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}},
          {"valueCoding": {"system": "http://loinc.org", "code": "LA32-8", "display": "No"}}]
INTAKE = {
    "resourceType": "Questionnaire", "url": URL, "version": "2", "status": "active", "title": "New patient intake",
    "item": [
        {"linkId": "name", "text": "Preferred name", "type": "string", "required": True, "maxLength": 20},
        {"linkId": "smoker", "text": "Do you smoke?", "type": "choice", "required": True, "answerOption": YES_NO},
        {"linkId": "packs", "text": "Packs a day", "type": "integer", "required": True,
         "enableWhen": [{"question": "smoker", "operator": "=", "answerCoding": YES_NO[0]["valueCoding"]}]},
        {"linkId": "allergies", "text": "Allergies", "type": "open-choice", "repeats": True,
         "answerOption": [{"valueString": "Penicillin"}, {"valueString": "Latex"}]},
        {"linkId": "visit", "text": "Your visit", "type": "group", "required": True, "item": [
            {"linkId": "visit.reason", "text": "Reason", "type": "text"},
            {"linkId": "visit.date", "text": "Preferred date", "type": "date"}]},
        {"linkId": "note", "text": "Thank you", "type": "display"},
    ]}
ANSWERED = {
    "resourceType": "QuestionnaireResponse", "questionnaire": f"{URL}|2", "status": "completed",
    "subject": {"reference": "Patient/p1"},
    "item": [
        {"linkId": "name", "answer": [{"valueString": "Jo"}]},
        {"linkId": "smoker", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA33-6"}}]},
        {"linkId": "packs", "answer": [{"valueInteger": 1}]},
        {"linkId": "allergies", "answer": [{"valueString": "Penicillin"}, {"valueString": "Bee stings"}]},
        {"linkId": "visit", "item": [{"linkId": "visit.reason", "answer": [{"valueString": "Check-up"}]}]},
    ]}


def _changed(change) -> dict:
    response = copy.deepcopy(ANSWERED)
    change(response)
    return response


def _item(response: dict, link: str) -> dict:
    return next(item for item in response["item"] if item["linkId"] == link)


CASES = {
    "unknown linkId": (lambda r: r["item"].append({"linkId": "shoe-size", "answer": [{"valueInteger": 9}]}),
                       "shoe-size", "QuestionnaireResponse.item[5]"),
    "wrong type": (lambda r: _item(r, "packs").update(answer=[{"valueString": "one"}]), "packs",
                   "QuestionnaireResponse.item[2].answer[0].valueString"),
    "not an option": (lambda r: _item(r, "smoker").update(answer=[{"valueCoding": {"code": "maybe"}}]), "smoker",
                      "QuestionnaireResponse.item[1].answer[0].valueCoding"),
    "too long": (lambda r: _item(r, "name").update(answer=[{"valueString": "J" * 21}]), "name",
                 "QuestionnaireResponse.item[0].answer[0].valueString"),
    "does not repeat": (lambda r: _item(r, "name").update(answer=[{"valueString": "a"}, {"valueString": "b"}]),
                        "name", "QuestionnaireResponse.item[0].answer"),
    "required missing": (lambda r: r["item"].pop(0), "name", "QuestionnaireResponse.item"),
    "required group empty": (lambda r: _item(r, "visit").update(item=[]), "visit", "QuestionnaireResponse.item[4]"),
    "disabled yet answered": (lambda r: _item(r, "smoker").update(
        answer=[{"valueCoding": {"system": "http://loinc.org", "code": "LA32-8"}}]), "packs",
        "QuestionnaireResponse.item[2].answer"),
    "enabled and required, missing": (lambda r: r["item"].pop(2), "packs", "QuestionnaireResponse.item"),
    "a display answered": (lambda r: r["item"].append({"linkId": "note", "answer": [{"valueString": "x"}]}), "note",
                           "QuestionnaireResponse.item[5].answer"),
    "two values": (lambda r: _item(r, "name").update(answer=[{"valueString": "a", "valueInteger": 1}]), "name",
                   "QuestionnaireResponse.item[0].answer[0]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_of_rule_names_the_item(case):
    change, link, where = CASES[case]
    found = issues(INTAKE, _changed(change))
    assert found, case
    assert any(link in issue.diagnostics and issue.expression == where for issue in found), \
        [(i.diagnostics, i.expression) for i in found]


def test_a_fitting_response_and_an_unfinished_one_have_no_issues():
    assert issues(INTAKE, ANSWERED) == []
    in_progress = _changed(lambda r: (r.update(status="in-progress"), r["item"].pop(0)))
    assert issues(INTAKE, in_progress) == []  # required items only once completed


def test_through_the_api(fhir):
    assert fhir.put("Patient/p1", patient(id="p1")).status_code == 201
    assert fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"}).status_code == 201
    assert fhir.post("QuestionnaireResponse", ANSWERED).status_code == 201
    by_id = _changed(lambda r: r.update(questionnaire="Questionnaire/intake"))
    assert fhir.post("QuestionnaireResponse", by_id).status_code == 201
    refused = fhir.post("QuestionnaireResponse", _changed(lambda r: _item(r, "packs").update(
        answer=[{"valueString": "one"}])))
    assert refused.status_code == 422
    outcome = refused.get_json()
    assert outcome["issue"][0]["expression"] == ["QuestionnaireResponse.item[2].answer[0].valueString"]
    assert "packs" in outcome["issue"][0]["diagnostics"]
    assert fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"] == 2  # nothing written
    elsewhere = _changed(lambda r: r.update(questionnaire="https://elsewhere.example.org/forms/x"))
    assert fhir.post("QuestionnaireResponse", elsewhere).status_code == 201


def test_in_a_transaction_the_issue_names_the_entry(fhir):
    fhir.put("Patient/p1", patient(id="p1"))
    fhir.put("Questionnaire/intake", {**INTAKE, "id": "intake"})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _changed(lambda r: r["item"].pop(0)), "request": {"method": "POST",
                                                                      "url": "QuestionnaireResponse"}}]}
    answer = fhir.post("/fhir", bundle)
    assert answer.status_code == 422, answer.get_json()
    [issue] = answer.get_json()["issue"]
    assert issue["expression"] == ["Bundle.entry[0].resource.item"] and "'name'" in issue["diagnostics"]


GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER_CS = "http://hl7.org/fhir/administrative-gender"
UNEXPANDABLE_VS = "http://hl7.org/fhir/ValueSet/condition-code"  # SNOMED CT: not held by this server
CODED = {
    "resourceType": "Questionnaire", "id": "coded", "url": "https://practice.example.org/forms/coded",
    "status": "active", "title": "Coded answers",
    "item": [
        {"linkId": "gender", "text": "Gender", "type": "choice", "answerValueSet": GENDER_VS},
        {"linkId": "gender-or-other", "text": "Gender (or say)", "type": "open-choice", "answerValueSet": GENDER_VS},
        {"linkId": "condition", "text": "A condition", "type": "choice", "answerValueSet": UNEXPANDABLE_VS},
        {"linkId": "unknown", "text": "Elsewhere", "type": "choice",
         "answerValueSet": "https://elsewhere.example.org/ValueSet/nothing-known"},
    ]}


def _coded(**answers) -> dict:
    return {"resourceType": "QuestionnaireResponse", "questionnaire": "Questionnaire/coded", "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "item": [{"linkId": link, "answer": [answer]} for link, answer in answers.items()]}


def test_an_answer_value_set_is_checked_against_its_expansion():
    assert issues(CODED, _coded(gender={"valueCoding": {"system": GENDER_CS, "code": "female"}},
                                **{"gender-or-other": {"valueString": "Two-spirit"}})) == []
    wrong_code = issues(CODED, _coded(gender={"valueCoding": {"system": GENDER_CS, "code": "woman"}}))
    wrong_system = issues(CODED, _coded(gender={"valueCoding": {"system": "http://loinc.org", "code": "female"}}))
    for found in (wrong_code, wrong_system):
        [issue] = found
        assert "'gender'" in issue.diagnostics and GENDER_VS in issue.diagnostics
        assert issue.expression == "QuestionnaireResponse.item[0].answer[0].valueCoding"
    [text_to_a_choice] = issues(CODED, _coded(gender={"valueString": "female"}))
    assert "'gender'" in text_to_a_choice.diagnostics
    [open_wrong] = issues(CODED, _coded(**{"gender-or-other": {"valueCoding": {"system": GENDER_CS, "code": "x"}}}))
    assert "'gender-or-other'" in open_wrong.diagnostics


def test_a_value_set_that_cannot_be_expanded_here_leaves_the_answer_unchecked():
    anything = {"valueCoding": {"system": "http://snomed.info/sct", "code": "44054006"}}
    assert issues(CODED, _coded(condition=anything, unknown={"valueCoding": {"system": "urn:x", "code": "y"}})) == []
    assert issues(CODED, _coded(condition={"valueString": "Diabetes"})) == []


def test_answer_value_sets_through_the_api(fhir):
    assert fhir.put("Patient/p1", patient(id="p1")).status_code == 201
    assert fhir.put("Questionnaire/coded", CODED).status_code == 201
    accepted = fhir.post("QuestionnaireResponse", _coded(
        gender={"valueCoding": {"system": GENDER_CS, "code": "other", "display": "Other"}},
        condition={"valueCoding": {"system": "http://snomed.info/sct", "code": "44054006"}}))
    assert accepted.status_code == 201, accepted.get_json()
    refused = fhir.post("QuestionnaireResponse", _coded(gender={"valueCoding": {"system": GENDER_CS,
                                                                                "code": "nonbinary"}}))
    assert refused.status_code == 422
    [issue] = refused.get_json()["issue"]
    assert "'gender'" in issue["diagnostics"] and issue["code"] == "code-invalid"
    assert issue["expression"] == ["QuestionnaireResponse.item[0].answer[0].valueCoding"]
