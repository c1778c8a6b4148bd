"""Turning query parameters into store criteria (the part of search that conditional
create/update/delete share with the search interaction).
"""

from __future__ import annotations

from collections.abc import Iterable

from fhirportal.errors import BadRequest, Issue
from fhirportal.store.indexing import SearchParameterRegistry
from fhirportal.store.search import Criterion

# Parameters that shape the result rather than select resources.
RESULT_PARAMETERS = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
    "_containedType", "_format", "_pretty", "_cursor",
})
_MODIFIERS = {
    "token": {"not", "text", "missing", "of-type", "in", "not-in", "above", "below"},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "reference": {"missing"},
    "quantity": {"missing"},
    "number": {"missing"},
    "uri": {"missing", "below"},
}
_SUPPORTED_TOKEN_MODIFIERS = {"not", "text", "missing", "of-type"}


def parse_criteria(registry: SearchParameterRegistry, resource_type: str,
                   params: Iterable[tuple[str, str]], *, strict: bool) -> tuple[list[Criterion], list[str]]:
    """(criteria, names of ignored parameters). Unknown parameters are 400 when ``strict``."""
    criteria: list[Criterion] = []
    ignored: list[str] = []
    problems: list[Issue] = []
    for name, value in params:
        if name in RESULT_PARAMETERS:
            continue
        code, _, modifier = name.partition(":")
        parameter = registry.get(resource_type, code)
        problem = None
        if parameter is None:
            problem = f"Unknown search parameter '{code}' for {resource_type}"
        elif parameter.type in ("composite", "special"):
            problem = f"Search parameter '{code}' ({parameter.type}) is not supported"
        elif parameter.type == "reference" and modifier and modifier != "missing":
            if not modifier[:1].isupper() or (parameter.targets and modifier not in parameter.targets):
                problem = f"Modifier ':{modifier}' is not valid for reference parameter '{code}'"
        elif modifier and modifier not in _MODIFIERS.get(parameter.type, set()):
            problem = f"Modifier ':{modifier}' is not valid for {parameter.type} parameter '{code}'"
        elif parameter.type == "token" and modifier and modifier not in _SUPPORTED_TOKEN_MODIFIERS:
            problem = f"Modifier ':{modifier}' is not supported by this server"
        if problem is None and modifier == "missing" and value not in ("true", "false"):
            problem = f"':missing' takes true or false, not '{value}'"
        if problem is None and value == "":
            problem = f"Search parameter '{name}' has no value"
        if problem:
            if strict:
                problems.append(Issue(problem, code="not-supported" if parameter is None else "invalid",
                                      expression=name))
            else:
                ignored.append(name)
            continue
        values = tuple(_split_or(value))
        criteria.append(Criterion(parameter, values, modifier or None))
    if problems:
        raise BadRequest(problems[0].diagnostics, issues=problems)
    return criteria, ignored


def _split_or(value: str) -> list[str]:
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


def handling_is_strict(prefer: str | None) -> bool:
    if not prefer:
        return False
    return any(part.strip() == "handling=strict" for part in prefer.split(","))
