"""The token search modifiers that need the terminology, resolved to the (system, code) pairs the
store matches (``Criterion.codes``), so that the store knows nothing of value sets or hierarchies:

- ``:in`` / ``:not-in`` = a value set (its canonical url, or ``ValueSet/{id}``): a resource with a
  code in (or none in) its expansion (abstract codes, which data should not carry, left out);
- ``:below`` / ``:above`` = ``system|code``: that code or any below it (above it) in its code system's
  hierarchy.

An element of a primitive type (``Observation.status``, ``Patient.gender``) is indexed without a
system (its value set fixes it); for such parameters the codes also match without one.

A value set or code system the server does not know, one over content it does not hold, or an
expansion over ``MAX_SEARCH_CODES`` is a 400 saying so: never a partial answer, never a slow one.
"""

from __future__ import annotations

import functools

from fhirportal import definitions
from fhirportal.errors import BadRequest, FhirError, Issue
from fhirportal.store.indexing import SearchParameter

from .service import terminology

TERMINOLOGY_MODIFIERS = ("in", "not-in", "above", "below")
# The most (system, code) pairs one search may match against, across its parameters. They are bound
# parameters of per-system IN lists (one nesting level per system, not per code, so SQLite's expression
# depth limit does not apply as it does to MAX_SEARCH_VALUES); the bound keeps a search's statement
# and its planning time small (see the README's measurements) and far from SQLite's 32,766 bound
# parameters and PostgreSQL's 65,535.
MAX_SEARCH_CODES = 2000


def resolve(parameter: SearchParameter, name: str, modifier: str, values: tuple[str, ...]
            ) -> tuple[tuple[str | None, str], ...]:
    """The (system, code) pairs ``parameter:modifier=values`` matches (``name``: as the client wrote it)."""
    pairs: set[tuple[str | None, str]] = set()
    try:
        for value in values:
            pairs.update(_in_value_set(value) if modifier in ("in", "not-in") else _hierarchy(modifier, value))
    except FhirError as error:
        issues = [Issue(i.diagnostics, code=i.code, expression=name) for i in error.issues]
        raise BadRequest(error.message, issues=issues) from error
    if len(pairs) > MAX_SEARCH_CODES:
        raise BadRequest(f"'{name}' stands for {len(pairs)} codes; this server searches for at most "
                         f"{MAX_SEARCH_CODES} codes at once", issues=[Issue(
                             f"'{name}' stands for {len(pairs)} codes; this server searches for at most "
                             f"{MAX_SEARCH_CODES} codes at once", code="too-costly", expression=name)])
    if _primitive(parameter.base, parameter.expression):
        pairs.update((None, code) for _, code in list(pairs))
    return tuple(sorted(pairs, key=lambda pair: (pair[0] or "", pair[1])))


def _in_value_set(value: str) -> list[tuple[str, str]]:
    if value.startswith("ValueSet/"):
        found = terminology().resource("ValueSet", value.removeprefix("ValueSet/"))
        if found is None:
            raise BadRequest(f"{value} is not known to this server")
        value = found["url"]
    return [(e.system, e.code) for e in terminology().entries(value) if not e.abstract]


def _hierarchy(modifier: str, value: str) -> list[tuple[str, str]]:
    system, separator, code = value.partition("|")
    if not separator or not system or not code:
        raise BadRequest(f":{modifier} takes system|code, not '{value}'")
    related = terminology().descendants(system, code) if modifier == "below" else \
        terminology().ancestors(system, code)
    return [(system, c) for c in {code, *related}]


@functools.cache
def _primitive(resource_type: str, expression: str) -> bool:
    """Does ``expression`` reach an element of a primitive type (indexed as a code without system)?"""
    structure = definitions.load("structure")
    for part in expression.split("|"):
        path, _, cast = part.strip().strip("()").partition(" as ")
        steps = path.strip().split(".")
        current, kind = steps[0], None
        for step in steps[1:]:
            element = structure.get(current, {}).get(step)
            if element is None and cast:
                element = structure.get(current, {}).get(step + cast[:1].upper() + cast[1:])
            if element is None:
                kind = None
                break
            kind = current = element["type"]
        if kind and kind[:1].islower():
            return True
    return False
