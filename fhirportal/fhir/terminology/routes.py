"""The terminology endpoints: ``CodeSystem``, ``ValueSet`` and ``ConceptMap`` read and search, and
the operations on them (``$expand``, ``$validate-code``, ``$lookup``, ``$subsumes``).

Public like the other conformance resources: no token is asked for, nothing is journalled (they
tell what codes mean, never anything of a patient). They are served from memory and read-only:
a write is a 405 saying where they come from. The paths are static, so they take precedence over
the FHIR API's generic ``/<resource_type>/…`` routes.
"""

from __future__ import annotations

import json

from flask import Blueprint, request

from fhirportal.errors import BadRequest, MethodNotAllowed, NotFound

from ..interactions.history import page_size
from ..interactions.search import request_params
from ..response import FhirResponse
from ..routes import answer, context
from ..search_params import SUMMARY_MODES, handling_is_strict
from ..subsetting import elements, summary
from . import resources

READ_ONLY = ("The {type} resources of this server come from the packages it loads (FHIR R4 4.0.1 and US Core "
             "6.1.0) and cannot be changed through the API")


def _answer(result: FhirResponse):
    """Render ``result``, its body serialised by ``json`` at once (code systems and expansions hold
    thousands of small objects, which the generic renderer would walk one by one)."""
    if isinstance(result.body, dict):
        result.body = json.dumps(result.body, ensure_ascii=False, separators=(",", ":"))
    return answer(result)


def _operation(resource_type: str, fhir_id: str | None, name: str):
    ctx = context()
    operation = ctx.operations.resolve(name, request.method, "instance" if fhir_id else "type", resource_type)
    return _answer(operation.handler(ctx, request, None, resource_type, fhir_id))


def _read_only(resource_type: str, allow: str):
    raise MethodNotAllowed(READ_ONLY.format(type=resource_type), headers={"Allow": allow})


def _search(resource_type: str):
    ctx = context()
    params = request_params(ctx, request)
    strict = handling_is_strict(request.headers.get("Prefer"), ctx.settings.search_handling)
    count = page_size(ctx, request, params)
    return _answer(FhirResponse(200, resources.search(resource_type, params, ctx.base_url, count, strict=strict)))


def build_blueprint(base_path: str) -> Blueprint:
    bp = Blueprint("fhir_terminology", __name__, url_prefix=base_path)
    for resource_type in resources.TERMINOLOGY_TYPES:
        _add_routes(bp, resource_type)
    return bp


def _add_routes(bp: Blueprint, resource_type: str) -> None:
    def type_level():
        if request.method == "GET":
            return _search(resource_type)
        _read_only(resource_type, "GET")

    def type_search():
        return _search(resource_type)

    def instance(fhir_id: str):
        if fhir_id.startswith("$"):
            return _operation(resource_type, None, fhir_id[1:])
        if request.method != "GET":
            _read_only(resource_type, "GET")
        found = resources.read(resource_type, fhir_id)
        names = [e.strip() for e in request.args.get("_elements", "").split(",") if e.strip()]
        mode = request.args.get("_summary", "false")
        if mode not in SUMMARY_MODES:
            raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}", expression="_summary")
        return _answer(FhirResponse(200, elements(found, names) if names else summary(found, mode)))

    def instance_operation(fhir_id: str, operation: str):
        if not operation.startswith("$"):
            raise NotFound(f"No such endpoint: {resource_type}/{fhir_id}/{operation} (terminology resources have "
                           f"no history here)")
        return _operation(resource_type, fhir_id, operation[1:])

    name = resource_type.lower()
    bp.add_url_rule(f"/{resource_type}", f"{name}_type", type_level, methods=["GET", "POST", "PUT", "DELETE"])
    bp.add_url_rule(f"/{resource_type}/_search", f"{name}_search", type_search, methods=["POST"])
    bp.add_url_rule(f"/{resource_type}/<fhir_id>", f"{name}_instance", instance,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    bp.add_url_rule(f"/{resource_type}/<fhir_id>/<operation>", f"{name}_operation", instance_operation,
                    methods=["GET", "POST"])
