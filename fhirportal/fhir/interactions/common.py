"""Pieces the interactions share: body checks, ``Prefer: return``, version-aware responses."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from flask import Request
from sqlalchemy import Connection

from fhirportal.errors import BadRequest, NotFound

from ..context import FhirContext
from ..outcome import information
from ..preconditions import version_headers
from ..response import FhirResponse
from ..writes import WriteResult


def reading(ctx: FhirContext, conn: Connection | None) -> AbstractContextManager[Connection]:
    """The request's open read transaction if the router gave one, else a new one."""
    return nullcontext(conn) if conn is not None else ctx.database.read()


def require_type(ctx: FhirContext, resource_type: str) -> None:
    if resource_type not in ctx.resource_types:
        raise NotFound(f"Resource type '{resource_type}' is not supported by this server",
                       expression=resource_type)


def check_body_type(body, resource_type: str) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object holding a FHIR resource")
    actual = body.get("resourceType")
    if actual != resource_type:
        raise BadRequest(f"The body holds a {actual or 'resource without resourceType'}, but the URL is for "
                         f"{resource_type}", expression="resourceType")
    return body


def prefer_return(request: Request) -> str:
    for part in (request.headers.get("Prefer") or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
            return value
    return "representation"


def shaped_body(result: WriteResult, preference: str) -> dict | str | None:
    """What a create/update/patch answers with, by ``Prefer: return``."""
    if preference == "minimal":
        return None
    if preference == "OperationOutcome":
        return information(result.message)
    return result.record.content


def written(ctx: FhirContext, request: Request, result: WriteResult) -> FhirResponse:
    headers = version_headers(result.record, ctx.base_url, location=True)
    return FhirResponse(result.status, shaped_body(result, prefer_return(request)), headers)
