"""create: ``POST [type]``, conditional with ``If-None-Exist``."""

from __future__ import annotations

from flask import Request

from ..authorization import Authorization
from ..context import FhirContext
from ..negotiation import resource_body
from ..response import FhirResponse
from ..writes import Writer
from .common import check_body_type, require_type, written


def create(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "create")
    body = check_body_type(resource_body(request), resource_type)
    with ctx.database.write() as conn:
        writer = Writer(ctx, conn, auth=auth)
        result = writer.create(resource_type, body, request.headers.get("If-None-Exist"))
    ctx.committed(writer.written)
    return written(ctx, request, result)
