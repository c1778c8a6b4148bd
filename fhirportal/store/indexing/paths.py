"""A fast evaluator for the FHIRPath forms that R4's search-parameter expressions use.

Nearly every R4 expression is a union of element paths, optionally narrowed by a choice type
(``(Observation.value as Quantity)``, ``Condition.onset.as(Age)``), a trailing element after one
(``(Observation.value as CodeableConcept).text``) or an equality filter
(``Patient.telecom.where(system='email')``). Those compile here into plain dictionary walks, an order
of magnitude faster than a general FHIRPath engine; anything else returns None and the caller uses
fhirpathpy. A test checks both agree on the demo data for every parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from fhirportal import definitions

_STEP = r"[A-Za-z][A-Za-z0-9]*"
_PART = re.compile(
    rf"^(?:\((?P<inner>{_STEP}(?:\.{_STEP})*)\s+as\s+(?P<as1>{_STEP})\)(?P<after>(?:\.{_STEP})*)"
    rf"|(?P<path>{_STEP}(?:\.{_STEP})*?)(?:\.as\((?P<as2>{_STEP})\))?"
    rf"(?:\.where\((?P<field>{_STEP})\s*=\s*'(?P<equals>[^']*)'\))?)$"
)


def _numbers(value):
    """Match fhirpathpy: decimals as Decimal (the index builders accept either)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _children(node, name: str, choice_type: str | None, choice: bool = True) -> list:
    if not isinstance(node, dict):
        return []
    if choice_type is not None:
        keys = [name + choice_type[0].upper() + choice_type[1:]]
    elif name in node or not choice:
        keys = [name]
    else:  # an unqualified choice element: value -> valueQuantity, valueString, ...
        keys = [k for k in node if k.startswith(name) and len(k) > len(name) and k[len(name)].isupper()]
    found = []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    return found


def _choices(resource_type: str, steps: list[str]) -> tuple[list[bool], bool]:
    """For each step, whether it may be an unqualified choice element (``value`` for valueQuantity): not
    when the R4 structure says what the step is (``Coverage.subscriber`` is not ``subscriberId``); and
    whether that decided anything (an element named like the step and more exists: ``status`` and
    ``statusReason``)."""
    structure = definitions.load("structure")
    found, type_key, decided = [], resource_type, False
    for step in steps:
        elements = structure.get(type_key) if type_key else None
        if elements is None:
            found.append(True)  # beyond what the table tells: as written
            type_key = None
            continue
        is_choice = any(e.get("choice") == step for e in elements.values())
        found.append(is_choice or step not in elements)
        element = elements.get(step)
        decided = decided or (not found[-1] and not element.get("required") and any(  # (a required one is there)
            k.startswith(step) and len(k) > len(step) and k[len(step)].isupper() for k in elements))
        type_key = element["type"] if element and not is_choice else None
    return found, decided


def _walker(steps: list[str], choice_at_end: str | None, after: list[str], where: tuple[str, str] | None,
            choices: list[bool] | None = None):
    choices = choices or [True] * len(steps)

    def walk(resource: dict) -> list:
        current = [resource]
        for position, step in enumerate(steps):
            last = position == len(steps) - 1
            current = [c for node in current
                       for c in _children(node, step, choice_at_end if last else None, choices[position])]
        for step in after:
            current = [c for node in current for c in _children(node, step, None)]
        if where is not None:
            field, equals = where
            current = [node for node in current if isinstance(node, dict) and node.get(field) == equals]
        return [_numbers(v) for v in current]

    return walk


def compile_simple(expression: str) -> Callable[[dict], list] | None:
    """A function evaluating ``expression`` on a resource's JSON, or None if it is not a simple form.

    Its ``roots`` attribute maps each resource type to the top-level elements the expression starts
    from there (a choice element by its base name: ``value`` for ``valueQuantity``): it yields nothing
    for a resource that has none of them (``element_roots``)."""
    walkers = []
    roots: dict[str, set[str]] = {}
    strict = False
    for part in (p.strip() for p in expression.split("|")):
        match = _PART.match(part)
        if not match:
            return None
        groups = match.groupdict()
        path = groups["inner"] or groups["path"]
        resource_type, *steps = path.split(".")
        if not steps:
            return None
        after = groups["after"].split(".")[1:] if groups["after"] else []
        where = (groups["field"], groups["equals"]) if groups["field"] else None
        choices, decided = _choices(resource_type, steps)
        strict = strict or decided
        walker = _walker(steps, groups["as1"] or groups["as2"], after, where, choices)
        walkers.append((resource_type, walker))
        roots.setdefault(resource_type, set()).add(steps[0])

    def evaluate(resource: dict) -> list:
        resource_type = resource.get("resourceType")
        results = []
        for part_type, walker in walkers:
            if part_type == resource_type:
                results.extend(walker(resource))
        return results

    evaluate.roots = {resource_type: frozenset(names) for resource_type, names in roots.items()}
    evaluate.strict_steps = strict  # the structure kept a step from matching a longer element's name
    return evaluate


_CHOICE_BASE = re.compile(r"[a-z][a-z0-9]*(?=[A-Z])")


def element_roots(resource: dict) -> set[str]:
    """The resource's top-level element names, and the base name of each choice element among them
    (``valueQuantity`` also as ``value``): what ``compile_simple``'s ``roots`` are compared with."""
    names = set(resource)
    for name in resource:
        base = _CHOICE_BASE.match(name)
        if base is not None:
            names.add(base.group())
    return names
