"""``CodeSystem/$lookup``: a concept's display, designations and properties."""

from __future__ import annotations

from flask import Request

from ..authorization import Authorization
from ..context import FhirContext
from ..response import FhirResponse
from ..terminology import terminology
from .coded import system_and_code
from .parameters import operation_input


def lookup(ctx: FhirContext, request: Request, auth: Authorization | None, resource_type: str,
           fhir_id: str | None) -> FhirResponse:
    given = operation_input(request, ctx.operations.definition("CodeSystem-lookup"), ctx.settings.max_query_bytes)
    system, code = system_and_code(given, "code", "coding", given.get("system"))
    version = given.get("version") or (given.get("coding") or {}).get("version")
    return FhirResponse(200, terminology().lookup(system, code, version, given.all("property") or None))
