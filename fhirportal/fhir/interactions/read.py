"""read and vread: ``GET [type]/[id]`` and ``GET [type]/[id]/_history/[vid]``."""

from __future__ import annotations

from flask import Request
from sqlalchemy import Connection

from fhirportal.errors import NotFound

from .. import audit_events, audit_view
from ..authorization import Authorization
from ..context import FhirContext
from ..preconditions import not_modified, version_headers
from ..response import FhirResponse
from ..validation import check_id
from .common import reading, require_type


def read(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str, fhir_id: str,
         conn: Connection | None = None) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "read")
    check_id(fhir_id)
    with reading(ctx, conn) as conn:
        if resource_type == "AuditEvent":  # the access log's, or a stored one as the token may see it
            record = audit_view.read(ctx, conn, auth, fhir_id)
        else:
            record = ctx.repository.read(conn, resource_type, fhir_id, visibility=auth.visibility("read"))
    headers = version_headers(record, ctx.base_url)
    if not_modified(record, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
        return FhirResponse(304, None, headers)
    return FhirResponse(200, record.content, headers)


def vread(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str, fhir_id: str,
          version: str, conn: Connection | None = None) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "vread")
    check_id(fhir_id)
    if not version.isdigit() or len(version) > 9:
        raise NotFound(f"'{version}' is not a version of {resource_type}/{fhir_id}")
    with reading(ctx, conn) as conn:
        if resource_type == "AuditEvent" and audit_events.journal_id(fhir_id) is not None:
            record = audit_view.read(ctx, conn, auth, fhir_id, "vread")
            if version != "1":
                raise NotFound(f"'{version}' is not a version of {resource_type}/{fhir_id}")
        else:
            record = ctx.repository.vread(conn, resource_type, fhir_id, int(version),
                                          visibility=auth.visibility("vread"))
    return FhirResponse(200, record.content, version_headers(record, ctx.base_url))
