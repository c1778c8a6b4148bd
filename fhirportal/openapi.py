"""The OpenAPI document (``/api-docs/openapi.json``) for the whole HTTP surface.

flask-smorest lists the routes of its own Blueprints (the FHIR API, the PHR settings API) but knows
nothing of what a FHIR interaction takes or answers, and nothing of the plain Flask Blueprints (OAuth /
SMART, discovery, the portal pages, the Bulk Data status and file routes). ``install`` adds all of it
with ``api.spec.path``: for a path flask-smorest already lists, each method's operation replaces the
bare one (the route code is untouched). ``tests/test_openapi.py`` checks that every URL rule of the app
is documented; ``tests/e2e/test_openapi_fuzz_live.py`` fuzzes a live server against this document.

FHIR paths keep the routes' generic shape (``{resource_type}``, ``{fhir_id}``) with the supported types as
an enum; the operations get their concrete paths (``/fhir/Patient/{fhir_id}/$everything`` …). Every FHIR
error is an OperationOutcome; the OAuth endpoints answer errors as ``{"error", "error_description"}``
(RFC 6749), the HTML pages as HTML.
"""

from __future__ import annotations

import re

from flask_smorest import Api
from werkzeug.routing import Map, Rule

from .fhir.resource_types import SUPPORTED_TYPES

SECURITY_SCHEME = "bearerAuth"
FHIR_JSON = "application/fhir+json"
NDJSON = "application/fhir+ndjson"
FORM = "application/x-www-form-urlencoded"
HTML = "text/html"
BEARER = [{SECURITY_SCHEME: []}]
PUBLIC: list = []

# ---------------------------------------------------------------------- components
FHIR_ID = {"type": "string", "pattern": r"^[A-Za-z0-9\-\.]{1,64}$"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _resource_schema(resource_type: str | None = None, description: str = "A FHIR resource") -> dict:
    type_schema = {"type": "string", "enum": [resource_type]} if resource_type else {"type": "string"}
    return {"type": "object", "description": description, "required": ["resourceType"],
            "properties": {"resourceType": type_schema, "id": {"type": "string"}, "meta": {"type": "object"}},
            "additionalProperties": True}


SCHEMAS = {
    "OperationOutcome": {
        "type": "object", "description": "What went wrong (or what was done) and where",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                }}},
        },
    },
    "Resource": _resource_schema(),
    "Bundle": {**_resource_schema("Bundle", "A Bundle (searchset, history, transaction-response …)"),
               "required": ["resourceType", "type"]},
    "Parameters": _resource_schema("Parameters", "A Parameters resource (operation input or output)"),
    "CapabilityStatement": _resource_schema("CapabilityStatement", "What this server can do"),
    "ValueSet": _resource_schema("ValueSet", "A ValueSet (with its expansion)"),
    "ResourceBody": {
        "type": "object", "description": "A FHIR resource in JSON; its resourceType must be the path's type",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": sorted(SUPPORTED_TYPES)},
                       "id": FHIR_ID},
        "additionalProperties": True,
    },
    "JsonPatch": {
        "type": "array", "description": "A JSON Patch document (RFC 6902)",
        "items": {"type": "object", "required": ["op", "path"], "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}},
    },
    "OAuthError": {
        "type": "object", "description": "An OAuth 2.0 error (RFC 6749 section 5.2)", "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"},
                       "state": {"type": "string"}},
    },
    "TokenResponse": {
        "type": "object", "required": ["access_token", "token_type"],
        "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"},
                       "expires_in": {"type": "integer"}, "scope": {"type": "string"},
                       "refresh_token": {"type": "string"}, "id_token": {"type": "string"},
                       "patient": {"type": "string"}, "encounter": {"type": "string"},
                       "fhirUser": {"type": "string"}, "need_patient_banner": {"type": "boolean"},
                       "smart_style_url": {"type": "string"}},
    },
    "Introspection": {
        "type": "object", "required": ["active"], "description": "RFC 7662 introspection response",
        "properties": {"active": {"type": "boolean"}, "scope": {"type": "string"}, "client_id": {"type": "string"},
                       "token_type": {"type": "string"}, "exp": {"type": "integer"}, "iat": {"type": "integer"},
                       "iss": {"type": "string"}, "sub": {"type": "string"}, "username": {"type": "string"},
                       "fhirUser": {"type": "string"}, "patient": {"type": "string"},
                       "encounter": {"type": "string"}},
    },
    "ClientMetadata": {
        "type": "object", "description": "RFC 7591 client metadata",
        "properties": {"client_name": {"type": "string"},
                       "redirect_uris": {"type": "array", "items": {"type": "string"}},
                       "grant_types": {"type": "array", "items": {"type": "string"}},
                       "response_types": {"type": "array", "items": {"type": "string"}},
                       "scope": {"type": "string"}, "token_endpoint_auth_method": {"type": "string"},
                       "jwks_uri": {"type": "string"}, "jwks": {"type": "object"}},
        "additionalProperties": True,
    },
    "ClientInformation": {
        "type": "object", "required": ["client_id"], "description": "RFC 7591 client information response",
        "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"},
                       "client_id_issued_at": {"type": "integer"}, "client_secret_expires_at": {"type": "integer"}},
        "additionalProperties": True,
    },
    "Jwks": {"type": "object", "required": ["keys"],
             "properties": {"keys": {"type": "array", "items": {"type": "object"}}}},
    "Launch": {"type": "object", "required": ["launch", "iss", "expires_in"],
               "properties": {"launch": {"type": "string"}, "iss": {"type": "string"},
                              "expires_in": {"type": "integer"}}},
    "LaunchRequest": {"type": "object", "required": ["patient"],
                      "properties": {"patient": {"type": "string", "description": "Patient id (or Patient/id)"},
                                     "encounter": {"type": "string"}}},
    "DiscoveryDocument": {"type": "object", "description": "SMART / OpenID Connect discovery metadata",
                          "additionalProperties": True},
    "ExportManifest": {
        "type": "object", "required": ["transactionTime", "request", "requiresAccessToken", "output", "error"],
        "properties": {"transactionTime": {"type": "string"}, "request": {"type": "string"},
                       "requiresAccessToken": {"type": "boolean"},
                       "output": {"type": "array", "items": {
                           "type": "object", "required": ["type", "url"],
                           "properties": {"type": {"type": "string"}, "url": {"type": "string"},
                                          "count": {"type": "integer"}}}},
                       "error": {"type": "array", "items": {"type": "object"}}},
    },
}

# ---------------------------------------------------------------------- building blocks
ISSUE_MEANINGS = {
    400: "Invalid request (parameter, header or body); OperationOutcome says what and where",
    401: "No, unknown, expired or revoked access token",
    403: "The token's scopes or patient context do not allow this",
    404: "Unknown resource type, resource or endpoint",
    405: "Method not allowed here (e.g. AuditEvent is append-only)",
    406: "Cannot produce any media type the client accepts (_format or Accept)",
    409: "Version conflict or a duplicate",
    410: "The resource was deleted",
    412: "If-Match (or conditional) precondition failed",
    413: "Body, Bundle or result too large",
    414: "Query string too long",
    415: "Unsupported Content-Type",
    422: "Valid JSON or XML but not a valid resource (or a business rule refused it); for terminology: content "
         "this server does not hold (not-supported) or an answer too large (too-costly)",
    429: "Too many requests",
    503: "Database unavailable; retry later",
}
COMMON_ERRORS = (400, 401, 403, 404, 406, 414, 429, 503)


# The XML form of a FHIR body (http://hl7.org/fhir/R4/xml.html): the same resource as the JSON schema describes.
FHIR_XML_CONTENT = {"schema": {"type": "string", "description": "The resource in FHIR XML"}}


def _json(schema: dict, media: str | None = None) -> dict:
    """A JSON body: FHIR answers as application/fhir+json, or application/json when asked (_format, Accept),
    or in XML (application/fhir+xml, application/xml) when asked."""
    if media is None:
        return {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema},
                "application/fhir+xml": FHIR_XML_CONTENT, "application/xml": FHIR_XML_CONTENT}
    return {media: {"schema": schema}}


def outcome(description: str) -> dict:
    return {"description": description, "content": _json(_ref("OperationOutcome"))}


def fhir_responses(ok: dict, *extra_errors: int, public: bool = False) -> dict:
    responses = dict(ok)
    for status in sorted(set(COMMON_ERRORS + extra_errors) - ({401, 403} if public else set())):
        responses.setdefault(str(status), outcome(ISSUE_MEANINGS[status]))
    return responses


def query(name: str, description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    return {"in": "query", "name": name, "description": description, "required": required,
            "schema": schema or {"type": "string"}}


def header(name: str, description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    return {"in": "header", "name": name, "description": description, "required": required,
            "schema": schema or {"type": "string"}}


def path_param(name: str, description: str, schema: dict) -> dict:
    return {"in": "path", "name": name, "required": True, "description": description, "schema": schema}


TYPE = path_param("resource_type", "A supported resource type",
                  {"type": "string", "enum": sorted(SUPPORTED_TYPES)})
ID = path_param("fhir_id", "Logical id of the resource", FHIR_ID)
FORMAT = [query("_format", "Response format (overrides Accept)",
                {"type": "string", "enum": ["json", FHIR_JSON, "application/json", "xml", "application/fhir+xml",
                                            "application/xml", "text/xml"]}),
          query("_pretty", "Pretty-print the JSON or XML", {"type": "string", "enum": ["true", "false"]})]
RESULT = [
    query("_count", "Page size", {"type": "integer", "minimum": 0, "maximum": 1000}),
    query("_sort", "Sort order: comma-separated search parameters, '-' for descending"),
    query("_total", "Whether to count the matches", {"type": "string", "enum": ["none", "estimate", "accurate"]}),
    query("_summary", "Summary mode", {"type": "string", "enum": ["true", "false", "count", "text", "data"]}),
    query("_elements", "Comma-separated elements to return"),
    query("_include", "Include referenced resources (Type:param[:Target])"),
    query("_revinclude", "Include referencing resources (Type:param[:Target])"),
    query("_offset", "Paging cursor from a next/previous link"),
]
SEARCH = [query("_id", "Logical id(s), comma-separated"),
          query("_lastUpdated", "Last update date with an optional prefix (ge2024-01-01)"),
          query("_tag", "Tag token (system|code)"), query("_profile", "Profile canonical URL"),
          *RESULT, *FORMAT]
HISTORY = [query("_count", "Page size", {"type": "integer", "minimum": 0, "maximum": 1000}),
           query("_since", "Only versions created at or after this instant",
                 {"type": "string", "format": "date-time"}),
           query("_at", "Versions current at this time"), query("_offset", "Paging cursor"), *FORMAT]
IF_MATCH = header("If-Match", "Version-aware update: the ETag (W/\"n\") of the version being changed")
IF_NONE_EXIST = header("If-None-Exist", "Conditional create: a search query; nothing is created if it matches")
PREFER_RETURN = header("Prefer", "return=minimal | representation | OperationOutcome",
                       {"type": "string", "enum": ["return=minimal", "return=representation",
                                                   "return=OperationOutcome"]})


def fhir_body(schema: dict, description: str, required: bool = True) -> dict:
    return {"required": required, "description": description,
            "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema},
                        "application/fhir+xml": FHIR_XML_CONTENT}}


def fhir_op(summary: str, responses: dict, *, parameters: list | None = None, body: dict | None = None,
            security: list | None = None, description: str | None = None) -> dict:
    operation = {"tags": ["fhir"], "summary": summary, "responses": responses,
                 "security": BEARER if security is None else security, "parameters": parameters or []}
    if body is not None:
        operation["requestBody"] = body
    if description:
        operation["description"] = description
    return operation


def _ok(status: int, description: str, schema: str | None = "Resource", headers: dict | None = None) -> dict:
    response: dict = {"description": description}
    if schema:
        response["content"] = _json(_ref(schema))
    if headers:
        response["headers"] = headers
    return {str(status): response}


def _header_doc(description: str) -> dict:
    return {"description": description, "schema": {"type": "string"}}


WRITTEN = {"ETag": _header_doc("W/\"version\""), "Location": _header_doc("The new version's URL"),
           "Last-Modified": _header_doc("When the version was stored")}
BUNDLE_OK = _ok(200, "The Bundle", "Bundle")
SEARCH_FORM = {"required": False, "description": "Search parameters as a form (same as the query string)",
               "content": {FORM: {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}
EXPORT_PARAMETERS = [
    header("Prefer", "Must be respond-async", {"type": "string", "enum": ["respond-async"]}, required=True),
    query("_outputFormat", "Output format", {"type": "string", "enum": [NDJSON, "application/ndjson", "ndjson"]}),
    query("_since", "Only resources changed after this instant", {"type": "string", "format": "date-time"}),
    query("_type", "Comma-separated resource types to export"),
    query("_typeFilter", "Type-qualified search queries (Type?param=value) narrowing a type"),
]
EXPORT_ACCEPTED = _ok(202, "Export accepted; poll Content-Location", "OperationOutcome",
                      {"Content-Location": _header_doc("The status URL")})


def fhir_paths(base: str) -> dict[str, dict]:
    b = base
    written = {**_ok(200, "Updated", headers=WRITTEN), **_ok(201, "Created", headers=WRITTEN)}
    return {
        b: {"parameters": [],
            "get": fhir_op("Search all types", fhir_responses(BUNDLE_OK), parameters=[query("_type", "Types"),
                                                                                      *SEARCH]),
            "post": fhir_op("Transaction or batch", fhir_responses(_ok(200, "The response Bundle", "Bundle"),
                                                                   404, 409, 412, 413, 415, 422),
                            parameters=FORMAT, body=fhir_body(_ref("Bundle"), "A transaction or batch Bundle"))},
        f"{b}/_search": {"post": fhir_op("Search all types (form body)", fhir_responses(BUNDLE_OK, 413, 415),
                                         parameters=FORMAT, body=SEARCH_FORM)},
        f"{b}/metadata": {"get": fhir_op("The CapabilityStatement", fhir_responses(
            _ok(200, "What this server can do", "CapabilityStatement"), public=True), parameters=[
            query("mode", "full or normative", {"type": "string", "enum": ["full", "normative", "terminology"]}),
            *FORMAT], security=PUBLIC)},
        f"{b}/_history": {"get": fhir_op("History of all resources", fhir_responses(BUNDLE_OK),
                                         parameters=HISTORY)},
        f"{b}/OperationDefinition/{{fhir_id}}": {"parameters": [ID], "get": fhir_op(
            "An OperationDefinition", fhir_responses(_ok(200, "The definition"), public=True), parameters=FORMAT,
            security=PUBLIC)},
        f"{b}/SearchParameter/{{fhir_id}}": {"parameters": [ID], "get": fhir_op(
            "A SearchParameter", fhir_responses(_ok(200, "The definition"), public=True), parameters=FORMAT,
            security=PUBLIC)},
        f"{b}/StructureDefinition/{{fhir_id}}": {"parameters": [ID], "get": fhir_op(
            "A StructureDefinition (US Core 6.1.0's profiles and extensions)", fhir_responses(
                _ok(200, "The definition"), public=True), parameters=FORMAT, security=PUBLIC)},
        **{f"{b}/{kind}": {"get": fhir_op(f"Search the {kind}s this server serves (url, name, status, version, _id)",
                                          fhir_responses(BUNDLE_OK, public=True), parameters=CONFORMANCE_SEARCH,
                                          security=PUBLIC)}
           for kind in ("OperationDefinition", "SearchParameter", "StructureDefinition")},
        f"{b}/{{resource_type}}": {
            "parameters": [TYPE],
            "get": fhir_op("Search", fhir_responses(BUNDLE_OK), parameters=SEARCH,
                           description="Besides these, each type's search parameters (see the CapabilityStatement)"
                                       " with their modifiers and prefixes."),
            "post": fhir_op("Create (conditional with If-None-Exist)", fhir_responses(
                {**_ok(201, "Created", headers=WRITTEN), **_ok(200, "Conditional create: it exists")},
                405, 409, 412, 413, 415, 422), parameters=[IF_NONE_EXIST, PREFER_RETURN, *FORMAT],
                body=fhir_body(_ref("ResourceBody"), "The resource")),
            "put": fhir_op("Conditional update (the query selects the resource)", fhir_responses(
                written, 405, 409, 412, 413, 415, 422), parameters=[IF_MATCH, PREFER_RETURN, *FORMAT],
                body=fhir_body(_ref("ResourceBody"), "The resource")),
            "delete": fhir_op("Conditional delete (the query selects the resources)", fhir_responses(
                _ok(200, "Deleted (or nothing matched)", "OperationOutcome"), 405, 409, 412), parameters=FORMAT),
        },
        f"{b}/{{resource_type}}/_search": {"parameters": [TYPE], "post": fhir_op(
            "Search (form body)", fhir_responses(BUNDLE_OK, 413, 415), parameters=FORMAT, body=SEARCH_FORM)},
        f"{b}/{{resource_type}}/_history": {"parameters": [TYPE], "get": fhir_op(
            "History of a type", fhir_responses(BUNDLE_OK), parameters=HISTORY)},
        f"{b}/{{resource_type}}/{{fhir_id}}": {
            "parameters": [TYPE, ID],
            "get": fhir_op("Read", fhir_responses(_ok(200, "The current version", headers={
                "ETag": _header_doc("W/\"version\"")}), 410), parameters=[
                header("If-None-Match", "ETag of a cached version: 304 if unchanged"),
                header("If-Modified-Since", "HTTP date: 304 if unchanged since"), query("_summary", "Summary mode"),
                query("_elements", "Comma-separated elements to return"), *FORMAT]),
            "put": fhir_op("Update (or create with a client-assigned id)", fhir_responses(
                written, 405, 409, 412, 413, 415, 422), parameters=[IF_MATCH, PREFER_RETURN, *FORMAT],
                body=fhir_body(_ref("ResourceBody"), "The resource; its id must be the path's id")),
            "patch": fhir_op("JSON Patch", fhir_responses(_ok(200, "Patched", headers=WRITTEN), 405, 409, 410,
                                                          412, 413, 415, 422),
                             parameters=[IF_MATCH, PREFER_RETURN, *FORMAT],
                             body={"required": True, "description": "A JSON Patch document",
                                   "content": {"application/json-patch+json": {"schema": _ref("JsonPatch")}}}),
            "delete": fhir_op("Delete", fhir_responses(_ok(200, "Deleted", "OperationOutcome"), 405, 409, 412),
                              parameters=FORMAT),
            "post": fhir_op("Not allowed: use PUT", fhir_responses({}, 405), parameters=FORMAT),
        },
        f"{b}/{{resource_type}}/{{fhir_id}}/_history": {"parameters": [TYPE, ID], "get": fhir_op(
            "History of a resource", fhir_responses(BUNDLE_OK), parameters=HISTORY)},
        f"{b}/{{resource_type}}/{{fhir_id}}/_history/{{version}}": {
            "parameters": [TYPE, ID, path_param("version", "Version id", {"type": "string",
                                                                          "pattern": r"^[0-9]{1,9}$"})],
            "get": fhir_op("Read a version (vread)", fhir_responses(_ok(200, "That version"), 410),
                           parameters=FORMAT)},
        f"{b}/{{resource_type}}/{{fhir_id}}/{{operation}}": {
            "parameters": [TYPE, ID, path_param("operation", "$ and an operation's code", {
                "type": "string", "pattern": r"^\$[a-z][a-z-]{0,40}$"})],
            "get": fhir_op("An instance-level operation (see the concrete operation paths)", fhir_responses(
                {**_ok(200, "The operation's result"), **EXPORT_ACCEPTED}, 405), parameters=FORMAT),
            "post": fhir_op("An instance-level operation (see the concrete operation paths)", fhir_responses(
                _ok(200, "The operation's result"), 405, 409, 413, 415, 422), parameters=FORMAT,
                body=fhir_body(_ref("Parameters"), "Parameters", required=False)),
        },
        **operation_paths(b),
        **terminology_paths(b),
    }


CONFORMANCE_SEARCH = [
    query("url", "Canonical url (:below: a prefix)"), query("name", "Name (starts with; :exact, :contains)"),
    query("status", "Status"), query("version", "Version"), query("_id", "Logical id(s)"),
    query("_count", "Page size", {"type": "integer", "minimum": 0, "maximum": 1000}),
    query("_cursor", "Paging cursor from a next link"), query("_summary", "Summary mode"),
    query("_elements", "Comma-separated elements to return"), *FORMAT]


def terminology_paths(b: str) -> dict[str, dict]:
    """CodeSystem, ValueSet and ConceptMap (read-only, public) and the terminology operations."""
    paths: dict[str, dict] = {}
    not_allowed = fhir_op("Not allowed: the terminology resources are read-only", fhir_responses({}, 405,
                                                                                                  public=True),
                          parameters=FORMAT, security=PUBLIC)
    search = CONFORMANCE_SEARCH
    for kind in ("CodeSystem", "ValueSet", "ConceptMap"):
        paths[f"{b}/{kind}"] = {
            "get": fhir_op(f"Search the {kind}s", fhir_responses(BUNDLE_OK, public=True), parameters=search,
                           security=PUBLIC),
            "post": not_allowed, "put": not_allowed, "delete": not_allowed}
        paths[f"{b}/{kind}/_search"] = {"post": fhir_op(f"Search the {kind}s (form body)", fhir_responses(
            BUNDLE_OK, 413, 415, public=True), parameters=FORMAT, body=SEARCH_FORM, security=PUBLIC)}
        paths[f"{b}/{kind}/{{fhir_id}}"] = {
            "parameters": [ID],
            "get": fhir_op(f"A {kind} (or a type-level operation, see the concrete paths)", fhir_responses(
                _ok(200, f"The {kind}"), public=True), parameters=[
                query("_summary", "Summary mode"), query("_elements", "Comma-separated elements to return"),
                *FORMAT], security=PUBLIC),
            "post": not_allowed, "put": not_allowed, "patch": not_allowed, "delete": not_allowed}
        paths[f"{b}/{kind}/{{fhir_id}}/{{operation}}"] = {
            "parameters": [ID, path_param("operation", "$ and an operation's code", {
                "type": "string", "pattern": r"^\$[a-z][a-z-]{0,40}$"})],
            "get": fhir_op(f"An instance-level operation on a {kind} (see the concrete paths)", fhir_responses(
                _ok(200, "The operation's result"), 405, 422, public=True), parameters=FORMAT, security=PUBLIC),
            "post": fhir_op(f"An instance-level operation on a {kind} (see the concrete paths)", fhir_responses(
                _ok(200, "The operation's result"), 405, 413, 415, 422, public=True), parameters=FORMAT,
                body=fhir_body(_ref("Parameters"), "Parameters"), security=PUBLIC)}
    coding = [query("system", "The code's system"), query("code", "The code")]
    operations = {
        "ValueSet/$expand": ("Expand a value set", "ValueSet", [
            query("url", "The value set's canonical url"), query("filter", "Text the codes must contain"),
            query("count", "Page size", {"type": "integer", "minimum": 0, "maximum": 10000}),
            query("offset", "Codes to skip", {"type": "integer", "minimum": 0})]),
        "ValueSet/$validate-code": ("Is a code in a value set?", "Parameters", [
            query("url", "The value set's canonical url"), *coding, query("display", "A display to check")]),
        "CodeSystem/$validate-code": ("Is a code in a code system?", "Parameters", [
            query("url", "The code system's url"), query("code", "The code"), query("version", "Its version"),
            query("display", "A display to check")]),
        "CodeSystem/$lookup": ("A concept's display, designations and properties", "Parameters", [
            *coding, query("version", "The code system's version"), query("property", "Only these properties")]),
        "CodeSystem/$subsumes": ("How two codes relate in a hierarchy", "Parameters", [
            query("system", "The code system"), query("codeA", "The first code"),
            query("codeB", "The second code"), query("version", "The code system's version")]),
    }
    for path, (summary, result, parameters) in operations.items():
        responses = fhir_responses(_ok(200, summary, result), 422, public=True)
        item = {"get": fhir_op(summary, responses, parameters=[*parameters, *FORMAT], security=PUBLIC),
                "post": fhir_op(summary, fhir_responses(_ok(200, summary, result), 413, 415, 422, public=True),
                                parameters=FORMAT, body=fhir_body(_ref("Parameters"), "Parameters"), security=PUBLIC)}
        paths[f"{b}/{path}"] = item
        if path != "CodeSystem/$lookup":  # the others also run on one resource: ValueSet/{id}/$expand ...
            kind, code = path.split("/")
            paths[f"{b}/{kind}/{{fhir_id}}/{code}"] = {"parameters": [ID], **item}
    return paths


def operation_paths(b: str) -> dict[str, dict]:
    """The FHIR operations (routed through the generic routes by their ``$`` name)."""
    instance_of = {**TYPE, "schema": {"type": "string", "enum": ["Patient", "RelatedPerson"]}}
    results = {**TYPE, "schema": {"type": "string", "enum": ["Observation", "DiagnosticReport"]}}
    everything = [query("_since", "Only resources changed after this instant", {"type": "string",
                                                                                  "format": "date-time"}),
                  query("_type", "Comma-separated types"),
                  query("_count", "Page size", {"type": "integer", "minimum": 0, "maximum": 1000}),
                  query("_offset", "Paging cursor"), *FORMAT]
    enrollment = _ok(200, "The portal enrollment status", "Parameters")
    paths = {
        f"{b}/$export": {"get": fhir_op("Bulk Data system export (kick-off)", fhir_responses(
            EXPORT_ACCEPTED), parameters=EXPORT_PARAMETERS)},
        f"{b}/Patient/$export": {"get": fhir_op("Bulk Data export of all patients (kick-off)", fhir_responses(
            EXPORT_ACCEPTED), parameters=EXPORT_PARAMETERS)},
        f"{b}/Group/{{fhir_id}}/$export": {"parameters": [ID], "get": fhir_op(
            "Bulk Data export of a Group's members (kick-off)", fhir_responses(EXPORT_ACCEPTED),
            parameters=EXPORT_PARAMETERS)},
        f"{b}/Patient/{{fhir_id}}/$everything": {
            "parameters": [ID],
            "get": fhir_op("Everything in a patient's record", fhir_responses(BUNDLE_OK), parameters=everything),
            "post": fhir_op("Everything in a patient's record", fhir_responses(BUNDLE_OK, 413, 415),
                            parameters=everything,
                            body=fhir_body(_ref("Parameters"), "Parameters (_since, _type, _count)",
                                           required=False))},
        f"{b}/{{resource_type}}/$validate": {"parameters": [TYPE], "post": fhir_op(
            "Validate a resource", fhir_responses(_ok(200, "The validation result", "OperationOutcome"), 413, 415,
                                                  422),
            parameters=[query("mode", "create, update or delete", {
                "type": "string", "enum": ["create", "update", "delete"]}), query("profile", "Profile URL"),
                *FORMAT],
            body=fhir_body({"oneOf": [_ref("ResourceBody"), _ref("Parameters")]},
                           "The resource, or Parameters with 'resource' and 'mode'"))},
        f"{b}/{{resource_type}}/{{fhir_id}}/$validate": {"parameters": [TYPE, ID], "post": fhir_op(
            "Validate a resource against an existing one (mode update or delete)", fhir_responses(
                _ok(200, "The validation result", "OperationOutcome"), 413, 415, 422),
            parameters=[query("mode", "create, update or delete", {
                "type": "string", "enum": ["create", "update", "delete"]}), *FORMAT],
            body=fhir_body({"oneOf": [_ref("ResourceBody"), _ref("Parameters")]},
                           "The resource, or Parameters with 'resource' and 'mode'", required=False))},
        f"{b}/{{resource_type}}/{{fhir_id}}/$portal-status": {"parameters": [instance_of, ID], "get": fhir_op(
            "The record's patient-portal enrollment", fhir_responses(enrollment), parameters=FORMAT)},
    }
    for code, summary in (("invite", "Invite the patient (or related person) to the portal"),
                          ("resend", "Send the portal invitation again"),
                          ("revoke", "End the record's portal access"),
                          ("cancel", "Cancel an open invitation")):
        body = fhir_body(_ref("Parameters"), "Parameters (email, phone)" if code == "invite" else "Parameters",
                         required=False)
        paths[f"{b}/{{resource_type}}/{{fhir_id}}/$portal-{code}"] = {"parameters": [instance_of, ID], "post": fhir_op(
            summary, fhir_responses(enrollment, 409, 413, 415, 422), parameters=FORMAT, body=body)}
    for code, summary in (("share", "Share a lab result with the patient portal"),
                          ("withhold", "Withhold a lab result from the patient portal")):
        paths[f"{b}/{{resource_type}}/{{fhir_id}}/$portal-{code}"] = {"parameters": [results, ID], "post": fhir_op(
            summary, fhir_responses(_ok(200, "The resource after the change"), 409, 413, 415, 422),
            parameters=FORMAT, body=fhir_body(_ref("Parameters"), "Parameters (reason)", required=False))}
    return paths


def bulk_paths(b: str) -> dict[str, dict]:
    job = path_param("job_id", "The export's id (from Content-Location)", {"type": "string",
                                                                            "pattern": r"^[A-Za-z0-9_\-]{1,64}$"})
    not_found = (401, 404)
    return {
        f"{b}/$export-status/{{job_id}}": {
            "parameters": [job],
            "get": fhir_op("Bulk Data export status", {
                **_ok(200, "Complete: the manifest", "ExportManifest", {"Expires": _header_doc("HTTP date")}),
                "202": {"description": "Still running (X-Progress, Retry-After)",
                        "headers": {"X-Progress": _header_doc("Progress"), "Retry-After": _header_doc("Seconds")}},
                "500": outcome("The export failed"),
                **{str(s): outcome(ISSUE_MEANINGS[s]) for s in (*not_found, 429, 503)}}),
            "delete": fhir_op("Cancel a Bulk Data export", {
                **_ok(202, "Cancelled", "OperationOutcome"),
                **{str(s): outcome(ISSUE_MEANINGS[s]) for s in (*not_found, 429, 503)}}),
        },
        f"{b}/$export-file/{{job_id}}/{{file_name}}": {
            "parameters": [job, path_param("file_name", "Type.ndjson", {"type": "string",
                                                                        "pattern": r"^[A-Za-z]{1,64}\.ndjson$"})],
            "get": fhir_op("Download an exported file", {
                "200": {"description": "NDJSON, one resource a line", "content": {NDJSON: {"schema": {
                    "type": "string"}}}},
                **{str(s): outcome(ISSUE_MEANINGS[s]) for s in (*not_found, 429, 503)}}),
        },
    }


# ---------------------------------------------------------------------- OAuth / SMART and the pages
def _oauth_error(description: str) -> dict:
    return {"description": description, "content": _json(_ref("OAuthError"), "application/json")}


def _page(description: str) -> dict:
    return {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}


def _redirect(description: str) -> dict:
    return {"description": description, "headers": {"Location": _header_doc("Where to")}}


def _form_body(properties: dict, required: tuple = (), description: str = "") -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"required": bool(required), "description": description, "content": {FORM: {"schema": schema}}}


def _string(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def _auth_op(summary: str, responses: dict, *, parameters: list | None = None, body: dict | None = None,
             security: list | None = None, description: str | None = None, tag: str = "oauth") -> dict:
    operation = {"tags": [tag], "summary": summary, "responses": responses, "parameters": parameters or [],
                 "security": security if security is not None else PUBLIC}
    if body is not None:
        operation["requestBody"] = body
    if description:
        operation["description"] = description
    return operation


AUTHORIZE_PARAMS = {
    "response_type": _string("code", enum=["code"]), "client_id": _string("The app's client_id"),
    "redirect_uri": _string("One of the app's registered redirect URIs"),
    "scope": _string("Requested scopes (SMART v1/v2)"), "state": _string("Opaque value echoed back"),
    "aud": _string("This server's FHIR base URL"), "launch": _string("EHR launch id"),
    "code_challenge": _string("PKCE challenge"), "code_challenge_method": _string("S256", enum=["S256"]),
    "nonce": _string("OpenID Connect nonce"), "prompt": _string("OpenID Connect prompt"),
    "max_age": _string("OpenID Connect max_age"),
}
CLIENT_AUTH = {"client_id": _string("Public clients: their client_id"),
               "client_secret": _string("client_secret_post"),
               "client_assertion_type": _string("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
               "client_assertion": _string("private_key_jwt: the signed JWT")}
ACCOUNT_FORM = _form_body({"step": _string("login: the sign-in form posts back", enum=["login"]),
                           "username": _string("User name"), "password": _string("Password"),
                           "csrf_token": _string("The form's CSRF token")}, description="The sign-in form")
ACCOUNT_PAGE = {"200": _page("The page, or the sign-in form when not signed in"),
                "400": _page("The form expired (CSRF)"), "401": _page("Wrong user name or password")}


def auth_paths() -> dict[str, dict]:
    authorize_query = [query(name, schema.get("description", ""), {k: v for k, v in schema.items()
                                                                     if k != "description"})
                       for name, schema in AUTHORIZE_PARAMS.items()]
    authorize_responses = {"200": _page("The sign-in or consent page"),
                           "302": _redirect("Back to the app with code and state, or with an OAuth error"),
                           "400": _page("Unknown client or redirect URI, or the form expired: an error page"),
                           "401": _page("Wrong user name or password: the sign-in page again"),
                           "429": _page("Too many sign-in attempts from this address or for this app (Retry-After)")}
    consent_form = {**AUTHORIZE_PARAMS, "step": _string("login or consent", enum=["login", "consent"]),
                    "username": _string("Sign-in form"), "password": _string("Sign-in form"),
                    "csrf_token": _string("The form's CSRF token"),
                    "decision": _string("allow or deny", enum=["allow", "deny"]),
                    "patient": _string("Patient chosen (patient accounts acting for several)"),
                    "scope": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                              "description": "Ticked scopes (consent)"}}
    discovery = {"200": {"description": "The discovery document",
                         "content": _json(_ref("DiscoveryDocument"), "application/json")}}
    paths = {
        "/auth/authorize": {
            "get": _auth_op("OAuth 2.0 authorization endpoint (SMART App Launch)", authorize_responses,
                            parameters=authorize_query),
            "post": _auth_op("Authorization: the sign-in and consent forms post back here (or authorize-post)",
                             authorize_responses, parameters=authorize_query,
                             body=_form_body(consent_form, description="Sign-in or consent form, or the "
                                                                       "authorization request itself")),
        },
        "/auth/token": {"post": _auth_op("Token endpoint", {
            "200": {"description": "Access token", "content": _json(_ref("TokenResponse"), "application/json")},
            "400": _oauth_error("invalid_request, invalid_grant, unsupported_grant_type …"),
            "401": _oauth_error("invalid_client"), "403": _oauth_error("Not allowed for this client"),
            "429": _oauth_error("Too many requests from this app or address (Retry-After)")},
            body=_form_body({"grant_type": _string("Grant", enum=["authorization_code", "refresh_token",
                                                                  "client_credentials"]),
                             "code": _string("authorization_code"), "redirect_uri": _string("authorization_code"),
                             "code_verifier": _string("PKCE verifier"), "refresh_token": _string("refresh_token"),
                             "scope": _string("Requested scope"), **CLIENT_AUTH}, ("grant_type",),
                            "Token request (client_secret_basic in the Authorization header)"))},
        "/auth/revoke": {"post": _auth_op("Revoke a token (RFC 7009)", {
            "200": {"description": "Revoked (or unknown)"},
            "400": _oauth_error("Invalid request"), "401": _oauth_error("invalid_client")},
            body=_form_body({"token": _string("The token"), "token_type_hint": _string(
                "access_token or refresh_token", enum=["access_token", "refresh_token"]), **CLIENT_AUTH},
                ("token",)))},
        "/auth/introspect": {"post": _auth_op("Introspect a token (RFC 7662)", {
            "200": {"description": "The token's state", "content": _json(_ref("Introspection"), "application/json")},
            "400": _oauth_error("Invalid request"), "401": _oauth_error("invalid_client"),
            "403": _oauth_error("Not allowed to introspect that token")},
            body=_form_body({"token": _string("The token"), "token_type_hint": _string(
                "access_token or refresh_token", enum=["access_token", "refresh_token"]), **CLIENT_AUTH},
                ("token",)))},
        "/auth/register": {"post": _auth_op("Dynamic client registration (RFC 7591)", {
            "201": {"description": "Registered", "content": _json(_ref("ClientInformation"), "application/json")},
            "400": _oauth_error("invalid_client_metadata, invalid_redirect_uri …"),
            "429": _oauth_error("Too many registrations from this address (Retry-After)")},
            body={"required": True, "content": _json(_ref("ClientMetadata"), "application/json")})},
        "/healthz": {"get": _auth_op("Liveness: the process answers", {
            "200": {"description": "Alive", "content": _json({"type": "object"}, "application/json")}},
            tag="health")},
        "/readyz": {"get": _auth_op("Readiness: the process and its database answer (for a load balancer)", {
            "200": {"description": "Ready", "content": _json({"type": "object"}, "application/json")},
            "503": {"description": "The database does not answer",
                    "content": _json({"type": "object"}, "application/json")}}, tag="health")},
        "/metrics": {"get": _auth_op("Prometheus metrics (text exposition format)", {
            "200": {"description": "The metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": {"description": "Not the metrics token (FHIRPORTAL_METRICS_TOKEN)"},
            "404": outcome("Metrics are off (FHIRPORTAL_METRICS_TOKEN is not set)")}, security=BEARER,
            tag="health")},
        "/auth/jwks": {"get": _auth_op("The server's public signing keys", {
            "200": {"description": "JWK Set", "content": _json(_ref("Jwks"), "application/json")}})},
        "/auth/smart-style.json": {"get": _auth_op("SMART styling", {
            "200": {"description": "Style", "content": _json({"type": "object"}, "application/json")}})},
        "/auth/launch": {"post": _auth_op("Register an EHR launch context (staff or backend token)", {
            "201": {"description": "The launch", "content": _json(_ref("Launch"), "application/json")},
            "400": _oauth_error("patient is required"), "401": _oauth_error("A staff or backend token is required"),
            "403": _oauth_error("Not a staff or backend token")}, security=BEARER,
            body={"required": True, "content": {"application/json": {"schema": _ref("LaunchRequest")},
                                                FORM: {"schema": _ref("LaunchRequest")}}})},
        "/auth/apps": {
            "get": _auth_op("The signed-in user's authorized apps", ACCOUNT_PAGE, tag="account"),
            "post": _auth_op("The signed-in user's authorized apps (sign-in form posts here)", ACCOUNT_PAGE,
                             body=ACCOUNT_FORM, tag="account")},
        "/auth/apps/revoke": {"post": _auth_op("Revoke an app's access", {
            "200": _page("The apps page"), "400": _page("Not signed in, or the form expired")},
            body=_form_body({"client_id": _string("The app"), "csrf_token": _string("CSRF token")}),
            tag="account")},
        "/auth/access-log": {
            "get": _auth_op("Who looked at the signed-in patient's records", ACCOUNT_PAGE, tag="account"),
            "post": _auth_op("Access log (sign-in form posts here)", ACCOUNT_PAGE, body=ACCOUNT_FORM,
                             tag="account")},
        "/portal/register": {
            "parameters": [query("t", "The invitation link's token", required=True),
                           query("step", "code: the security-code form", {"type": "string", "enum": ["code"]})],
            "get": _auth_op("The registration page of a portal invitation", {
                "200": _page("The registration form"), "410": _page("Link expired, used, locked or revoked")},
                tag="portal"),
            "post": _auth_op("Register (date of birth + PIN or SMS code, user name, password)", {
                "200": _page("The security-code form (after send_code)"), "201": _page("Registered"),
                "400": _page("A wrong answer or an invalid field: the form again"),
                "410": _page("Link expired, used, locked or revoked"), "429": _page("Too many codes asked for")},
                body=_form_body({"csrf_token": _string("CSRF token"), "birth_date": _string("YYYY-MM-DD"),
                                 "pin": _string("PIN from the practice"), "phone": _string("Phone on file"),
                                 "code": _string("SMS security code"), "method": _string("pin or sms"),
                                 "send_code": _string("Ask for an SMS code"), "username": _string("User name"),
                                 "password": _string("Password"), "password_again": _string("Password again"),
                                 "existing": _string("1: add the record to an existing account")}),
                tag="portal")},
    }
    return paths, discovery


def install(api: Api, base_path: str) -> None:
    """Add components and the documentation of every route to ``api.spec`` (after all Blueprints are
    registered, so that these operations replace flask-smorest's bare ones)."""
    spec = api.spec
    for name, schema in SCHEMAS.items():
        if name not in spec.components.schemas:
            spec.components.schema(name, component=schema)
    if SECURITY_SCHEME not in spec.components.security_schemes:
        spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer"})
    from .openapi_pages import page_paths

    paths, discovery = auth_paths()
    paths.update(page_paths())
    for prefix in ("", base_path):
        paths[f"{prefix}/.well-known/smart-configuration"] = {"get": _auth_op(
            "SMART configuration", discovery, tag="discovery")}
        paths[f"{prefix}/.well-known/openid-configuration"] = {"get": _auth_op(
            "OpenID Connect configuration", discovery, tag="discovery")}
    for path, item in {**fhir_paths(base_path), **bulk_paths(base_path), **paths}.items():
        item = dict(item)
        parameters = item.pop("parameters", None)
        spec.path(rule=_rule(path), operations=item, parameters=parameters)


def _rule(path: str) -> Rule:
    """A werkzeug Rule for an OpenAPI path (flask-smorest's spec plugin takes the path from a Rule)."""
    rule = Rule(re.sub(r"\{(\w+)\}", r"<\1>", path), defaults={})
    Map([rule])  # binds and compiles it
    return rule
