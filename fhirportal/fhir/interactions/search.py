"""search: ``GET [type]?…`` and ``POST [type]/_search`` returning a searchset Bundle.

Unknown or unsupported parameters are ignored (and left out of the ``self`` link) unless the client
sends ``Prefer: handling=strict``, which makes them a 400.
"""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest

from ..bundles import bundle, link, search_entry
from ..context import FhirContext
from ..negotiation import require_body_type
from ..response import FhirResponse
from ..search_params import handling_is_strict, parse_criteria
from .common import require_type
from .history import page_size

FORM = "application/x-www-form-urlencoded"


def search(ctx: FhirContext, request: Request, resource_type: str) -> FhirResponse:
    require_type(ctx, resource_type)
    params = list(request.args.items(multi=True))
    if request.method == "POST":
        require_body_type(request, (FORM,))
        params += list(request.form.items(multi=True))
    strict = handling_is_strict(request.headers.get("Prefer"))
    criteria, ignored = parse_criteria(ctx.search_parameters, resource_type, params, strict=strict)
    count = page_size(ctx, request)
    cursor = next((v for k, v in params if k == "_cursor"), None)
    total_mode = next((v for k, v in params if k == "_total"), "none")
    with ctx.database.read() as conn:
        try:
            records, next_cursor = ctx.repository.search(conn, resource_type, criteria, count=max(count, 1),
                                                         cursor=cursor)
        except ValueError as exc:
            raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
        total = ctx.repository.count(conn, resource_type, criteria) if total_mode == "accurate" or count == 0 \
            else None
    kept = [(k, v) for k, v in params if k not in ignored and k not in ("_cursor", "_format", "_pretty")]
    links = {"self": link(ctx.base_url, resource_type, kept + ([("_cursor", cursor)] if cursor else []))}
    if cursor:
        links["first"] = link(ctx.base_url, resource_type, kept)
    if next_cursor and count > 0:
        links["next"] = link(ctx.base_url, resource_type, kept + [("_cursor", next_cursor)])
    entries = [] if count == 0 else [search_entry(ctx.base_url, r) for r in records]
    return FhirResponse(200, bundle("searchset", entries, links, total))
