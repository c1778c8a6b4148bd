"""Bulk Data ``_typeFilter``: FHIR search queries (``Observation?category=laboratory``) that narrow what an
export writes of one type.

Each ``_typeFilter`` value is a comma-separated list of queries ``Type?param=value&…``; a comma inside a
query's values is sent as ``%2C`` (so ``code=a%2Cb`` means code a OR b). Several queries for the same type
are ORed; a type without a query is exported whole. The queries are kept as text (the job row holds them,
so a restarted job rebuilds the same filter) and checked at kick-off, so that a bad one is a 400 there,
never a failed job: the type must be one the export writes, and every parameter one its search supports
(result parameters such as ``_count`` or ``_sort`` have no meaning in an export). An unsupported
parameter is refused even under ``Prefer: handling=lenient``: ignoring it would export more than asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from sqlalchemy import or_

from fhirportal.errors import BadRequest, Issue
from fhirportal.fhir.search_params import RESULT_PARAMETERS, parse_criteria
from fhirportal.store.indexing import SearchParameterRegistry
from fhirportal.store.search import build_where

PARAMETER = "_typeFilter"


def _refuse(message: str) -> BadRequest:
    return BadRequest(message, issues=[Issue(message, code="invalid", expression=PARAMETER)])


def parse_type_filters(registry: SearchParameterRegistry, values: Iterable[str], types: Iterable[str],
                       base_url: str) -> dict[str, tuple[str, ...]]:
    """``{type: (query, …)}`` of the ``_typeFilter`` values; 400 for a malformed query, a type the export
    does not write, or a parameter that the type's search does not support."""
    exported = set(types)
    filters: dict[str, list[str]] = {}
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            resource_type, mark, query = item.partition("?")
            if not mark or not query:
                raise _refuse(f"_typeFilter {item!r} is not a search query of the form Type?parameter=value")
            if resource_type not in exported:
                raise _refuse(f"_typeFilter names {resource_type}, which this export does not include "
                              "(see _type and the kind of export)")
            clause(registry, resource_type, [query], base_url)  # a bad parameter or value: 400 now
            filters.setdefault(resource_type, [])
            if query not in filters[resource_type]:
                filters[resource_type].append(query)
    return {t: tuple(queries) for t, queries in filters.items()}


def criteria_of(registry: SearchParameterRegistry, resource_type: str, queries: Iterable[str]) -> list[list]:
    """Each query's criteria (a 400 naming the query for what cannot filter an export)."""
    found = []
    for query in queries:
        params = parse_qsl(query, keep_blank_values=True)
        misplaced = sorted({name for name, _ in params if name in RESULT_PARAMETERS})
        if misplaced:
            raise _refuse(f"_typeFilter {resource_type}?{query}: {', '.join(misplaced)} cannot filter an export")
        try:
            criteria, _ = parse_criteria(registry, resource_type, params, strict=True)
        except BadRequest as exc:
            raise _refuse(f"_typeFilter {resource_type}?{query}: {exc.issues[0].diagnostics}") from exc
        found.append(criteria)
    return found


def clause(registry: SearchParameterRegistry, resource_type: str, queries: Iterable[str], base_url: str):
    """The SQL condition that a resource of ``resource_type`` matches one of ``queries``."""
    conditions = []
    for query, criteria in zip(queries, criteria_of(registry, resource_type, queries), strict=True):
        try:
            conditions.append(build_where(resource_type, criteria, base_url))
        except BadRequest as exc:
            raise _refuse(f"_typeFilter {resource_type}?{query}: {exc.issues[0].diagnostics}") from exc
    return or_(*conditions)
