"""update: ``PUT [type]/[id]`` (update-as-create allowed) and conditional ``PUT [type]?criteria``."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, PreconditionFailed

from ..context import FhirContext
from ..negotiation import json_body
from ..preconditions import parse_etag
from ..response import FhirResponse
from ..validation import check_id
from .common import check_body_type, require_type, written
from .create import conditional_criteria


def update(ctx: FhirContext, request: Request, resource_type: str, fhir_id: str) -> FhirResponse:
    require_type(ctx, resource_type)
    check_id(fhir_id)
    body = check_body_type(json_body(request), resource_type)
    if body.get("id") is None:
        raise BadRequest("The resource in an update must carry its id", expression=f"{resource_type}.id")
    if body.get("id") != fhir_id:
        raise BadRequest(f"The id in the body ({body.get('id')}) does not match the URL ({fhir_id})",
                         expression=f"{resource_type}.id")
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        ctx.validate(conn, body, self_reference=(resource_type, fhir_id))
        record, created = ctx.repository.update(conn, resource_type, fhir_id, body, expected_version=expected)
    return written(ctx, request, record, 201 if created else 200,
                   f"{'Created' if created else 'Updated'} {record.reference} version {record.version_id}")


def conditional_update(ctx: FhirContext, request: Request, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    body = check_body_type(json_body(request), resource_type)
    criteria = conditional_criteria(ctx, resource_type, request.query_string.decode(), "the search criteria")
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        ctx.repository.lock_criteria(conn, resource_type, criteria)
        matches = ctx.repository.search_ids(conn, resource_type, criteria, limit=2)
        if len(matches) > 1:
            raise PreconditionFailed(f"The criteria match more than one {resource_type}; be more specific")
        if matches:
            fhir_id = matches[0]
            if body.get("id") not in (None, fhir_id):
                raise BadRequest(f"The body's id ({body['id']}) is not the id of the matching resource ({fhir_id})",
                                 expression=f"{resource_type}.id")
        else:
            fhir_id = body.get("id")
            if fhir_id is not None:
                check_id(fhir_id, f"{resource_type}.id")
        body = dict(body)
        if fhir_id is None:
            body.pop("id", None)
            ctx.validate(conn, body)
            record, created = ctx.repository.create(conn, body), True
        else:
            body["id"] = fhir_id
            ctx.validate(conn, body, self_reference=(resource_type, fhir_id))
            record, created = ctx.repository.update(conn, resource_type, fhir_id, body, expected_version=expected)
    return written(ctx, request, record, 201 if created else 200,
                   f"{'Created' if created else 'Updated'} {record.reference} version {record.version_id}")
