"""Searching conformance resources the server holds in memory (the terminology resources, and the
OperationDefinitions, SearchParameters and StructureDefinitions it serves): ``GET [type]?url=&name=&status=
&version=&_id=`` over a list of resources, without a token.

Search semantics are FHIR's for the parameters' types: ``url`` a uri (exact; ``:below`` a prefix),
``name`` a string (starts with, case- and accent-insensitive; ``:exact``, ``:contains``),
``status``, ``version`` and ``_id`` tokens (exact; ``:not``). Comma = OR, repetition = AND. Unknown
parameters are a 400, or ignored (and left out of the self link) under ``handling=lenient`` (the
``Prefer`` header, else the server's ``FHIRPORTAL_SEARCH_HANDLING``), as for the stored types.
"""

from __future__ import annotations

from collections.abc import Callable

from fhirportal.errors import BadRequest, Issue
from fhirportal.store.indexing.normalize import fold

from .bundles import bundle, link
from .search_params import SUMMARY_MODES, split_or
from .subsetting import elements, summary

# code -> (type, modifiers): what the CapabilityStatement lists for each terminology type
SEARCH_PARAMETERS = {
    "_id": ("token", ("not",)),
    "url": ("uri", ("below",)),
    "name": ("string", ("exact", "contains")),
    "status": ("token", ("not",)),
    "version": ("token", ("not",)),
}
SEARCH_PARAMETER_URLS = {
    "_id": "http://hl7.org/fhir/SearchParameter/Resource-id",
    "url": "http://hl7.org/fhir/SearchParameter/conformance-url",
    "name": "http://hl7.org/fhir/SearchParameter/conformance-name",
    "status": "http://hl7.org/fhir/SearchParameter/conformance-status",
    "version": "http://hl7.org/fhir/SearchParameter/conformance-version",
}
RESULT_PARAMETERS = frozenset({"_count", "_cursor", "_summary", "_elements", "_format", "_pretty", "_total"})


def _matcher(code: str, modifier: str, value: str) -> Callable[[dict], bool]:
    element = "id" if code == "_id" else code
    if code == "name":
        if modifier == "exact":
            return lambda r: r.get("name") == value
        folded = fold(value)
        if modifier == "contains":
            return lambda r: folded in fold(r.get("name", ""))
        return lambda r: fold(r.get("name", "")).startswith(folded)
    if code == "url":
        if modifier == "below":
            return lambda r: r.get("url", "").startswith(value)
        return lambda r: r.get("url") == value
    value = value.rpartition("|")[2]  # a token's system|code: these codes have no system of their own
    return lambda r: r.get(element) == value


def _criterion(name: str, value: str) -> Callable[[dict], bool]:
    code, _, modifier = name.partition(":")
    if code not in SEARCH_PARAMETERS:
        raise LookupError(f"Unknown search parameter '{code}' for conformance resources")
    if modifier and modifier not in SEARCH_PARAMETERS[code][1]:
        raise LookupError(f"Modifier ':{modifier}' is not supported for '{code}'")
    values = split_or(value)
    if not values:
        raise BadRequest(f"Search parameter '{name}' has no value", expression=name)
    negate = modifier == "not"
    matchers = [_matcher(code, "" if negate else modifier, v) for v in values]
    if negate:
        return lambda r: not any(m(r) for m in matchers)
    return lambda r: any(m(r) for m in matchers)


def search(resources: list[dict], resource_type: str, params: list[tuple[str, str]], base_url: str, count: int, *,
           strict: bool) -> dict:
    """A searchset Bundle of the ``resources`` that match, ``count`` a page, paged by ``_cursor`` (an offset)."""
    criteria, ignored, problems = [], [], []
    for name, value in params:
        if name in RESULT_PARAMETERS:
            continue
        try:
            criteria.append(_criterion(name, value))
        except LookupError as problem:
            if strict:
                problems.append(Issue(str(problem), code="not-supported", expression=name))
            ignored.append(name)
    if problems:
        raise BadRequest(problems[0].diagnostics, issues=problems)
    mode = next((v for k, v in params if k == "_summary"), "false")
    if mode not in SUMMARY_MODES:
        raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}", expression="_summary")
    names = [e.strip() for k, v in params if k == "_elements" for e in v.split(",") if e.strip()]
    cursor = next((v for k, v in params if k == "_cursor"), "0")
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 9:
        raise BadRequest(f"Invalid _cursor '{cursor[:40]}'", expression="_cursor")
    start = int(cursor)
    matches = [r for r in resources if all(c(r) for c in criteria)]
    page = [] if mode == "count" else matches[start:start + count]
    kept = [(k, v) for k, v in params if k not in ignored and k not in ("_cursor", "_format", "_pretty")]
    links = {"self": link(base_url, resource_type, kept + ([("_cursor", cursor)] if start else []))}
    if start + count < len(matches) and mode != "count" and count > 0:
        links["next"] = link(base_url, resource_type, kept + [("_cursor", str(start + count))])
    entries = [{"fullUrl": f"{base_url}/{resource_type}/{r['id']}",
                "resource": elements(r, names) if names else summary(r, mode), "search": {"mode": "match"}}
               for r in page]
    return bundle("searchset", entries, links, len(matches))
