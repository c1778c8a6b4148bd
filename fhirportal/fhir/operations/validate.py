"""``$validate``: check a resource as a create/update would, without storing it; ``profile`` (a query
parameter or a Parameters entry, repeatable) also checks it against those profiles (an unknown one is a
400: the client asked for a check this server cannot make)."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, FhirError

from .. import profile_check
from ..authorization import Authorization
from ..context import FhirContext
from ..negotiation import resource_body
from ..outcome import from_fhir_error, information
from ..profiles import UnknownProfile
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


def _profiles_from(request: Request, body) -> list[str]:
    profiles = list(request.args.getlist("profile"))
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter", []):
            if isinstance(parameter, dict) and parameter.get("name") == "profile":
                value = parameter.get("valueUri") or parameter.get("valueCanonical") or parameter.get("valueString")
                if not isinstance(value, str):
                    raise BadRequest("The profile parameter takes a canonical url", expression="Parameters.parameter")
                profiles.append(value)
    return profiles


def validate(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str,
             fhir_id: str | None) -> FhirResponse:
    auth.require_any_scope("$validate")
    body = resource_body(request)
    resource = _resource_from(body)
    profiles = _profiles_from(request, body)
    for url in profiles:
        if not profile_check.known(url):
            raise UnknownProfile(url)
    if resource.get("resourceType") != resource_type:
        raise BadRequest(f"$validate on {resource_type} got a {resource.get('resourceType')}",
                         expression="resourceType")
    try:
        with ctx.database.read() as conn:
            self_reference = (resource_type, fhir_id) if fhir_id else None
            ctx.validate(conn, resource, self_reference=self_reference, profiles=profiles)
    except FhirError as error:
        outcome = from_fhir_error(error)
        return FhirResponse(200 if error.status == 422 else error.status, outcome.body)
    return FhirResponse(200, information("The resource is valid", code="informational"))
