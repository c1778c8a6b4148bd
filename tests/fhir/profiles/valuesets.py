"""A stand-in for the terminology service in the profile tests: ``contains`` over the package's own
ValueSets that enumerate their codes (``compose.include.concept``). A value set that also includes
whole code systems, filters or other value sets answers None (cannot tell) for a code it does not list;
one the package does not have answers None. The lead wires the real service in its place."""

from __future__ import annotations

import functools

from fhirportal.definitions.packages import package


@functools.cache
def _enumerated() -> dict[str, tuple[frozenset, frozenset, bool]]:
    """url -> (included (system, code) pairs, excluded pairs, whether the includes are all enumerated)."""
    table = {}
    for valueset in package().of_type("ValueSet"):
        compose = valueset.get("compose", {})
        included, complete = set(), True
        for include in compose.get("include", []):
            if "concept" in include and not include.get("filter") and not include.get("valueSet"):
                included |= {(include.get("system"), concept["code"]) for concept in include["concept"]}
            else:
                complete = False
        excluded = {(exclude.get("system"), concept["code"])
                    for exclude in compose.get("exclude", []) for concept in exclude.get("concept", [])}
        table[valueset["url"]] = (frozenset(included), frozenset(excluded), complete)
    return table


def contains(valueset: str, system: str | None, code: str) -> bool | None:
    entry = _enumerated().get(valueset.partition("|")[0])
    if entry is None:
        return None
    included, excluded, complete = entry

    def listed(pairs):
        return any(c == code and (system is None or s == system) for s, c in pairs)

    if listed(excluded):
        return False
    if listed(included):
        return True
    return False if complete else None
