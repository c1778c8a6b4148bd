"""``ValueSet/$expand`` and ``ValueSet/{id}/$expand``: a value set's codes (see ``fhirportal.fhir.terminology``)."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest

from ..authorization import Authorization
from ..context import FhirContext
from ..response import FhirResponse
from ..terminology import terminology
from ..terminology.resources import canonical_of
from .parameters import operation_input


def expand(ctx: FhirContext, request: Request, auth: Authorization | None, resource_type: str,
           fhir_id: str | None) -> FhirResponse:
    given = operation_input(request, ctx.operations.definition("ValueSet-expand"), ctx.settings.max_query_bytes)
    url = canonical_of("ValueSet", fhir_id, given.get("url"))
    if not url:
        raise BadRequest("$expand needs the value set's url (or ValueSet/{id}/$expand)", expression="url")
    result = terminology().expand(url, filter=given.get("filter"), count=given.get("count"),
                                  offset=given.get("offset"))
    return FhirResponse(200, result)
