"""Conditional create (If-None-Exist), conditional update and conditional delete."""

from __future__ import annotations

from tests.support import patient

MRN = "https://fhirportal.dev/fhir/sid/mrn"


def _with_mrn(value: str, **extra) -> dict:
    return patient(identifier=[{"system": MRN, "value": value}], **extra)


def test_if_none_exist_creates_once(fhir):
    headers = {"If-None-Exist": f"identifier={MRN}|A1"}
    first = fhir.post("Patient", _with_mrn("A1"), headers=headers)
    assert first.status_code == 201
    second = fhir.post("Patient", _with_mrn("A1"), headers=headers)
    assert second.status_code == 200
    assert second.get_json()["id"] == first.get_json()["id"]
    assert fhir.get("Patient", query_string={"identifier": f"{MRN}|A1", "_total": "accurate"}).get_json()["total"] == 1


def test_if_none_exist_with_several_matches_is_412(fhir):
    fhir.create(_with_mrn("A1", gender="male"))
    fhir.create(_with_mrn("A2", gender="male"))
    response = fhir.post("Patient", _with_mrn("A3"), headers={"If-None-Exist": "gender=male"})
    assert response.status_code == 412


def test_if_none_exist_with_unknown_parameter_is_400(fhir):
    response = fhir.post("Patient", patient(), headers={"If-None-Exist": "shoe-size=9"})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["shoe-size"]


def test_conditional_update_creates_then_updates(fhir):
    query = {"identifier": f"{MRN}|B1"}
    created = fhir.put("Patient", _with_mrn("B1"), query_string=query)
    assert created.status_code == 201
    updated = fhir.put("Patient", _with_mrn("B1", gender="other"), query_string=query)
    assert updated.status_code == 200
    assert updated.get_json()["id"] == created.get_json()["id"]
    assert updated.get_json()["meta"]["versionId"] == "2"


def test_conditional_update_with_client_id_and_no_match_creates_with_that_id(fhir):
    response = fhir.put("Patient", _with_mrn("C1", id="ehr-c1"), query_string={"identifier": f"{MRN}|C1"})
    assert response.status_code == 201
    assert response.get_json()["id"] == "ehr-c1"


def test_conditional_update_id_conflict_is_400(fhir):
    fhir.create(_with_mrn("D1"))
    response = fhir.put("Patient", _with_mrn("D1", id="other"), query_string={"identifier": f"{MRN}|D1"})
    assert response.status_code == 400


def test_conditional_update_multiple_matches_is_412(fhir):
    fhir.create(_with_mrn("E1", gender="male"))
    fhir.create(_with_mrn("E2", gender="male"))
    assert fhir.put("Patient", _with_mrn("E3"), query_string={"gender": "male"}).status_code == 412


def test_conditional_update_without_criteria_is_400(fhir):
    assert fhir.put("Patient", patient()).status_code == 400


def test_conditional_delete_single_match(fhir):
    target = fhir.create(_with_mrn("F1"))
    keep = fhir.create(_with_mrn("F2"))
    response = fhir.delete("Patient", query_string={"identifier": f"{MRN}|F1"})
    assert response.status_code == 200
    assert fhir.get(f"Patient/{target['id']}").status_code == 410
    assert fhir.get(f"Patient/{keep['id']}").status_code == 200
    none = fhir.delete("Patient", query_string={"identifier": f"{MRN}|nothing"})
    assert none.status_code == 200


def test_conditional_delete_several_matches_is_412_and_deletes_nothing(fhir):
    a = fhir.create(_with_mrn("G1", gender="male"))
    b = fhir.create(_with_mrn("G2", gender="male"))
    assert fhir.delete("Patient", query_string={"gender": "male"}).status_code == 412
    assert fhir.get(f"Patient/{a['id']}").status_code == 200
    assert fhir.get(f"Patient/{b['id']}").status_code == 200


def test_conditional_delete_without_criteria_is_400(fhir):
    fhir.create(patient())
    assert fhir.delete("Patient").status_code == 400
