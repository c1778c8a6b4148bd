"""``ValueSet/$validate-code`` and ``CodeSystem/$validate-code`` (type and instance level): is a
code (system and code, a Coding, or any coding of a CodeableConcept) valid, and its display?"""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, NotSupported

from ..authorization import Authorization
from ..context import FhirContext
from ..response import FhirResponse
from ..terminology import terminology
from ..terminology.resources import canonical_of
from .coded import system_and_code
from .parameters import OperationInput, operation_input


def _codings(given: OperationInput, system: str | None) -> list[tuple[str, str, str | None]]:
    """(system, code, display) of every coding the request asks about."""
    concept = given.get("codeableConcept")
    if concept is not None:
        if given.has("code") or given.has("coding"):
            raise BadRequest("Give a code, a coding or a codeableConcept, not several", expression="codeableConcept")
        if not concept["coding"]:
            raise BadRequest("The codeableConcept has no coding to validate", expression="codeableConcept")
        codings = []
        for coding in concept["coding"]:
            one = OperationInput({"coding": [coding]})
            codings.append((*system_and_code(one, "code", "coding", system), coding.get("display")))
        return codings
    found_system, code = system_and_code(given, "code", "coding", system)
    return [(found_system, code, given.get("display") or (given.get("coding") or {}).get("display"))]


def _answer(codings: list[tuple[str, str, str | None]], url: str | None) -> FhirResponse:
    """Valid when any coding is; otherwise why not (or NotSupported when this server cannot tell)."""
    reasons: list[str] = []
    unknown: NotSupported | None = None
    for system, code, display in codings:
        try:
            valid, message = terminology().validate_code(url=url, system=system, code=code, display=display)
        except NotSupported as error:
            unknown = unknown or error
            continue
        if valid:
            return FhirResponse(200, {"resourceType": "Parameters", "parameter": [
                {"name": "result", "valueBoolean": True}, {"name": "display", "valueString": message}]})
        reasons.append(message)
    if unknown is not None:
        raise unknown
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": [
        {"name": "result", "valueBoolean": False}, {"name": "message", "valueString": "; ".join(reasons)}]})


def valueset_validate_code(ctx: FhirContext, request: Request, auth: Authorization | None, resource_type: str,
                           fhir_id: str | None) -> FhirResponse:
    given = operation_input(request, ctx.operations.definition("ValueSet-validate-code"),
                            ctx.settings.max_query_bytes)
    url = canonical_of("ValueSet", fhir_id, given.get("url"))
    if not url:
        raise BadRequest("$validate-code on ValueSet needs the value set's url", expression="url")
    terminology().value_set(url)  # 404 before anything else
    return _answer(_codings(given, given.get("system")), url)


def codesystem_validate_code(ctx: FhirContext, request: Request, auth: Authorization | None, resource_type: str,
                             fhir_id: str | None) -> FhirResponse:
    given = operation_input(request, ctx.operations.definition("CodeSystem-validate-code"),
                            ctx.settings.max_query_bytes)
    system = canonical_of("CodeSystem", fhir_id, given.get("url"))
    codings = _codings(given, system)
    for found, _, _ in codings:
        terminology().code_system(found, given.get("version"))  # 404 for an unknown system or version
    return _answer(codings, None)
