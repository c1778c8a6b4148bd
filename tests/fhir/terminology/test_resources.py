"""CodeSystem, ValueSet and ConceptMap read and search over HTTP: no token, read-only, from memory."""

from __future__ import annotations

import pytest

from tests.support import Fhir


def search(anonymous: Fhir, query: str) -> dict:
    response = anonymous.get(query)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["type"] == "searchset"
    return response.get_json()


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@pytest.mark.parametrize(("path", "url"), [
    ("ValueSet/administrative-gender", "http://hl7.org/fhir/ValueSet/administrative-gender"),
    ("CodeSystem/v3-ActCode", "http://terminology.hl7.org/CodeSystem/v3-ActCode"),
    ("ConceptMap/cm-administrative-gender-v2", "http://hl7.org/fhir/ConceptMap/cm-administrative-gender-v2"),
    ("ValueSet/us-core-vital-signs", "http://hl7.org/fhir/us/core/ValueSet/us-core-vital-signs"),
    ("CodeSystem/condition-category", "http://terminology.hl7.org/CodeSystem/condition-category"),
    ("CodeSystem/us-core-condition-category", "http://hl7.org/fhir/us/core/CodeSystem/condition-category"),
])
def test_read_without_a_token(anonymous, path, url):
    response = anonymous.get(path)
    assert response.status_code == 200
    resource = response.get_json()
    assert resource["url"] == url and "text" not in resource


def test_a_code_system_keeps_its_hierarchy(anonymous):
    act_code = anonymous.get("CodeSystem/v3-ActCode").get_json()
    top = {c["code"]: c for c in act_code["concept"]}
    assert "_ActEncounterCode" in {c["code"] for c in top["_ActCareProvisionCode"]["concept"]}


def test_summary_leaves_the_concepts_out(anonymous):
    resource = anonymous.get("CodeSystem/v3-ActCode?_summary=true").get_json()
    assert "concept" not in resource and resource["url"].endswith("v3-ActCode")
    assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])
    assert anonymous.get("CodeSystem/v3-ActCode?_summary=nonsense").status_code == 400


def test_unknown_ids_are_404(anonymous):
    for path in ("ValueSet/nope", "CodeSystem/nope", "ConceptMap/nope"):
        response = anonymous.get(path)
        assert response.status_code == 404 and response.get_json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "ValueSet"), ("PUT", "ValueSet/administrative-gender"), ("DELETE", "CodeSystem/v3-ActCode"),
    ("PATCH", "ConceptMap/cm-administrative-gender-v2"), ("PUT", "CodeSystem"), ("DELETE", "ValueSet"),
    ("POST", "ValueSet/administrative-gender"),
])
def test_writes_are_405_saying_where_they_come_from(anonymous, auth_headers, method, path):
    for headers in (None, auth_headers):  # with a token or without
        response = anonymous._send(method, path, {"resourceType": path.split("/")[0]}, headers,
                                   "application/fhir+json", {})
        assert response.status_code == 405, response.get_json()
        issue = response.get_json()["issue"][0]
        assert issue["code"] == "not-supported" and "packages" in issue["diagnostics"]
        assert response.headers["Allow"] == "GET"


def test_search_by_url_name_status_version_and_id(anonymous):
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert ids(search(anonymous, f"ValueSet?url={gender}")) == ["administrative-gender"]
    assert ids(search(anonymous, "ValueSet?_id=administrative-gender,us-core-vital-signs")) == [
        "administrative-gender", "us-core-vital-signs"]
    assert ids(search(anonymous, "ValueSet?name=AdministrativeGend")) == ["administrative-gender"]
    assert ids(search(anonymous, "ValueSet?name:exact=AdministrativeGender")) == ["administrative-gender"]
    assert ids(search(anonymous, "ValueSet?name:exact=administrativegender")) == []
    us_core = search(anonymous, "ValueSet?url:below=http://hl7.org/fhir/us/core/&_count=100")
    assert us_core["total"] == 36 and all(e["resource"]["url"].startswith("http://hl7.org/fhir/us/core/")
                                          for e in us_core["entry"])
    assert search(anonymous, "ValueSet?url:below=http://hl7.org/fhir/us/core/&version=6.1.0")["total"] == 36
    assert search(anonymous, "ValueSet?url:below=http://hl7.org/fhir/us/core/&version=4.0.1")["total"] == 0
    drafts = search(anonymous, "CodeSystem?status=draft&_count=1000")
    assert drafts["total"] > 0 and all(e["resource"]["status"] == "draft" for e in drafts["entry"])
    not_drafts = search(anonymous, "CodeSystem?status:not=draft&_summary=count")
    assert drafts["total"] + not_drafts["total"] == search(anonymous, "CodeSystem?_summary=count")["total"]
    maps = search(anonymous, "ConceptMap?name:contains=gender")
    assert set(ids(maps)) >= {"cm-administrative-gender-v2", "cm-administrative-gender-v3"}


def test_search_pages_with_next_links(anonymous):
    first = search(anonymous, "ValueSet?url:below=http://hl7.org/fhir/us/core/&_count=20&_summary=true")
    assert len(first["entry"]) == 20 and first["total"] == 36
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = search(anonymous, next_url.replace("http://localhost", ""))
    assert len(second["entry"]) == 16 and not any(link["relation"] == "next" for link in second["link"])
    assert not set(ids(first)) & set(ids(second))


def test_unknown_parameters_are_refused_or_ignored_when_lenient(anonymous):
    strict = anonymous.get("ValueSet?_id=administrative-gender&publisher=HL7")
    assert strict.status_code == 400 and strict.get_json()["issue"][0]["expression"] == ["publisher"]
    lenient = anonymous.get("ValueSet?_id=administrative-gender&publisher=HL7", headers={"Prefer": "handling=lenient"})
    assert ids(lenient.get_json()) == ["administrative-gender"]
    assert "publisher" not in lenient.get_json()["link"][0]["url"]
    assert anonymous.get("ValueSet?_cursor=abc").status_code == 400
    assert anonymous.get("ValueSet?_count=5000").status_code == 400


def test_post_search(anonymous):
    response = anonymous.post("CodeSystem/_search", data={"url": "http://hl7.org/fhir/administrative-gender"},
                              content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and ids(response.get_json()) == ["administrative-gender"]


def test_history_of_terminology_is_not_an_endpoint(anonymous):
    assert anonymous.get("ValueSet/administrative-gender/_history").status_code == 404


def test_the_capability_statement_lists_them_with_their_operations(anonymous):
    statement = anonymous.get("metadata").get_json()
    entries = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind in ("ValueSet", "CodeSystem", "ConceptMap"):
        assert [i["code"] for i in entries[kind]["interaction"]] == ["read", "search-type"]
        assert {p["name"] for p in entries[kind]["searchParam"]} == {"_id", "url", "name", "status", "version"}
    assert {(o["name"], o["definition"]) for o in entries["ValueSet"]["operation"]} == {
        ("expand", "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"),
        ("validate-code", "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code")}
    assert {o["name"] for o in entries["CodeSystem"]["operation"]} == {"validate-code", "lookup", "subsumes"}
    assert "operation" not in entries["ConceptMap"]
    for code in ("ValueSet-expand", "ValueSet-validate-code", "CodeSystem-validate-code", "CodeSystem-lookup",
                 "CodeSystem-subsumes"):
        definition = anonymous.get(f"OperationDefinition/{code}").get_json()
        assert definition["url"].endswith("/" + definition["id"])


@pytest.mark.parametrize("cursor", ["²", "-1", "1.5"])
def test_bad_cursors_are_400(anonymous, cursor):
    assert anonymous.get(f"ValueSet?_cursor={cursor}").status_code == 400
