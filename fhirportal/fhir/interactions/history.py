"""history: instance ``[type]/[id]/_history``, type ``[type]/_history`` and system ``/_history``,
with ``_since``, ``_at``-free keyset paging (``_cursor``) and ``_count``.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask import Request
from sqlalchemy import Connection

from fhirportal.errors import BadRequest
from fhirportal.store.indexing.dates import parse_range, to_datetime

from ..authorization import Authorization
from ..bundles import bundle, history_entry, link
from ..context import FhirContext
from ..response import FhirResponse
from ..validation import check_id
from .common import reading, require_type


def page_size(ctx: FhirContext, request: Request, params: list[tuple[str, str]] | None = None) -> int:
    """``_count`` (from ``params`` when given, else the query string), or the default page size.

    400 unless it is a whole number from 0 to ``max_page_size``: a larger page is refused, never
    silently cut, so that the client learns the maximum."""
    raw = request.args.get("_count") if params is None else next((v for k, v in params if k == "_count"), None)
    return count_value(ctx, raw)


def count_value(ctx: FhirContext, raw: str | None) -> int:
    """A ``_count`` value checked against ``max_page_size`` (None: the default page size)."""
    if raw is None:
        return ctx.settings.default_page_size
    maximum = ctx.settings.max_page_size
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise BadRequest(f"_count must be a whole number from 0 to {maximum}, not '{shown}'", expression="_count")
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise BadRequest(f"_count={shown} is more than this server's maximum page size of {maximum} "
                         f"(the _count limit)", expression="_count")
    return int(digits)


_WHOLE_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²'


def since_instant(request: Request) -> datetime | None:
    return _instant(request, "_since")


def _instant(request: Request, name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        low, _ = parse_range(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a FHIR instant, e.g. 2024-01-01T00:00:00Z: {exc}", expression=name) from exc
    return to_datetime(low)


def history(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str | None = None,
            fhir_id: str | None = None, conn: Connection | None = None) -> FhirResponse:
    if resource_type:
        require_type(ctx, resource_type)
    interaction = "history-instance" if fhir_id else "history-type"
    if resource_type:
        auth.require(resource_type, interaction)
    else:
        auth.require_system_history()
    if fhir_id:
        check_id(fhir_id)
    count = page_size(ctx, request)
    since = since_instant(request)
    cursor = request.args.get("_cursor")
    with reading(ctx, conn) as conn:
        try:
            page = ctx.repository.history(conn, resource_type=resource_type, fhir_id=fhir_id, since=since,
                                          count=max(count, 1), cursor=cursor,
                                          visibility=auth.visibility(interaction))
        except ValueError as exc:
            raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
    path = "/".join(p for p in (resource_type, fhir_id, "_history") if p)
    kept = [(k, v) for k, v in request.args.items(multi=True) if k in ("_since", "_count")]
    links = {"self": link(ctx.base_url, path, kept + ([("_cursor", cursor)] if cursor else []))}
    if cursor:
        links["first"] = link(ctx.base_url, path, kept)
    if page.next_cursor and count > 0:
        links["next"] = link(ctx.base_url, path, kept + [("_cursor", page.next_cursor)])
    entries = [] if count == 0 else [history_entry(ctx.base_url, record) for record in page.entries]
    return FhirResponse(200, bundle("history", entries, links, page.total))
