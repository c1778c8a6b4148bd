"""Search-parameter definitions for the resource types the server supports.

The base set is FHIR R4's own SearchParameter resources (``fhirportal/definitions``); custom ones
from ``capability/`` are added on top. Expressions are compiled once, here.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import fhirpathpy
from fhirpathpy.models import models

from fhirportal import definitions

from . import composite
from .expressions import for_base, split_union
from .paths import compile_simple

_MODEL = models["r4"]
# Resource-level parameters the store answers from the resource table itself, not from index rows.
TABLE_PARAMS = {"_id", "_lastUpdated"}
# The version of the code that turns values into index rows (normalisation, date ranges, reference
# forms, ...): part of every parameter's fingerprint, so raising it makes every index row out of date
# (``fhirportal reindex``). Raise it with any change to what ``indexing`` writes for the same value.
INDEX_FORMAT = 1


@dataclass(frozen=True)
class SearchParameter:
    code: str
    type: str
    expression: str
    url: str
    base: str
    targets: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    components: tuple[dict, ...] = ()
    component_types: tuple[str, ...] = ()  # a composite's components' parameter types, in order
    evaluate: Callable = field(default=None, compare=False, repr=False)

    @property
    def indexed(self) -> bool:
        if self.type == "composite":
            return self.evaluate is not None and composite.supported(self.components, self.component_types)
        return self.type != "special" and self.code not in TABLE_PARAMS

    @property
    def fingerprint(self) -> str:
        """What the index rows of this parameter depend on, hashed: rows written under another
        fingerprint are out of date (``store.index_state``)."""
        parts = [(c.get("expression"), kind) for c, kind in zip(self.components, self.component_types, strict=False)]
        if getattr(self.evaluate, "strict_steps", False):  # rows that versions before matched differently
            parts.append(("strict steps", "1"))
        return definition_fingerprint(self.type, self.expression, self.targets, parts)


def definition_fingerprint(kind: str, expression: str, targets: Iterable[str], components=()) -> str:
    described = {"format": INDEX_FORMAT, "type": kind, "expression": expression, "targets": sorted(targets)}
    if components:
        described["components"] = list(components)
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def compile_fhirpath(expression: str) -> Callable:
    """The general FHIRPath engine (fhirpathpy), for expressions the fast path does not take."""
    return fhirpathpy.compile(expression, model=_MODEL)


def _compile(expression: str) -> Callable:
    return compile_simple(expression) or compile_fhirpath(expression)


@functools.cache
def _types_by_url() -> dict[str, str]:
    """The type of every FHIR R4 search parameter by its canonical url (what composites name)."""
    return {p["url"]: p["type"] for params in definitions.load("search-parameters").values()
            for p in params.values()}


def _build(base: str, code: str, spec: dict) -> SearchParameter:
    components = tuple(spec.get("components", ()))
    if spec["type"] == "composite":
        kinds = tuple(_types_by_url().get(c.get("definition", ""), "") for c in components)
        evaluate = composite.compile_composite(base, spec.get("expression", ""), components) \
            if composite.supported(components, kinds) else None
    else:
        kinds = ()
        evaluate = _compile(spec["expression"]) if spec.get("expression") else None
    return SearchParameter(
        code=code,
        type=spec["type"],
        expression=spec.get("expression", ""),
        url=spec["url"],
        base=base,
        targets=tuple(spec.get("targets", ())),
        modifiers=tuple(spec.get("modifiers", ())),
        comparators=tuple(spec.get("comparators", ())),
        components=components,
        component_types=kinds,
        evaluate=evaluate,
    )


def _same_path(a: str, b: str) -> bool:
    """Whether two expressions are the same union (spacing and order of the parts aside)."""
    return sorted(split_union(a)) == sorted(split_union(b))


def _rebase(spec: dict, resource_type: str) -> dict:
    """Resource-level expressions (``Resource.meta.tag``) evaluated on a concrete type."""
    expression = spec.get("expression", "")
    if expression.startswith("Resource."):
        spec = {**spec, "expression": resource_type + expression[len("Resource"):]}
    return spec


class SearchParameterRegistry:
    """Which parameters each supported type has, with compiled expressions."""

    def __init__(self, resource_types: Iterable[str], custom: Iterable[dict] = ()):
        spec = definitions.load("search-parameters")
        common = spec.get("Resource", {})
        self._by_type: dict[str, dict[str, SearchParameter]] = {}
        for resource_type in resource_types:
            params = {code: _build(resource_type, code, _rebase(s, resource_type)) for code, s in common.items()}
            params.update({code: _build(resource_type, code, s) for code, s in spec.get(resource_type, {}).items()})
            self._by_type[resource_type] = params
        for parameter in custom:
            for base in parameter.get("base", []):
                if base in self._by_type:
                    self._add(base, parameter)

    def _add(self, base: str, resource: dict) -> None:
        """A published SearchParameter (``capability/``, an implementation guide) on ``base``. One that
        indexes what a parameter of the same code already indexes only lends it its canonical url (and
        its comparators and modifiers), so rows written before stay valid; any other replaces it."""
        code = resource["code"]
        expression, targets = for_base(base, resource.get("expression", ""))
        spec = {"url": resource["url"], "type": resource["type"], "expression": expression,
                "targets": list(targets or resource.get("target", ())),
                "modifiers": resource.get("modifier", ()), "comparators": resource.get("comparator", ()),
                "components": resource.get("component", ())}
        existing = self._by_type[base].get(code)
        if existing is not None and existing.type == spec["type"] and _same_path(existing.expression, expression) \
                and (not targets or set(targets) <= set(existing.targets)):
            self._by_type[base][code] = replace(existing, url=spec["url"],
                                                modifiers=tuple(spec["modifiers"]) or existing.modifiers,
                                                comparators=tuple(spec["comparators"]) or existing.comparators)
            return
        self._by_type[base][code] = _build(base, code, spec)

    # Set by the app factory to its ``IndexState``: a parameter whose index rows are not all built yet
    # (``is_pending``) is neither advertised nor searched.
    readiness = None

    def is_pending(self, resource_type: str, code: str) -> bool:
        return self.readiness is not None and self.readiness.is_pending(resource_type, code)

    def for_type(self, resource_type: str) -> dict[str, SearchParameter]:
        return self._by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParameter | None:
        return self._by_type.get(resource_type, {}).get(code)

    @property
    def resource_types(self) -> list[str]:
        return list(self._by_type)
