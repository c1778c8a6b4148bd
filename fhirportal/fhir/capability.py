"""``GET /metadata``: the CapabilityStatement, generated from what the server registers.

The template in ``capability/capability-statement.json`` holds the reviewed prose; the resources,
interactions, search parameters and operations come from the same registries the router and the
search engine use. US Core 6.1.0 (``us_core``): the statement instantiates ``us-core-server``, lists
each type's US Core profiles as supportedProfile and carries the search combinations US Core's
statement lists for the type, for those whose parameters this server answers.

The resource list is built once per set of pending search parameters (a reindex that finishes
changes what is advertised) and shared by every request.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from fhirportal.smart.discovery import OAUTH_URIS as OAUTH_ENDPOINTS
from fhirportal.store import clock
from fhirportal.store.index_state import contained_pending

from . import audit_view, us_core
from .conformance import load_template
from .context import FhirContext
from .resource_types import interactions
from .terminology.resources import SEARCH_PARAMETER_URLS, SEARCH_PARAMETERS, TERMINOLOGY_TYPES

# What the appointment-request rules (fhirportal/scheduling) add to the plain interactions.
SCHEDULING = {
    "Appointment": ("A patient/ token creates only requests (status proposed) for its own patient, on a free Slot or "
                    "with a requestedPeriod, and may only cancel (until the practice's cut-off before the start) "
                    "or edit a request; an Appointment holds its Slots (proposed/pending: busy-tentative, booked: "
                    "busy) in its own transaction, a Slot not free is a 409; cancelled or deleted frees them"),
    "Slot": "Written by user/ and system/ tokens only (and by the server as Appointments hold and free them); "
            "readable by patient/ tokens",
    "Schedule": "Written by user/ and system/ tokens only; patient/ tokens read the practice's Schedules (naming no "
                "patient) and their own",
}


def _software_version() -> str:
    try:
        return version("fhirportal")
    except PackageNotFoundError:
        return "0.0.0"


def searchable(ctx: FhirContext, resource_type: str) -> list:
    """The search parameters that work for a type (what the search engine really answers; not those
    whose index is still being built)."""
    registry = ctx.search_parameters
    return [p for p in registry.for_type(resource_type).values()
            if p.type != "special" and (p.type != "composite" or p.indexed)
            and not registry.is_pending(resource_type, p.code)]


def _references(ctx: FhirContext) -> list[tuple[str, str, tuple[str, ...]]]:
    """(source type, code, targets) of every searchable reference parameter."""
    return [(source, p.code, p.targets) for source in sorted(ctx.resource_types)
            for p in searchable(ctx, source) if p.type == "reference"]


def revincludes(ctx: FhirContext, resource_type: str, references=None) -> list[str]:
    """``Source:param`` for every reference parameter of any type that can point at ``resource_type``."""
    return sorted({f"{source}:{code}" for source, code, targets in references or _references(ctx)
                   if not targets or resource_type in targets})


def _combinations(ctx: FhirContext, resource_type: str) -> list[dict]:
    """US Core's search-parameter-combination extensions whose parameters this server answers."""
    answered = {p.code for p in searchable(ctx, resource_type)} | {"_id"}
    return [{"url": us_core.COMBINATION, "extension": [
        {"url": us_core.EXPECTATION, "valueCode": expectation},
        *({"url": "required", "valueString": name} for name in required)]}
        for expectation, required in us_core.search_combinations(resource_type) if set(required) <= answered]


def _contained_params(ctx: FhirContext, resource_type: str) -> list[dict]:
    """``_contained`` and ``_containedType``, once the index of contained resources is complete."""
    pending = ctx.search_parameters.readiness.pending() if ctx.search_parameters.readiness else frozenset()
    if resource_type == "AuditEvent" or contained_pending(pending):
        return []
    return list(CONTAINED_SEARCH_PARAMS)


def _resource_entry(ctx: FhirContext, resource_type: str, all_references) -> dict:
    allowed = interactions(resource_type)
    changeable = "update" in allowed
    entry = {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in allowed],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": changeable,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": changeable,
        "conditionalDelete": "single" if "delete" in allowed else "not-supported",
        "referencePolicy": ["literal", "enforced", "local"],
        "searchParam": [
            {"name": p.code, "definition": p.url, "type": p.type}
            for p in sorted(searchable(ctx, resource_type), key=lambda p: p.code)
        ] + ([] if resource_type == "AuditEvent" else [LIST_SEARCH_PARAM]) + _contained_params(ctx, resource_type),
    }
    references = [p for p in searchable(ctx, resource_type) if p.type == "reference"]
    entry["searchInclude"] = ["*"] + sorted(f"{resource_type}:{p.code}" for p in references)
    entry["searchRevInclude"] = [r for r in revincludes(ctx, resource_type, all_references)
                                 if not r.startswith("AuditEvent:") or r in AUDIT_REVINCLUDES]
    if not entry["searchRevInclude"]:
        del entry["searchRevInclude"]
    if resource_type == "AuditEvent":  # the access log: what its view answers (fhir/audit_view.py)
        entry["searchInclude"] = ["*", *(f"AuditEvent:{code}" for code in sorted(audit_view.INCLUDES))]
        del entry["searchRevInclude"]  # none (an empty array is not valid FHIR)
        entry["documentation"] = ("The access log: AuditEvents rendered from the journal of every access, with the "
                                  "ones other systems sent; newest first (_sort=date or -date only)")
    if resource_type == "Subscription":  # fhirportal/subscriptions
        entry["documentation"] = ("R4 criteria-based Subscriptions, rest-hook channel only (payload none or "
                                  "application/fhir+json), to endpoints the server's administrator allows; "
                                  "user/ and system/ tokens only")
    if resource_type in SCHEDULING:  # fhirportal/scheduling
        entry["documentation"] = SCHEDULING[resource_type]
    profiles = us_core.profiles(resource_type)
    if profiles:
        entry["supportedProfile"] = profiles
    combinations = _combinations(ctx, resource_type)
    if combinations:
        entry["extension"] = combinations
    operations = [
        {"name": op.name, "definition": op.definition["url"]} for op in ctx.operations.for_type(resource_type)
    ]
    if operations:
        entry["operation"] = operations
    return entry


CONFORMANCE_TYPES = ("OperationDefinition", "SearchParameter", "StructureDefinition")
LIST_SEARCH_PARAM = {"name": "_list", "type": "special",
                     "documentation": "_list=id: the resources of this type that are entries of List/id (a List the "
                                      "token may see; functional lists such as $current-problems are not supported)"}
CONTAINED_SEARCH_PARAMS = (
    {"name": "_contained", "type": "special",
     "documentation": "false (default): top-level resources only; true: the resources of this type contained in "
                      "others (the token must see the container); both. Not with _sort, _include, _revinclude, "
                      "chains, _has, _list or _lastUpdated"},
    {"name": "_containedType", "type": "special",
     "documentation": "container (default): the entries are the containers; contained: the contained resources, "
                      "fullUrl [base]/[ContainerType]/[id]#[contained id]"},
)
AUDIT_REVINCLUDES = frozenset({"AuditEvent:patient", "AuditEvent:agent", "AuditEvent:entity"})


def _terminology_entry(ctx: FhirContext, resource_type: str) -> dict:
    """CodeSystem, ValueSet, ConceptMap: read and search from memory (no token), and their operations."""
    entry = {"type": resource_type, "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
             "documentation": "The FHIR R4 (4.0.1) and US Core 6.1.0 resources of this type, read-only; no token "
                              "needed",
             "interaction": [{"code": "read"}, {"code": "search-type"}],
             "searchParam": [{"name": code, "definition": SEARCH_PARAMETER_URLS[code], "type": kind}
                             for code, (kind, _) in sorted(SEARCH_PARAMETERS.items())]}
    operations = [{"name": op.name, "definition": op.definition["url"]} for op in ctx.operations.for_type(resource_type)
                  if "Resource" not in op.resource_types]
    if operations:
        entry["operation"] = operations
    return entry
OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def security(ctx: FhirContext) -> dict:
    """rest.security: every request but the conformance reads and the terminology needs a SMART bearer token."""
    parts = urlsplit(ctx.base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return {
        "cors": True,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}], "text": "OAuth2 using SMART-on-FHIR profile"}],
        "description": "Every request except GET metadata, the conformance resources (OperationDefinition, "
                       "SearchParameter, StructureDefinition: read and search) and the terminology (CodeSystem, "
                       "ValueSet, ConceptMap and their operations) needs "
                       "Authorization: Bearer <access token> (SMART App Launch 2 scopes; patient/ tokens "
                       "reach their patient's compartment only). See .well-known/smart-configuration.",
        "extension": [{"url": OAUTH_URIS_EXTENSION, "extension": [
            {"url": name, "valueUri": origin + path} for name, path in OAUTH_ENDPOINTS.items()]}],
    }


def _resources(ctx: FhirContext) -> list[dict]:
    """``rest.resource``, built once per set of pending parameters and then shared (read-only)."""
    pending = ctx.search_parameters.readiness.pending() if ctx.search_parameters.readiness else frozenset()
    cache = ctx.capability_cache
    if cache.get("pending") != pending or "resources" not in cache:
        all_references = _references(ctx)
        resources = [_resource_entry(ctx, t, all_references) for t in sorted(ctx.resource_types)]
        resources += [{"type": t, "profile": f"http://hl7.org/fhir/StructureDefinition/{t}",
                       "documentation": "The definitions this server uses and serves, read-only; no token needed",
                       "interaction": [{"code": "read"}, {"code": "search-type"}],
                       "searchParam": [{"name": code, "definition": SEARCH_PARAMETER_URLS[code], "type": kind}
                                       for code, (kind, _) in sorted(SEARCH_PARAMETERS.items())]}
                      for t in CONFORMANCE_TYPES]
        resources += [_terminology_entry(ctx, t) for t in TERMINOLOGY_TYPES]
        cache.update(pending=pending, resources=sorted(resources, key=lambda r: r["type"]))
    return cache["resources"]


def capability_statement(ctx: FhirContext) -> dict:
    statement = copy.deepcopy(load_template())
    statement["date"] = clock.as_instant(clock.now())
    statement["software"]["version"] = _software_version()
    statement["implementation"]["url"] = ctx.base_url
    statement["instantiates"] = sorted({*statement.get("instantiates", []), us_core.SERVER_STATEMENT})
    rest = statement["rest"][0]
    rest["security"] = security(ctx)
    rest["resource"] = _resources(ctx)
    system_ops = [{"name": op.name, "definition": op.definition["url"]} for op in ctx.operations
                  if "system" in op.levels]
    if system_ops:
        rest["operation"] = system_ops
    return statement
