"""search: ``GET [type]?…``, ``POST [type]/_search`` and ``GET [base]?_type=…`` returning a searchset
Bundle with match and include entries, keyset paging links and the requested total.

Unknown or unsupported parameters are a 400 naming them (``FHIRPORTAL_SEARCH_HANDLING=strict``, the
default), unless the client sends ``Prefer: handling=lenient`` (or the server is configured lenient):
then they are ignored and left out of the ``self`` link. ``_contained=true|both`` searches contained
resources (``search_contained``).
"""

from __future__ import annotations

from flask import Request
from sqlalchemy import Connection

from fhirportal.errors import BadRequest
from fhirportal.store.records import SearchPage

from .. import audit_view
from ..authorization import Authorization
from ..bundles import bundle, link, search_entry
from ..context import FhirContext
from ..negotiation import require_body_type, require_short_query, small_form
from ..response import FhirResponse
from ..search_params import handling_is_strict, parse_search, split_or
from ..subsetting import subset_text
from . import search_contained
from .common import reading, require_type
from .history import page_size

FORM = "application/x-www-form-urlencoded"
_NOT_IN_LINKS = ("_cursor", "_format", "_pretty")


def request_params(ctx: FhirContext, request: Request) -> list[tuple[str, str]]:
    """The query string's parameters and, for POST _search, the form body's (each within the query length
    limit: 414 for the query string, 413 for the body)."""
    require_short_query(request, ctx.settings.max_query_bytes)
    params = list(request.args.items(multi=True))
    if request.method == "POST":
        require_body_type(request, (FORM,))
        params += list(small_form(request, ctx.settings.max_query_bytes).items(multi=True))
    return params


def search(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str,
           conn: Connection | None = None) -> FhirResponse:
    require_type(ctx, resource_type)
    auth.require(resource_type, "search-type")
    return run_search(ctx, request, auth, [resource_type], request_params(ctx, request), resource_type, conn)


def system_search(ctx: FhirContext, request: Request, auth: Authorization,
                  conn: Connection | None = None) -> FhirResponse:
    params = request_params(ctx, request)
    requested = [t for value in (v for k, v in params if k == "_type") for t in split_or(value)]
    if not requested:
        raise BadRequest("A search across types needs _type (e.g. _type=Patient,Practitioner)", expression="_type")
    for resource_type in requested:
        require_type(ctx, resource_type)
    for resource_type in requested:
        auth.require(resource_type, "search-type")
    return run_search(ctx, request, auth, requested, params, "", conn)


def _resources(ctx: FhirContext, auth: Authorization, resource_types: list[str], parsed, count: int,
               cursor: str | None, conn: Connection | None):
    """A page of stored resources, and the total when asked."""
    visibility = auth.visibility("search-type")
    with reading(ctx, conn) as conn:
        try:
            page = ctx.repository.search(conn, resource_types, parsed.criteria, sort=parsed.sort,
                                         count=max(count, 1), cursor=cursor, include=parsed.include,
                                         visibility=visibility, include_visibility=auth.visibility("read"),
                                         include_iterations=ctx.settings.max_include_iterations)
        except ValueError as exc:
            raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
        logged = audit_view.revincluded(ctx, conn, auth, page.matches, parsed.include)  # the access log's
        page = SearchPage(page.matches, page.next_cursor, [*audit_view.as_seen(auth, page.included), *logged])
        total = None
        if parsed.total == "estimate" and count > 0:
            total = ctx.repository.estimate(conn, resource_types, parsed.criteria, visibility=visibility)
        elif parsed.total == "accurate" or count == 0:  # _summary=count and _count=0 ask for the count itself
            total = ctx.repository.count(conn, resource_types, parsed.criteria, visibility=visibility)
    return page, total


def _audit_events(ctx: FhirContext, auth: Authorization, resource_types: list[str], parsed, count: int,
                  cursor: str | None, conn: Connection | None):
    """AuditEvents come from the access log, in time order (``audit_view``): searched on their own."""
    if len(resource_types) > 1:
        raise BadRequest("AuditEvent is searched on its own (the access log is paged in time order), not with "
                         "other types in _type", expression="_type")
    with reading(ctx, conn) as conn:
        try:
            return audit_view.search(ctx, conn, auth, parsed.criteria, parsed.sort, count=max(count, 1),
                                     cursor=cursor, total="accurate" if count == 0 else parsed.total,
                                     include=parsed.include)
        except ValueError as exc:
            raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc


def run_search(ctx: FhirContext, request: Request, auth: Authorization, resource_types: list[str],
               params: list[tuple[str, str]], path: str, conn: Connection | None = None) -> FhirResponse:
    """The matches ``auth`` may search, and of what they include only what it may read."""
    strict = handling_is_strict(request.headers.get("Prefer"), ctx.settings.search_handling)
    parsed = parse_search(ctx.search_parameters, resource_types, params, strict=strict,
                          max_includes=ctx.settings.max_includes)
    count = 0 if parsed.summary == "count" else page_size(ctx, request, params)
    cursor = next((v for k, v in params if k == "_cursor"), None)
    if parsed.contained != "false":
        entries, next_cursor, total = search_contained.page(ctx, auth, resource_types[0], parsed, count, cursor,
                                                            conn)
    else:
        if "AuditEvent" in resource_types:
            page, total = _audit_events(ctx, auth, resource_types, parsed, count, cursor, conn)
        else:
            page, total = _resources(ctx, auth, resource_types, parsed, count, cursor, conn)
        next_cursor, entries = page.next_cursor, []
        if count > 0:
            entries = [search_entry(ctx.base_url, r, "match", subset_text(r.content, parsed.summary, parsed.elements))
                       for r in page.matches]
            entries += [search_entry(ctx.base_url, r, "include") for r in page.included]
    kept = [(k, v) for k, v in params if k not in parsed.ignored and k not in _NOT_IN_LINKS]
    links = {"self": link(ctx.base_url, path, kept + ([("_cursor", cursor)] if cursor else []))}
    if cursor:
        links["first"] = link(ctx.base_url, path, kept)
    if next_cursor and count > 0:
        links["next"] = link(ctx.base_url, path, kept + [("_cursor", next_cursor)])
    return FhirResponse(200, bundle("searchset", entries if count > 0 else [], links, total))
