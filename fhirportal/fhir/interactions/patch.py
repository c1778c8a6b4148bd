"""patch: ``PATCH [type]/[id]`` with a JSON Patch (RFC 6902) document."""

from __future__ import annotations

import jsonpatch
from flask import Request

from fhirportal.errors import BadRequest, Unprocessable

from ..authorization import Authorization
from ..context import FhirContext
from ..negotiation import JSON_PATCH, json_body
from ..preconditions import parse_etag
from ..response import FhirResponse
from ..validation import check_id
from ..writes import Writer
from .common import require_type, written

_PROTECTED = ("/resourceType", "/id")


def parse_patch(document) -> jsonpatch.JsonPatch:
    if not isinstance(document, list):
        raise BadRequest("A JSON Patch body is an array of operations")
    for position, op in enumerate(document):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"Patch operation {position} needs 'op' and 'path'", expression=f"[{position}]")
        if op["op"] in ("remove", "replace", "move", "add") and op["path"] in _PROTECTED:
            raise Unprocessable(f"Patch operation {position} may not change {op['path']}",
                                expression=f"[{position}]")
    try:
        return jsonpatch.JsonPatch(document)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid JSON Patch: {exc}") from exc  # e.g. a path or from that is not a JSON Pointer


def patch(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "patch")
    check_id(fhir_id)
    operations = parse_patch(json_body(request, (JSON_PATCH,)))
    expected = parse_etag(request.headers.get("If-Match"))
    with ctx.database.write() as conn:
        writer = Writer(ctx, conn, auth=auth)
        result = writer.patch(resource_type, fhir_id, operations, expected)
    ctx.committed(writer.written)
    return written(ctx, request, result)
