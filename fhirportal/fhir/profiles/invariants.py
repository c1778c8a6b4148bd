"""The profile's own invariants (ElementDefinition.constraint), evaluated on each item of the element
that carries them, the resource itself for the root element: by ``fhirpath`` (compiled closures) where
it supports the expression and the data, otherwise by fhirpathpy.

Items are typed by their FHIR type (``HumanName``, ``dateTime``), a backbone element by its element
path; fhirpathpy gets a primitive as its FHIRPath system type (``dateTime`` as ``DateTime``) so that
``$this is DateTime`` holds for an ``effectiveDateTime`` as in HL7's reference validator (which compares
type names without regard to case). An invariant is violated when its expression is not exactly
``true`` (false or empty); one that cannot be evaluated (a FHIRPath error on this data) is reported as
a warning, never as a valid or invalid instance.
"""

from __future__ import annotations

import functools
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode

from fhirportal.fhir.profiles import fhirpath
from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import PRIMITIVE_TYPES, Element, Invariant

SYSTEM_TYPES = {
    "boolean": "Boolean", "integer": "Integer", "positiveInt": "Integer", "unsignedInt": "Integer",
    "decimal": "Decimal", "date": "Date", "dateTime": "DateTime", "instant": "DateTime", "time": "Time",
}


def compile_invariant(constraint: dict) -> Invariant:
    return _compiled(constraint["key"], constraint.get("severity", "error"), constraint.get("human", ""),
                     constraint["expression"])


@functools.cache
def _compiled(key: str, severity: str, human: str, expression: str) -> Invariant:
    """One compilation per invariant and process (profiles derived from one another repeat them)."""
    compiled = fhirpath.compile_expression(expression)
    engine = functools.cache(lambda: fhirpathpy.compile(expression, model=fhirpath.MODEL))  # parsed if needed

    def evaluate(value: Any, type_path: str) -> list:
        if compiled is not None:
            try:
                return compiled(value, type_path)
            except fhirpath.Fallback:
                pass
        if isinstance(value, dict) and "resourceType" in value:
            return engine()(value, {})
        return engine()(ResourceNode.create_node(value, SYSTEM_TYPES.get(type_path, type_path)
                                                 if type_path in PRIMITIVE_TYPES else type_path), {})

    return Invariant(key, severity, human, expression, evaluate, compiled is not None)


def _type_path(element: Element, value: Any, type_code: str | None) -> str:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value["resourceType"]
    if type_code in (None, "BackboneElement", "Element"):
        return element.path
    return type_code


def check(element: Element, value: Any, type_code: str | None, expression: str) -> list:
    found = []
    for invariant in element.invariants:
        rule = f"invariant {invariant.key}"
        try:
            result = invariant.evaluate(value, _type_path(element, value, type_code))
        except Exception as exc:  # a FHIRPath error on this data (fhirpathpy raises plain exceptions)
            found.append(problem(expression, f"could not be evaluated ({type(exc).__name__}: {exc})",
                                 element.profile, rule, code="processing", severity="warning"))
            continue
        if result != [True]:
            found.append(problem(expression, invariant.human or invariant.expression, element.profile, rule,
                                 code="invariant", severity=invariant.severity))
    return found
