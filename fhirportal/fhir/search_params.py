"""Parsing a search's query parameters: criteria (including chains and ``_has``) and the result
parameters (``_sort``, ``_include``, ``_revinclude``, ``_summary``, ``_elements``, ``_total``,
``_count``). Pure functions over the registry; conditional writes share ``parse_criteria``.

Unknown or unsupported parameters are collected; the caller decides (strict, the default: 400;
lenient: ignore and leave them out of the self link).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from fhirportal.errors import BadRequest, Issue
from fhirportal.store.index_state import contained_pending
from fhirportal.store.indexing import SearchParameter, SearchParameterRegistry
from fhirportal.store.search import Criterion
from fhirportal.store.search.includes import IncludeSpec
from fhirportal.store.search.lists import LIST_PARAMETER
from fhirportal.store.search.sorting import SortKey

from .terminology import search as terminology_search
from .validation import ID_PATTERN

# Parameters that shape the result rather than select resources.
RESULT_PARAMETERS = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_include:iterate", "_revinclude:iterate", "_summary",
    "_elements", "_total", "_contained", "_containedType", "_format", "_pretty", "_cursor", "_type",
})
MODIFIERS = {
    "token": {"not", "text", "missing", "of-type", *terminology_search.TERMINOLOGY_MODIFIERS},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "reference": {"missing"},
    "quantity": {"missing"},
    "number": {"missing"},
    "uri": {"missing", "below"},
    "composite": {"missing"},
}
SUMMARY_MODES = ("true", "false", "text", "data", "count")
TOTAL_MODES = ("none", "estimate", "accurate")
SEARCHABLE_TYPES = frozenset(MODIFIERS)
# Fixed bounds on what one search compiles to. Every value is a term of an AND/OR chain and SQLite refuses an
# expression nested deeper than 1000: an OR list inside a chain or _has costs about 4 levels a value (~245
# values fail), a plain one 2. The keyset condition grows with the square of the sort keys.
# A chain or _has is a correlated subquery: PostgreSQL's planning time grows much faster than their number
# (80 of them ~1 s, 200 ~100 s).
MAX_SEARCH_VALUES = 200
MAX_SORT_KEYS = 5
MAX_CHAINS = 10


class _Unsupported(Exception):
    """A parameter this server cannot honour (turned into an ignored name or a strict 400)."""


@dataclass
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    include: list[IncludeSpec] = field(default_factory=list)
    summary: str = "false"
    elements: list[str] = field(default_factory=list)
    total: str = "none"
    ignored: list[str] = field(default_factory=list)
    contained: str = "false"  # _contained: false | true | both
    contained_type: str = "container"  # _containedType: container | contained


def _check_modifier(parameter: SearchParameter, modifier: str) -> None:
    if parameter.type == "reference":
        names_a_target = modifier[:1].isupper() and (not parameter.targets or modifier in parameter.targets)
        if modifier == "missing" or names_a_target:
            return
        raise _Unsupported(f"Modifier ':{modifier}' is not valid for reference parameter '{parameter.code}'")
    if modifier not in MODIFIERS.get(parameter.type, set()):
        raise _Unsupported(f"Modifier ':{modifier}' is not supported for {parameter.type} parameter '{parameter.code}'")


def _lookup(registry: SearchParameterRegistry, resource_type: str, code: str) -> SearchParameter:
    parameter = registry.get(resource_type, code)
    if parameter is None:
        raise _Unsupported(f"Unknown search parameter '{code}' for {resource_type}")
    if parameter.type not in SEARCHABLE_TYPES or (parameter.type == "composite" and not parameter.indexed):
        raise _Unsupported(f"Search parameter '{code}' ({parameter.type}) is not supported")
    if registry.is_pending(resource_type, code):  # never ignored: its answer would be partial
        message = (f"Search parameter '{code}' of {resource_type} is being indexed: resources stored before it "
                   f"was defined are not indexed yet (`fhirportal reindex`); try again once the CapabilityStatement "
                   f"lists it")
        raise BadRequest(message, issues=[Issue(message, code="not-supported", expression=code)])
    return parameter


def _simple(registry, resource_type: str, name: str, value: str) -> Criterion:
    code, _, modifier = name.partition(":")
    parameter = _lookup(registry, resource_type, code)
    if modifier:
        _check_modifier(parameter, modifier)
    if modifier == "missing" and value not in ("true", "false"):
        raise _Unsupported(f"':missing' takes true or false, not '{value}'")
    values = tuple(split_or(value))
    if not values:
        raise _Unsupported(f"Search parameter '{name}' has no value")
    if parameter.type == "token" and modifier in terminology_search.TERMINOLOGY_MODIFIERS:
        codes = terminology_search.resolve(parameter, name, modifier, values)
        return Criterion(parameter, values, modifier, codes=codes)
    return Criterion(parameter, values, modifier or None)


def _chained(registry, resource_type: str, name: str, value: str) -> Criterion:
    head, _, rest = name.partition(".")
    code, _, target_type = head.partition(":")
    reference = _lookup(registry, resource_type, code)
    if reference.type != "reference":
        raise _Unsupported(f"'{code}' is not a reference parameter, so it cannot be chained")
    targets = [target_type] if target_type else list(reference.targets)
    if target_type and reference.targets and target_type not in reference.targets:
        raise _Unsupported(f"'{code}' cannot point at {target_type}")
    if "." in rest:
        raise _Unsupported("Only one level of chaining is supported")
    chained_code = rest.partition(":")[0]
    on = next((t for t in targets if registry.get(t, chained_code)), None)
    if on is None:
        raise _Unsupported(f"None of the types '{code}' points at has a search parameter '{chained_code}'")
    chain = _simple(registry, on, rest, value)
    return Criterion(reference, chain.values, target_type or None, chain=chain)


def _reverse_chained(registry, resource_type: str, name: str, value: str) -> Criterion:
    parts = name.split(":")
    if len(parts) < 4:
        raise _Unsupported("_has takes the form _has:Type:reference:parameter=value")
    _, source_type, reference_code, *rest = parts
    if source_type not in registry.resource_types:
        raise _Unsupported(f"_has names an unknown type '{source_type}'")
    reference = _lookup(registry, source_type, reference_code)
    if reference.type != "reference" or (reference.targets and resource_type not in reference.targets):
        raise _Unsupported(f"{source_type}.{reference_code} does not point at {resource_type}")
    inner = ":".join(rest)
    if inner.startswith("_has"):
        raise _Unsupported("Only one level of _has is supported")
    criterion = _simple(registry, source_type, inner, value)
    return dataclasses.replace(criterion, has=(source_type, reference_code))


def _listed(name: str, value: str) -> Criterion:
    """``_list=id[,id]``: the resources a List (that the request may see) has as entries."""
    if name != LIST_PARAMETER.code:
        raise _Unsupported(f"Modifier ':{name.partition(':')[2]}' is not supported for _list")
    ids = tuple(split_or(value))
    if not ids:
        raise _Unsupported("Search parameter '_list' has no value")
    for list_id in ids:
        if list_id.startswith("$"):
            raise _Unsupported(f"_list={list_id}: functional lists ($current-problems, ...) are not supported; "
                               f"name a List by its id")
        if not ID_PATTERN.fullmatch(list_id):
            raise _Unsupported(f"_list={list_id}: not a List id")
    return Criterion(LIST_PARAMETER, ids)


CONTAINED_MODES = {"_contained": ("false", "true", "both"), "_containedType": ("container", "contained")}


def _contained(request: SearchRequest, name: str, value: str) -> None:
    """``_contained`` (false: top-level resources only; true: contained ones only; both) and
    ``_containedType`` (container: the entries are the containers; contained: the contained resources)."""
    known = CONTAINED_MODES[name]
    if value not in known:
        raise _Unsupported(f"{name} must be one of {', '.join(known)}")
    if name == "_contained":
        request.contained = value
    else:
        request.contained_type = value


def _check_contained(registry: SearchParameterRegistry, request: SearchRequest, resource_types: list[str]) -> None:
    """What a search into contained resources cannot be combined with (a 400, strict or not: ignoring
    either would answer another question), and whether their index is complete."""
    if request.contained == "false":
        return
    refused = None
    if len(resource_types) > 1 or "AuditEvent" in resource_types:
        refused = "searches one resource type (not _type, nor AuditEvent)"
    elif request.sort:
        refused = "is answered in the containers' order: _sort is not supported with it"
    elif request.include:
        refused = "does not support _include or _revinclude"
    if refused:
        message = f"_contained={request.contained} {refused}"
        raise BadRequest(message, issues=[Issue(message, code="not-supported", expression="_contained")])
    readiness = registry.readiness
    if readiness is not None and contained_pending(readiness.pending()):
        message = ("The index of contained resources is being built: resources stored before it was added are "
                   "not indexed yet (`fhirportal reindex`); try again once the CapabilityStatement lists _contained")
        raise BadRequest(message, issues=[Issue(message, code="not-supported", expression="_contained")])


def parse_criterion(registry: SearchParameterRegistry, resource_type: str, name: str, value: str) -> Criterion:
    if "\x00" in name or "\x00" in value:
        raise BadRequest(f"Search parameter '{name.replace(chr(0), '')}' contains a NUL character",
                         expression=name.replace("\x00", ""))
    if name.partition(":")[0] == LIST_PARAMETER.code:
        return _listed(name, value)
    if name.startswith("_has:"):
        return _reverse_chained(registry, resource_type, name, value)
    if "." in name.partition(":")[2] or "." in name.partition(":")[0]:
        return _chained(registry, resource_type, name, value)
    return _simple(registry, resource_type, name, value)


def parse_criteria(registry: SearchParameterRegistry, resource_type: str,
                   params: Iterable[tuple[str, str]], *, strict: bool) -> tuple[list[Criterion], list[str]]:
    """(criteria, names of ignored parameters), result parameters left aside. Unsupported parameters
    are a 400 when ``strict``."""
    selecting = [(name, value) for name, value in params if name not in RESULT_PARAMETERS]
    parsed = parse_search(registry, [resource_type], selecting, strict=strict)
    return parsed.criteria, parsed.ignored


def _include_spec(registry, resource_types: list[str], name: str, value: str) -> IncludeSpec:
    reverse = name.startswith("_revinclude")
    iterate = name.endswith(":iterate")
    parts = value.split(":")
    if value in ("*", "*:*"):
        return IncludeSpec(resource_types[0] if not reverse else "*", None, None, reverse, iterate)
    if len(parts) not in (2, 3):
        raise _Unsupported(f"{name}={value}: expected Type:parameter[:targetType]")
    source_type, code = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if not reverse and source_type not in resource_types and not iterate:
        raise _Unsupported(f"{name}={value}: {source_type} is not the type searched")
    if code != "*":
        parameter = _lookup(registry, source_type, code)
        if parameter.type != "reference":
            raise _Unsupported(f"{name}={value}: '{code}' is not a reference parameter")
        if target_type and parameter.targets and target_type not in parameter.targets:
            raise _Unsupported(f"{name}={value}: '{code}' cannot point at {target_type}")
    return IncludeSpec(source_type, None if code == "*" else code, target_type, reverse, iterate)


def _sort_keys(registry, resource_type: str, value: str) -> list[SortKey]:
    keys = []
    items = split_or(value)
    if len(items) > MAX_SORT_KEYS:
        raise BadRequest(f"_sort has {len(items)} keys; this server sorts by at most {MAX_SORT_KEYS}",
                         expression="_sort")
    for item in items:
        descending = item.startswith("-")
        code = item.lstrip("-")
        parameter = _lookup(registry, resource_type, code)
        if parameter.type == "composite":
            raise _Unsupported(f"_sort by the composite parameter '{code}' is not supported")
        keys.append(SortKey(parameter, descending))
    return keys


INCLUDE_PARAMETERS = ("_include", "_revinclude", "_include:iterate", "_revinclude:iterate")


def parse_search(registry: SearchParameterRegistry, resource_types: list[str],
                 params: list[tuple[str, str]], *, strict: bool, max_includes: int | None = None) -> SearchRequest:
    """Everything a search asked for. With several types only the parameters common to all apply.

    More than ``max_includes`` ``_include``/``_revinclude`` parameters are a 400, strict or not."""
    primary = resource_types[0]
    includes = sum(1 for name, _ in params if name in INCLUDE_PARAMETERS)
    if max_includes is not None and includes > max_includes:
        raise BadRequest(f"The search has {includes} _include/_revinclude parameters; this server takes at most "
                         f"{max_includes} (the include limit)", expression="_include")
    request = SearchRequest()
    problems: list[Issue] = []

    def refuse(name: str, problem: Exception) -> None:
        if strict:
            problems.append(Issue(str(problem), code="not-supported", expression=name))
        else:
            request.ignored.append(name)

    for name, value in params:
        try:
            if name in INCLUDE_PARAMETERS:
                request.include.append(_include_spec(registry, resource_types, name, value))
            elif name == "_sort":
                request.sort = _sort_keys(registry, primary, value)
            elif name == "_summary":
                if value not in SUMMARY_MODES:
                    raise _Unsupported(f"_summary must be one of {', '.join(SUMMARY_MODES)}")
                request.summary = value
            elif name == "_elements":
                request.elements += [e.strip() for e in value.split(",") if e.strip()]
            elif name == "_total":
                if value not in TOTAL_MODES:
                    raise _Unsupported(f"_total must be one of {', '.join(TOTAL_MODES)}")
                request.total = value
            elif name in ("_contained", "_containedType"):
                _contained(request, name, value)
            elif name in RESULT_PARAMETERS:
                continue
            else:
                criteria = [parse_criterion(registry, t, name, value) for t in resource_types]
                request.criteria.append(criteria[0])
        except _Unsupported as problem:
            refuse(name, problem)
    if problems:
        raise BadRequest(problems[0].diagnostics, issues=problems)
    _check_contained(registry, request, resource_types)
    chains = sum(1 for criterion in request.criteria if criterion.chain is not None or criterion.has is not None)
    if chains > MAX_CHAINS:
        raise BadRequest(f"The search has {chains} chained or _has parameters; this server takes at most "
                         f"{MAX_CHAINS} in one search")
    values = sum(len(criterion.values) for criterion in request.criteria)
    if values > MAX_SEARCH_VALUES:
        raise BadRequest(f"The search has {values} values across its parameters (commas included); this server "
                         f"takes at most {MAX_SEARCH_VALUES} in one search")
    codes = sum(len(_innermost(criterion).codes or ()) for criterion in request.criteria)
    if codes > terminology_search.MAX_SEARCH_CODES:
        message = (f"The search's :in, :not-in, :above and :below parameters stand for {codes} codes together; "
                   f"this server searches for at most {terminology_search.MAX_SEARCH_CODES} in one search")
        raise BadRequest(message, issues=[Issue(message, code="too-costly")])
    return request


def _innermost(criterion: Criterion) -> Criterion:
    return criterion if criterion.chain is None else criterion.chain


def split_or(value: str) -> list[str]:
    """Comma means OR; ``\\,`` is a literal comma."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char if char in ",$|\\" else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p != ""]


def handling_is_strict(prefer: str | None, default: str = "strict") -> bool:
    """``Prefer: handling=strict|lenient`` if the client sent one, else the server's ``default``."""
    for part in (prefer or "").split(","):
        if part.strip() in ("handling=strict", "handling=lenient"):
            return part.strip() == "handling=strict"
    return default == "strict"
