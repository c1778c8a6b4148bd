"""create: ``POST [type]``, conditional with ``If-None-Exist``."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request

from fhirportal.errors import BadRequest, PreconditionFailed

from ..context import FhirContext
from ..negotiation import json_body
from ..preconditions import version_headers
from ..response import FhirResponse
from ..search_params import parse_criteria
from .common import check_body_type, require_type, written


def create(ctx: FhirContext, request: Request, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    body = check_body_type(json_body(request), resource_type)
    body = {k: v for k, v in body.items() if k != "id"}  # the server assigns ids on create
    condition = request.headers.get("If-None-Exist")
    with ctx.database.write() as conn:
        if condition:
            criteria = conditional_criteria(ctx, resource_type, condition, "If-None-Exist")
            ctx.repository.lock_criteria(conn, resource_type, criteria)
            matches = ctx.repository.search_ids(conn, resource_type, criteria, limit=2)
            if len(matches) > 1:
                raise PreconditionFailed(f"If-None-Exist '{condition}' matches more than one {resource_type}")
            if matches:
                existing = ctx.repository.read(conn, resource_type, matches[0])
                return FhirResponse(200, existing.content, version_headers(existing, ctx.base_url, location=True))
        ctx.validate(conn, body)
        record = ctx.repository.create(conn, body)
    return written(ctx, request, record, 201, f"Created {record.reference}")


def conditional_criteria(ctx: FhirContext, resource_type: str, query: str, where: str):
    """Criteria of a conditional interaction: always strict (an ignored parameter would widen the match)."""
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise BadRequest(f"{where} needs search criteria", expression=where)
    criteria, _ = parse_criteria(ctx.search_parameters, resource_type, pairs, strict=True)
    if not criteria:
        raise BadRequest(f"{where} needs search criteria, not only result parameters", expression=where)
    return criteria
