"""delete: ``DELETE [type]/[id]`` and conditional ``DELETE [type]?criteria`` (single match)."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import PreconditionFailed

from ..context import FhirContext
from ..outcome import information
from ..preconditions import etag, parse_etag
from ..response import FhirResponse
from ..validation import check_id
from .common import require_type
from .create import conditional_criteria


def _answer(record, what: str) -> FhirResponse:
    if record is None:
        return FhirResponse(200, information(f"{what}: nothing to delete"))
    return FhirResponse(200, information(f"Deleted {record.reference}"), {"ETag": etag(record.version_id)})


def delete(ctx: FhirContext, request: Request, resource_type: str, fhir_id: str) -> FhirResponse:
    require_type(ctx, resource_type)
    check_id(fhir_id)
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        record = ctx.repository.delete(conn, resource_type, fhir_id, expected_version=expected)
    return _answer(record, f"{resource_type}/{fhir_id}")


def conditional_delete(ctx: FhirContext, request: Request, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    criteria = conditional_criteria(ctx, resource_type, request.query_string.decode(), "Conditional delete")
    with ctx.database.write() as conn:
        ctx.repository.lock_criteria(conn, resource_type, criteria)
        matches = ctx.repository.search_ids(conn, resource_type, criteria, limit=2)
        if len(matches) > 1:
            raise PreconditionFailed(f"The criteria match more than one {resource_type}; be more specific")
        record = ctx.repository.delete(conn, resource_type, matches[0]) if matches else None
    return _answer(record, f"No {resource_type} matches")
