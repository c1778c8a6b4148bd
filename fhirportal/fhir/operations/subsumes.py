"""``CodeSystem/$subsumes`` and ``CodeSystem/{id}/$subsumes``: how two codes relate in a hierarchy."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest

from ..authorization import Authorization
from ..context import FhirContext
from ..response import FhirResponse
from ..terminology import terminology
from ..terminology.resources import canonical_of
from .coded import system_and_code
from .parameters import operation_input


def subsumes(ctx: FhirContext, request: Request, auth: Authorization | None, resource_type: str,
             fhir_id: str | None) -> FhirResponse:
    given = operation_input(request, ctx.operations.definition("CodeSystem-subsumes"), ctx.settings.max_query_bytes)
    system = canonical_of("CodeSystem", fhir_id, given.get("system"), "system")
    system_a, code_a = system_and_code(given, "codeA", "codingA", system)
    system_b, code_b = system_and_code(given, "codeB", "codingB", system)
    if system_a != system_b:
        raise BadRequest(f"$subsumes compares codes of one code system, not {system_a} and {system_b}",
                         expression="codingB")
    terminology().code_system(system_a, given.get("version"))  # NotFound for another version
    outcome = terminology().subsumes(system_a, code_a, code_b)
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": outcome}]})
