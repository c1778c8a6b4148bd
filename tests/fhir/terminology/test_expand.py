"""``ValueSet/$expand`` over HTTP, without a token: enumerated, whole-code-system, is-a (with an
exclusion) and imported value sets, filter/count/offset paging, and the refusals (unknown 404, content
not held 422 with the reason, bad parameters 400)."""

from __future__ import annotations

import pytest

from fhirportal.errors import TooCostly
from fhirportal.fhir.terminology import Terminology
from tests.support import Fhir

GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
ENCOUNTER_CODES = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
NARRATIVE_STATUS = "http://hl7.org/fhir/us/core/ValueSet/us-core-narrative-status"
SEXUAL_ORIENTATION = "http://hl7.org/fhir/us/core/ValueSet/us-core-sexual-orientation"
ACT_CODE = "http://terminology.hl7.org/ValueSet/v3-ActCode"


def expand(anonymous: Fhir, query: str, status: int = 200) -> dict:
    response = anonymous.get(f"ValueSet/$expand?{query}")
    assert response.status_code == status, response.get_json()
    return response.get_json()


def codes(result: dict) -> list[str]:
    return [c["code"] for c in result["expansion"].get("contains", [])]


def test_a_whole_code_system(anonymous):
    result = expand(anonymous, f"url={GENDER}")
    assert result["resourceType"] == "ValueSet" and result["url"] == GENDER
    assert result["expansion"]["total"] == 4 and result["expansion"]["offset"] == 0
    assert codes(result) == ["male", "female", "other", "unknown"]
    assert result["expansion"]["contains"][0] == {"system": "http://hl7.org/fhir/administrative-gender",
                                                  "version": "4.0.1", "code": "male", "display": "Male"}
    assert result["expansion"]["identifier"].startswith("urn:uuid:") and result["expansion"]["timestamp"]


def test_an_enumerated_value_set_takes_only_its_codes(anonymous):
    result = expand(anonymous, f"url={NARRATIVE_STATUS}")
    assert codes(result) == ["additional", "generated"]  # in the order the value set lists them
    assert result["expansion"]["contains"][0]["display"] == "additional"  # the value set's display wins


def test_an_enumerated_value_set_over_snomed_needs_no_snomed(anonymous):
    """Listed SNOMED CT codes (without displays: the value set gives none and this server holds no
    SNOMED CT) and NullFlavor ones (with their displays)."""
    result = expand(anonymous, f"url={SEXUAL_ORIENTATION}")
    by_code = {c["code"]: c for c in result["expansion"]["contains"]}
    assert result["expansion"]["total"] == 6
    assert by_code["20430005"] == {"system": "http://snomed.info/sct", "code": "20430005"}
    assert by_code["UNK"]["system"] == "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
    assert by_code["UNK"]["display"] == "Unknown"


def test_an_is_a_filter_with_an_exclusion(anonymous):
    """v3-ActEncounterCode: is-a _ActEncounterCode, the abstract grouper itself excluded; the
    hierarchy's grandchildren (IMP's ACUTE, NONAC) included."""
    result = expand(anonymous, f"url={ENCOUNTER_CODES}")
    assert sorted(codes(result)) == ["ACUTE", "AMB", "EMER", "FLD", "HH", "IMP", "NONAC", "OBSENC", "PRENC", "SS",
                                     "VR"]


def test_an_imported_value_set(anonymous):
    """US Core vital signs: six listed LOINC codes plus the FHIR observation-vitalsignresult value set."""
    result = expand(anonymous, "url=http://hl7.org/fhir/us/core/ValueSet/us-core-vital-signs")
    assert result["expansion"]["total"] == 19
    assert {"8867-4", "59408-5"} <= set(codes(result))  # heart rate (imported), SpO2 by pulse oximetry (listed)


def test_abstract_codes_are_flagged(anonymous):
    result = expand(anonymous, f"url={ACT_CODE}&count=2")
    assert result["expansion"]["contains"][0]["code"] == "_ActAccountCode"
    assert result["expansion"]["contains"][0]["abstract"] is True
    assert "abstract" not in result["expansion"]["contains"][1]


def test_filter_count_and_offset_page_through(anonymous):
    whole = expand(anonymous, f"url={ACT_CODE}")
    assert whole["expansion"]["total"] == len(codes(whole)) == 1116
    pages = [expand(anonymous, f"url={ACT_CODE}&count=500&offset={offset}") for offset in (0, 500, 1000)]
    assert [len(codes(p)) for p in pages] == [500, 500, 116]
    assert sum((codes(p) for p in pages), []) == codes(whole)
    assert pages[1]["expansion"]["offset"] == 500 and pages[1]["expansion"]["total"] == 1116
    assert {"name": "count", "valueInteger": 500} in pages[1]["expansion"]["parameter"]
    filtered = expand(anonymous, f"url={GENDER}&filter=MAL")
    assert codes(filtered) == ["male", "female"]  # "mal" is in both displays, case-insensitively
    assert {"name": "filter", "valueString": "MAL"} in filtered["expansion"]["parameter"]
    assert codes(expand(anonymous, f"url={GENDER}&filter=fem ale")) == ["female"]  # every word
    only_total = expand(anonymous, f"url={GENDER}&count=0")
    assert only_total["expansion"]["total"] == 4 and "contains" not in only_total["expansion"]
    assert codes(expand(anonymous, f"url={GENDER}&offset=10")) == []


def test_instance_level_and_post_with_parameters(anonymous):
    assert codes(expand(anonymous, "url=" + GENDER + "|4.0.1")) == ["male", "female", "other", "unknown"]
    response = anonymous.get("ValueSet/administrative-gender/$expand?count=1&offset=3")
    assert response.status_code == 200 and codes(response.get_json()) == ["unknown"]
    response = anonymous.post("ValueSet/$expand", {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": GENDER}, {"name": "count", "valueInteger": 2}]})
    assert response.status_code == 200 and codes(response.get_json()) == ["male", "female"]
    response = anonymous.post("ValueSet/administrative-gender/$expand", {"resourceType": "Parameters",
                                                                        "parameter": [{"name": "filter",
                                                                                       "valueString": "other"}]})
    assert response.status_code == 200 and codes(response.get_json()) == ["other"]


def test_unknown_value_sets_are_404(anonymous):
    outcome = expand(anonymous, "url=http://example.org/ValueSet/nothing", 404)
    assert outcome["issue"][0]["code"] == "not-found"
    assert "http://example.org/ValueSet/nothing" in outcome["issue"][0]["diagnostics"]
    assert expand(anonymous, f"url={GENDER}|9.9.9", 404)["issue"][0]["code"] == "not-found"
    assert anonymous.get("ValueSet/no-such-id/$expand").status_code == 404


@pytest.mark.parametrize(("url", "says"), [
    ("http://hl7.org/fhir/ValueSet/condition-code", "SNOMED CT"),
    ("http://hl7.org/fhir/us/core/ValueSet/us-core-laboratory-test-codes", "LOINC"),
    ("http://hl7.org/fhir/us/core/ValueSet/omb-race-category", "2.16.840.1.114222.4.11.836"),
    ("http://hl7.org/fhir/ValueSet/all-languages", "BCP 47"),
])
def test_value_sets_over_content_not_held_are_refused_with_the_reason(anonymous, url, says):
    outcome = expand(anonymous, f"url={url}", 422)
    issue = outcome["issue"][0]
    assert issue["code"] == "not-supported" and says in issue["diagnostics"], issue


@pytest.mark.parametrize("query", [
    "", f"url={GENDER}&count=-1", f"url={GENDER}&count=ten", f"url={GENDER}&count=10001", f"url={GENDER}&offset=-2",
    f"url={GENDER}&url={GENDER}", f"url={GENDER}&activeOnly=true", f"url={GENDER}&filter=",
])
def test_bad_parameters_are_400(anonymous, query):
    outcome = expand(anonymous, query, 400)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient"},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueInteger": 3}]},
    {"resourceType": "Parameters", "parameter": [{"name": "count", "valueString": "3"}, {"name": "url",
                                                                                         "valueUri": GENDER}]},
    {"resourceType": "Parameters", "parameter": "url"},
    {"resourceType": "Parameters", "parameter": [{"name": "nope", "valueString": "x"}]},
])
def test_bad_parameters_bodies_are_400(anonymous, body):
    response = anonymous.post("ValueSet/$expand", body)
    assert response.status_code == 400, response.get_json()


def test_a_different_instance_url_is_400(anonymous):
    response = anonymous.get(f"ValueSet/administrative-gender/$expand?url={ENCOUNTER_CODES}")
    assert response.status_code == 400


def test_a_larger_expansion_than_one_answer_is_too_costly():
    terminology = Terminology(max_expansion=100)
    with pytest.raises(TooCostly) as refused:
        terminology.expand(ACT_CODE)
    assert "1116 codes" in refused.value.message and "count and offset" in refused.value.message
    page = terminology.expand(ACT_CODE, count=100, offset=1000)
    assert page["expansion"]["total"] == 1116 and len(page["expansion"]["contains"]) == 100


def test_expand_over_http_says_too_costly(app, anonymous, monkeypatch):
    from fhirportal.fhir.terminology import service

    small = Terminology(max_expansion=100)
    monkeypatch.setattr("fhirportal.fhir.operations.expand.terminology", lambda: small)
    outcome = expand(anonymous, f"url={ACT_CODE}", 422)
    assert outcome["issue"][0]["code"] == "too-costly"
    assert service.terminology() is not small


@pytest.mark.parametrize("count", ["²", "１２", "1e3", "0x10", " 5", "9999999999"])
def test_counts_that_are_not_plain_integers_are_400(anonymous, count):
    expand(anonymous, f"url={GENDER}&count={count}", 400)


def test_xml_in_and_out(anonymous):
    body = ('<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="url"/><valueUri value="' + GENDER +
            '"/></parameter><parameter><name value="count"/><valueInteger value="1"/></parameter></Parameters>')
    response = anonymous.post("ValueSet/$expand", data=body, content_type="application/fhir+xml")
    assert response.status_code == 200 and codes(response.get_json()) == ["male"]
    response = anonymous.get(f"ValueSet/$expand?url={GENDER}&count=1&_format=xml")
    assert response.status_code == 200 and response.content_type.startswith("application/fhir+xml")
    assert b'<code value="male"/>' in response.data
