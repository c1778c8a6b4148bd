"""``$validate``: check a resource as a create/update would, without storing it."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, FhirError

from ..authorization import Authorization
from ..context import FhirContext
from ..negotiation import resource_body
from ..outcome import from_fhir_error, information
from ..response import FhirResponse


def _resource_from(body) -> dict:
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter", []):
            if parameter.get("name") == "resource" and isinstance(parameter.get("resource"), dict):
                return parameter["resource"]
        raise BadRequest("Parameters has no 'resource' parameter to validate", expression="Parameters.parameter")
    if not isinstance(body, dict):
        raise BadRequest("The body must be a resource or a Parameters resource")
    return body


def validate(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str,
             fhir_id: str | None) -> FhirResponse:
    auth.require_any_scope("$validate")
    resource = _resource_from(resource_body(request))
    if resource.get("resourceType") != resource_type:
        raise BadRequest(f"$validate on {resource_type} got a {resource.get('resourceType')}",
                         expression="resourceType")
    try:
        with ctx.database.read() as conn:
            self_reference = (resource_type, fhir_id) if fhir_id else None
            ctx.validate(conn, resource, self_reference=self_reference)
    except FhirError as error:
        outcome = from_fhir_error(error)
        return FhirResponse(200 if error.status == 422 else error.status, outcome.body)
    return FhirResponse(200, information("The resource is valid", code="informational"))
