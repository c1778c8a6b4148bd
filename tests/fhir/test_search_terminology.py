"""The token modifiers that need the terminology (``:in``, ``:not-in``, ``:above``, ``:below``): each
returns exactly the right resources, across chains and ``_has`` too, and refuses what it cannot
answer (unknown or unexpandable value sets, too many codes, bad values) with a 400 saying why."""

from __future__ import annotations

import pytest

from fhirportal.fhir.terminology.search import MAX_SEARCH_CODES
from tests.support import observation, patient

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ENCOUNTER_CODES = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
CLINICAL_RESULTS = "http://hl7.org/fhir/us/core/ValueSet/us-core-clinical-result-observation-category"
SMOKING_STATUS_STATUS = "http://hl7.org/fhir/us/core/ValueSet/us-core-observation-smoking-status-status"


def ids(fhir, query: str, **kw) -> set[str]:
    response = fhir.get(query, **kw)
    assert response.status_code == 200, response.get_json()
    return {e["resource"]["id"] for e in response.get_json().get("entry", []) if e["search"]["mode"] == "match"}


def refused(fhir, query: str, code: str) -> str:
    response = fhir.get(query)
    assert response.status_code == 400, response.get_json()
    issue = response.get_json()["issue"][0]
    assert issue["code"] == code, issue
    return issue["diagnostics"]


@pytest.fixture
def made(fhir) -> dict[str, str]:
    ids_ = {"ann": fhir.create(patient(gender="female"))["id"], "bob": fhir.create(patient(gender="male"))["id"],
            "cal": fhir.create(patient(gender="other"))["id"]}

    def encounter(name: str, who: str, system: str, code: str) -> None:
        ids_[name] = fhir.create({"resourceType": "Encounter", "status": "finished", "class": {
            "system": system, "code": code}, "subject": {"reference": f"Patient/{ids_[who]}"}})["id"]

    encounter("ambulatory", "ann", ACT, "AMB")
    encounter("inpatient", "bob", ACT, "IMP")
    encounter("acute", "bob", ACT, "ACUTE")
    encounter("non_acute", "cal", ACT, "NONAC")
    encounter("emergency", "ann", ACT, "EMER")
    encounter("elsewhere", "cal", "http://example.org/encounter-class", "IMP")  # same code, another system

    def category(code: str, system: str = CATEGORY) -> list:
        return [{"coding": [{"system": system, "code": code}]}]

    ids_["lab"] = fhir.create(observation(ids_["ann"], category=category("laboratory")))["id"]
    ids_["vitals"] = fhir.create(observation(ids_["bob"], status="entered-in-error",
                                             category=category("vital-signs")))["id"]
    ids_["social"] = fhir.create(observation(ids_["cal"], status="preliminary",
                                             category=category("social-history")))["id"]
    ids_["uncategorized"] = fhir.create(observation(ids_["cal"], status="amended", category=None))["id"]
    return ids_


def pick(made: dict[str, str], *names: str) -> set[str]:
    return {made[name] for name in names}


def test_below(fhir, made):
    assert ids(fhir, f"Encounter?class:below={ACT}|IMP") == pick(made, "inpatient", "acute", "non_acute")
    assert ids(fhir, f"Encounter?class:below={ACT}|ACUTE") == pick(made, "acute")
    assert ids(fhir, f"Encounter?class:below={ACT}|_ActEncounterCode") == pick(
        made, "ambulatory", "inpatient", "acute", "non_acute", "emergency")
    assert ids(fhir, f"Encounter?class:below={ACT}|AMB,{ACT}|EMER") == pick(made, "ambulatory", "emergency")


def test_above(fhir, made):
    assert ids(fhir, f"Encounter?class:above={ACT}|ACUTE") == pick(made, "inpatient", "acute")
    assert ids(fhir, f"Encounter?class:above={ACT}|IMP") == pick(made, "inpatient")
    assert ids(fhir, f"Encounter?class:above={ACT}|_ActEncounterCode") == set()


def test_in_and_not_in_a_value_set(fhir, made):
    acts = pick(made, "ambulatory", "inpatient", "acute", "non_acute", "emergency")
    assert ids(fhir, f"Encounter?class:in={ENCOUNTER_CODES}") == acts
    assert ids(fhir, f"Encounter?class:not-in={ENCOUNTER_CODES}") == pick(made, "elsewhere")
    assert ids(fhir, f"Observation?category:in={CLINICAL_RESULTS}") == pick(made, "lab", "vitals")
    # :not-in also finds resources without the element at all
    assert ids(fhir, f"Observation?category:not-in={CLINICAL_RESULTS}") == pick(made, "social", "uncategorized")


def test_in_on_a_code_element_indexed_without_a_system(fhir, made):
    """Observation.status and Patient.gender are codes: their value sets name the system."""
    assert ids(fhir, f"Observation?status:in={SMOKING_STATUS_STATUS}") == pick(made, "lab", "vitals")
    assert ids(fhir, f"Observation?status:not-in={SMOKING_STATUS_STATUS}") == pick(made, "social", "uncategorized")
    assert ids(fhir, "Patient?gender:in=ValueSet/administrative-gender") == pick(made, "ann", "bob", "cal")


def test_with_other_criteria_chains_and_has(fhir, made):
    assert ids(fhir, f"Encounter?class:below={ACT}|IMP&subject=Patient/{made['bob']}") == pick(
        made, "inpatient", "acute")
    assert ids(fhir, f"Patient?_has:Encounter:subject:class:below={ACT}|IMP") == pick(made, "bob", "cal")
    assert ids(fhir, f"Encounter?subject:Patient.gender:in=ValueSet/administrative-gender&class:above={ACT}|NONAC"
               ) == pick(made, "inpatient", "non_acute")
    assert ids(fhir, "Observation?subject:Patient.gender:not-in=ValueSet/administrative-gender") == set()


def test_a_criterion_in_a_post_search_and_a_system_search(fhir, made):
    response = fhir.post("Encounter/_search", data={"class:below": f"{ACT}|IMP"},
                         content_type="application/x-www-form-urlencoded")
    assert {e["resource"]["id"] for e in response.get_json()["entry"]} == pick(made, "inpatient", "acute",
                                                                                "non_acute")
    assert ids(fhir, f"?_type=Encounter&class:above={ACT}|ACUTE") == pick(made, "inpatient", "acute")


def test_unknown_value_sets_and_codes_are_400(fhir, made):
    message = refused(fhir, "Encounter?class:in=http://example.org/ValueSet/none", "not-found")
    assert "http://example.org/ValueSet/none" in message
    refused(fhir, "Encounter?class:in=ValueSet/none", "invalid")
    refused(fhir, f"Encounter?class:below={ACT}|NOPE", "not-found")
    refused(fhir, "Encounter?class:below=http://example.org/cs|IMP", "not-found")


def test_what_cannot_be_expanded_here_is_400_saying_why(fhir, made):
    message = refused(fhir, "Condition?code:in=http://hl7.org/fhir/ValueSet/condition-code", "not-supported")
    assert "SNOMED CT" in message
    assert "SNOMED CT" in refused(fhir, "Condition?code:below=http://snomed.info/sct|404684003", "not-supported")


def test_too_many_codes_is_400(fhir, made):
    message = refused(fhir, "Observation?code:in=http://hl7.org/fhir/ValueSet/c80-doc-typecodes", "too-costly")
    assert "6401 codes" in message and str(MAX_SEARCH_CODES) in message
    # criteria that are each allowed but together too many
    act_codes = "http://terminology.hl7.org/ValueSet/v3-ActCode"  # 999 selectable codes
    message = refused(fhir, f"Encounter?class:in={act_codes}&type:in={act_codes}&reason-code:in={act_codes}",
                      "too-costly")
    assert "together" in message
    assert ids(fhir, f"Encounter?class:in={act_codes}") == pick(made, "ambulatory", "inpatient", "acute",
                                                                   "non_acute", "emergency")


@pytest.mark.parametrize("value", ["IMP", f"{ACT}|", "|IMP"])
def test_hierarchy_modifiers_need_system_and_code(fhir, made, value):
    assert "system|code" in refused(fhir, f"Encounter?class:below={value}", "invalid")


def test_only_token_parameters_take_them(fhir, made):
    response = fhir.get(f"Patient?name:in={ENCOUNTER_CODES}")
    assert response.status_code == 400 and response.get_json()["issue"][0]["code"] == "not-supported"
    lenient = ids(fhir, f"Patient?name:in={ENCOUNTER_CODES}", headers={"Prefer": "handling=lenient"})
    assert lenient == pick(made, "ann", "bob", "cal")


def test_search_parameters_list_the_modifiers(fhir):
    """The SearchParameters generated from the R4 tables (US Core's are served as published)."""
    modifiers = fhir.get("SearchParameter/Encounter-special-arrangement").get_json()["modifier"]
    assert {"in", "not-in", "above", "below", "not", "text", "missing", "ofType"} == set(modifiers)
    assert fhir.get("SearchParameter/Account-name").get_json()["modifier"] == ["contains", "exact", "missing"]
