"""The CapabilityStatement is generated from what the server registers, and it tells the truth."""

from __future__ import annotations

import pytest
from fhirclient.models.capabilitystatement import CapabilityStatement

from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from tests.support import Fhir, patient


@pytest.fixture
def statement(fhir) -> dict:
    response = fhir.get("metadata")
    assert response.status_code == 200
    return response.get_json()


def _resources(statement) -> dict:
    return {r["type"]: r for r in statement["rest"][0]["resource"]}


def test_statement_basics(statement):
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert "application/fhir+json" in statement["format"]
    assert statement["implementation"]["url"] == "http://localhost/fhir"
    assert statement["software"]["name"] == "fhirportal"


def test_statement_has_no_empty_array_object_or_string(statement):
    """FHIR JSON forbids them (an element is left out instead), and XML cannot say them at all."""
    def empty(value, path):
        if value in ([], {}, ""):
            yield path
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from empty(item, f"{path}.{key}")
        elif isinstance(value, list):
            for n, item in enumerate(value):
                yield from empty(item, f"{path}[{n}]")

    assert list(empty(statement, "CapabilityStatement")) == []


def test_statement_parses_with_the_fhirclient_r4_models(statement):
    parsed = CapabilityStatement(statement)  # strict: raises on anything not R4
    assert parsed.fhirVersion == "4.0.1"
    assert {r.type for r in parsed.rest[0].resource} >= set(SUPPORTED_TYPES)


def test_every_supported_type_is_listed_with_its_interactions(statement):
    resources = _resources(statement)
    for resource_type in SUPPORTED_TYPES:
        entry = resources[resource_type]
        codes = {i["code"] for i in entry["interaction"]}
        if resource_type == "AuditEvent":
            assert codes == {"read", "vread", "history-instance", "history-type", "create", "search-type"}
            assert entry["conditionalDelete"] == "not-supported" and entry["updateCreate"] is False
        else:
            assert codes == {"read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                             "create", "search-type"}
            assert entry["conditionalDelete"] == "single"
        assert entry["versioning"] == "versioned-update"


def test_listed_types_are_exactly_what_the_server_serves(fhir, statement):
    for resource_type in _resources(statement):
        if resource_type in SUPPORTED_TYPES:
            assert fhir.get(resource_type).status_code == 200, resource_type
    for not_a_stored_type in ("Parameters", "OperationOutcome", "NotAType"):
        assert fhir.get(not_a_stored_type).status_code == 404


def test_every_listed_search_parameter_is_accepted_strictly(fhir, statement):
    """A parameter the statement lists must not be refused as unknown (strict handling)."""
    samples = {"token": "x", "string": "x", "date": "2024", "reference": "Patient/x", "quantity": "5",
               "number": "5", "uri": "http://x", "composite": "x$2024", "special": "x"}
    for entry in statement["rest"][0]["resource"]:
        for parameter in entry.get("searchParam", []):
            value = {"_contained": "both", "_containedType": "contained"}.get(parameter["name"],
                                                                               samples[parameter["type"]])
            response = fhir.get(entry["type"], query_string={parameter["name"]: value},
                                headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (entry["type"], parameter["name"], response.get_json())


def test_search_parameter_definitions_are_served(fhir, statement):
    observation = _resources(statement)["Observation"]
    code = next(p for p in observation["searchParam"] if p["name"] == "code")
    served = fhir.get(f"SearchParameter/{code['definition'].rsplit('/', 1)[-1]}").get_json()
    assert served["resourceType"] == "SearchParameter"
    assert served["url"] == code["definition"]
    assert "Observation" in served["base"]
    assert fhir.get("SearchParameter/nonexistent").status_code == 404


def test_operations_are_listed_served_and_routed(fhir, statement):
    observation = _resources(statement)["Observation"]
    validate = next(op for op in observation["operation"] if op["name"] == "validate")
    definition = fhir.get("OperationDefinition/Resource-validate").get_json()
    assert definition["url"] == validate["definition"]
    assert fhir.post("Patient/$validate", patient()).status_code == 200
    assert fhir.get("OperationDefinition/nonexistent").status_code == 404


def test_every_listed_include_and_revinclude_is_accepted_strictly(fhir, statement):
    for entry in statement["rest"][0]["resource"]:
        for value in entry.get("searchInclude", []):
            response = fhir.get(entry["type"], query_string={"_include": value}, headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (entry["type"], value, response.get_json())
        for value in entry.get("searchRevInclude", []):
            response = fhir.get(entry["type"], query_string={"_revinclude": value},
                                headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (entry["type"], value, response.get_json())


def test_system_interactions_listed(statement):
    codes = {i["code"] for i in statement["rest"][0]["interaction"]}
    assert codes == {"transaction", "batch", "search-system", "history-system"}


AUDIT_EVENT = {
    "resourceType": "AuditEvent",
    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
    "recorded": "2026-11-25T10:00:00Z",
    "agent": [{"requestor": True, "who": {"display": "portal"}}],
    "source": {"observer": {"display": "fhirportal"}},
}


def test_append_only_types_refuse_change_as_the_statement_says(fhir):
    created = fhir.create(AUDIT_EVENT)
    path = f"AuditEvent/{created['id']}"
    for response in (
        fhir.put(path, dict(created, outcome="4")),
        fhir.patch(path, [{"op": "add", "path": "/outcome", "value": "4"}]),
        fhir.delete(path),
        fhir.delete("AuditEvent", query_string={"_id": created["id"]}),
        fhir.put("AuditEvent", dict(AUDIT_EVENT, outcome="4"), query_string={"_id": created["id"]}),
    ):
        assert response.status_code == 405, response.get_json()
        assert response.get_json()["resourceType"] == "OperationOutcome"
    in_bundle = fhir.post("/fhir", content_type="application/fhir+json", json={
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": path}}]})
    assert in_bundle.status_code == 405
    assert fhir.get(path).get_json()["meta"]["versionId"] == "1"


def test_every_definition_the_statement_names_resolves_here_without_a_token(client, statement):
    """SearchParameter and OperationDefinition canonicals: the tail of each is the id it is served at,
    and what is served there has that canonical."""
    anonymous = Fhir(client, token=None)
    canonicals = {("SearchParameter", p["definition"]) for r in statement["rest"][0]["resource"]
                  for p in r.get("searchParam", []) if "definition" in p}  # _list has none (no R4 SearchParameter)
    canonicals |= {("OperationDefinition", op["definition"]) for r in statement["rest"][0]["resource"]
                   for op in r.get("operation", [])}
    canonicals |= {("OperationDefinition", op["definition"]) for op in statement["rest"][0].get("operation", [])}
    assert len(canonicals) > 300
    for resource_type, url in sorted(canonicals):
        if resource_type == "OperationDefinition" and "/uv/bulkdata/" in url:
            continue  # HL7's Bulk Data canonicals (group-export, patient-export): served under our ids
        served = anonymous.get(f"{resource_type}/{url.rsplit('/', 1)[1]}")
        assert served.status_code == 200, url
        assert served.get_json()["url"] == url, url
