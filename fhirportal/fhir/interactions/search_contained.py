"""search with ``_contained=true|both``: matches among contained resources (``store/search/contained.py``).

``_containedType=container`` (the default) answers with the containers, ``contained`` with the contained
resources themselves, each with the fullUrl ``{base}/{ContainerType}/{containerId}#{containedId}`` (a
top-level match of ``both`` keeps its own). What the token may see is decided by the container (its
search visibility); the searched type's rule adds its marks and granular-scope criteria. Stored
AuditEvents (the access log's neighbours, redacted per reader) are not looked into.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from fhirportal.errors import BadRequest
from fhirportal.store import write_buffer
from fhirportal.store.repository import _record, decode_cursor, encode_cursor
from fhirportal.store.search import contained as contained_search

from ..authorization import Authorization
from ..bundles import search_entry
from ..context import FhirContext
from ..subsetting import subset_text
from ..validation import ID_PATTERN
from .common import reading

SKIPPED_CONTAINERS = ("AuditEvent",)


def _after(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        values = decode_cursor(cursor)
    except ValueError as exc:
        raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
    if len(values) != 2 or type(values[0]) is not int or not isinstance(values[1], str) \
            or not (values[1] == "" or ID_PATTERN.fullmatch(values[1])):
        raise BadRequest("Invalid _cursor: the paging cursor belongs to another search", expression="_cursor")
    return values[0], values[1]


def _entry(ctx: FhirContext, match: contained_search.Match, parsed) -> dict | None:
    record = _record(match.row)
    if match.contained_id is None:
        return search_entry(ctx.base_url, record, "match", subset_text(record.content, parsed.summary,
                                                                       parsed.elements))
    item = next((c for c in (record.body or {}).get("contained") or []
                 if isinstance(c, dict) and c.get("id") == match.contained_id), None)
    if item is None:
        return None
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    entry = search_entry(ctx.base_url, record, "match", subset_text(text, parsed.summary, parsed.elements))
    entry["fullUrl"] = f"{ctx.base_url}/{record.resource_type}/{record.fhir_id}#{match.contained_id}"
    return entry


def page(ctx: FhirContext, auth: Authorization, resource_type: str, parsed, count: int, cursor: str | None,
         conn: Connection | None) -> tuple[list[dict], str | None, int | None]:
    """(entries, next cursor, total when asked) of one page."""
    visibility = auth.visibility("search-type")
    options = dict(both=parsed.contained == "both", per_container=parsed.contained_type == "container",
                   visibility=visibility, base_url=ctx.base_url, skip_containers=SKIPPED_CONTAINERS)
    after = _after(cursor)
    with reading(ctx, conn) as conn:
        write_buffer.flush(conn)
        entries, next_cursor = [], None
        if count > 0:
            matches, last = contained_search.search(conn, resource_type, parsed.criteria, count=count, after=after,
                                                    **options)
            entries = [entry for entry in (_entry(ctx, m, parsed) for m in matches) if entry is not None]
            next_cursor = encode_cursor(*last) if last else None
        total = None
        if parsed.total in ("accurate", "estimate") or count == 0:
            total = contained_search.count(conn, resource_type, parsed.criteria, **options)
    return entries, next_cursor, total
