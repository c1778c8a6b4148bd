"""Terminology: FHIR R4's and US Core 6.1.0's CodeSystems, ValueSets and ConceptMaps in memory.

``terminology()`` is the process's ``Terminology`` (built on first use, then kept), for profile
validation, search (``:in``, ``:not-in``, ``:above``, ``:below``) and the terminology operations:

- ``expand(url, *, filter=None, count=None, offset=None) -> dict``: the ValueSet with an ``expansion``;
- ``validate_code(*, url=None, system=None, code, display=None) -> (bool, message)``;
- ``lookup(system, code, version=None) -> dict``: ``$lookup``'s Parameters;
- ``subsumes(system, code_a, code_b) -> str``: "equivalent" | "subsumes" | "subsumed-by" | "not-subsumed";
- ``contains(valueset_url, system, code) -> bool | None``: None when this server cannot tell;
- ``in_expansion(url, system, code) -> bool | None``: in the expansion; None when it cannot be expanded here;
- ``descendants(system, code)`` / ``ancestors(system, code)``: frozensets of codes, ``code`` excluded.

Value sets over content the server does not hold (SNOMED CT, LOINC, RxNorm, ...) are known but cannot
be expanded: ``NotSupported`` (422, ``not-supported``) says which part needs what.
"""

from .service import MAX_EXPANSION, Terminology, terminology

__all__ = ["MAX_EXPANSION", "Terminology", "terminology"]
