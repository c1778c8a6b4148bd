"""delete: ``DELETE [type]/[id]`` and conditional ``DELETE [type]?criteria`` (single match)."""

from __future__ import annotations

from flask import Request

from ..authorization import Authorization
from ..context import FhirContext
from ..outcome import information
from ..preconditions import etag, parse_etag
from ..response import FhirResponse
from ..validation import check_id
from ..writes import Writer, WriteResult
from .common import require_type


def _answer(result: WriteResult) -> FhirResponse:
    headers = {"ETag": etag(result.record.version_id)} if result.record else {}
    return FhirResponse(200, information(result.message), headers)


def delete(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "delete")
    check_id(fhir_id)
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        return _answer(Writer(ctx, conn, auth=auth).delete(resource_type, fhir_id, expected))


def conditional_delete(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "delete")
    with ctx.database.write() as conn:
        return _answer(Writer(ctx, conn, auth=auth).conditional_delete(resource_type, request.query_string.decode()))
