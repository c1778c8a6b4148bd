"""update: ``PUT [type]/[id]`` (update-as-create allowed) and conditional ``PUT [type]?criteria``."""

from __future__ import annotations

from flask import Request

from ..authorization import Authorization
from ..context import FhirContext
from ..negotiation import resource_body
from ..preconditions import parse_etag
from ..response import FhirResponse
from ..validation import check_id
from ..writes import Writer
from .common import check_body_type, require_type, written


def update(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "update")
    check_id(fhir_id)
    body = check_body_type(resource_body(request), resource_type)
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        writer = Writer(ctx, conn, auth=auth)
        result = writer.update(resource_type, fhir_id, body, expected)
    ctx.committed(writer.written)
    return written(ctx, request, result)


def conditional_update(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "update")
    body = check_body_type(resource_body(request), resource_type)
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        writer = Writer(ctx, conn, auth=auth)
        result = writer.conditional_update(resource_type, request.query_string.decode(), body, expected)
    ctx.committed(writer.written)
    return written(ctx, request, result)
