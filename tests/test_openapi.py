"""The OpenAPI document (``/api-docs/openapi.json``, built by ``fhirportal.openapi``) covers the whole HTTP
surface: every route and method of the app, every FHIR operation, with parameters and responses."""

from __future__ import annotations

import re

import pytest

from fhirportal.fhir import conformance
from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.fhir.terminology.resources import TERMINOLOGY_TYPES

UNDOCUMENTED = ("/static/", "/api-docs/")  # Flask's static files and the document itself
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api-docs/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method], item.get("parameters", [])


def test_every_route_and_method_is_documented(app, spec):
    """Each URL rule of the app (its methods but HEAD and OPTIONS) is a documented path and operation."""
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(UNDOCUMENTED) or rule.endpoint.startswith("benchmark"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing


def test_every_operation_has_a_summary_responses_and_its_path_parameters(spec):
    for path, method, operation, path_level in _operations(spec):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation["responses"] and "default" not in operation["responses"], where
        names = {p["name"] for p in [*path_level, *operation.get("parameters", [])] if p["in"] == "path"}
        assert names == set(re.findall(r"\{(\w+)\}", path)), where


def test_fhir_errors_are_documented_as_operation_outcomes(spec):
    """Every 4xx of the FHIR API is an OperationOutcome, in application/fhir+json."""
    outcome = {"$ref": "#/components/schemas/OperationOutcome"}
    checked = 0
    for path, method, operation, _ in _operations(spec):
        if not path.startswith("/fhir") or "/.well-known/" in path:
            continue
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert response["content"]["application/fhir+json"]["schema"] == outcome, f"{method} {path} {status}"
                checked += 1
        if path != "/fhir/metadata" and not path.startswith(("/fhir/OperationDefinition", "/fhir/SearchParameter",
                                                              "/fhir/StructureDefinition", "/fhir/CodeSystem",
                                                              "/fhir/ValueSet", "/fhir/ConceptMap")):
            assert operation["security"] == [{"bearerAuth": []}], f"{method} {path}"
            assert "401" in operation["responses"], f"{method} {path}"
    assert checked > 100


def test_fhir_paths_take_the_supported_types_and_bodies_are_fhir_json(spec):
    item = spec["paths"]["/fhir/{resource_type}"]
    resource_type = next(p for p in item["parameters"] if p["name"] == "resource_type")
    assert set(resource_type["schema"]["enum"]) == set(SUPPORTED_TYPES)
    assert "application/fhir+json" in item["post"]["requestBody"]["content"]
    patch = spec["paths"]["/fhir/{resource_type}/{fhir_id}"]["patch"]
    assert list(patch["requestBody"]["content"]) == ["application/json-patch+json"]
    search = {p["name"] for p in item["get"]["parameters"]}
    assert {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_format"} <= search
    assert spec["components"]["schemas"]["OperationOutcome"]["required"] == ["resourceType", "issue"]


def test_every_operation_definition_has_its_paths(spec):
    """Each OperationDefinition the server runs is documented at each level it runs at."""
    for definition in conformance.operation_definitions():
        code = "$" + definition["code"]
        types = [t for t in definition.get("resource", [])
                 if t in SUPPORTED_TYPES or t in TERMINOLOGY_TYPES] or ["{resource_type}"]
        wanted = []
        if definition.get("system"):
            wanted.append(f"/fhir/{code}")
        if definition.get("type"):
            wanted += [f"/fhir/{t}/{code}" for t in types]
        if definition.get("instance"):
            wanted += [f"/fhir/{t}/{{fhir_id}}/{code}" for t in types]
        for path in wanted:
            generic = re.sub(r"^/fhir/[A-Z]\w+/", "/fhir/{resource_type}/", path)
            assert path in spec["paths"] or generic in spec["paths"], (definition["id"], path)


def test_oauth_portal_and_bulk_routes_have_their_own_media_types(spec):
    paths = spec["paths"]
    assert "application/json" in paths["/auth/token"]["post"]["responses"]["200"]["content"]
    assert "application/x-www-form-urlencoded" in paths["/auth/token"]["post"]["requestBody"]["content"]
    assert paths["/auth/token"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OAuthError"}
    assert "text/html" in paths["/portal/register"]["post"]["responses"]["400"]["content"]
    assert "302" in paths["/auth/authorize"]["get"]["responses"]
    assert "application/fhir+ndjson" in paths["/fhir/$export-file/{job_id}/{file_name}"]["get"]["responses"]["200"][
        "content"]
    assert paths["/fhir/$export-status/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/ExportManifest"}
