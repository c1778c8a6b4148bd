"""Turn one resource into its index rows, by evaluating each search parameter's expression."""

from __future__ import annotations

from collections import defaultdict

from . import composite, date, number, quantity, reference, string, token, uri
from .paths import element_roots
from .registry import SearchParameter, SearchParameterRegistry

_ROW_BUILDERS = {
    "token": token.rows,
    "string": string.rows,
    "date": date.rows,
    "quantity": quantity.rows,
    "number": number.rows,
    "uri": uri.rows,
}


class IndexExtractor:
    def __init__(self, registry: SearchParameterRegistry, base_url: str | None = None):
        self.registry = registry
        self.base_url = base_url
        self._plans: dict[str, tuple[tuple[SearchParameter, frozenset[str] | None], ...]] = {}

    def _plan(self, resource_type: str) -> tuple[tuple[SearchParameter, frozenset[str] | None], ...]:
        """The type's indexed parameters, each with the top-level elements it starts from (None: any,
        for expressions only the general FHIRPath engine evaluates)."""
        plan = self._plans.get(resource_type)
        if plan is None:
            plan = self._plans[resource_type] = tuple(
                (p, p.evaluate.roots.get(resource_type, frozenset()) if hasattr(p.evaluate, "roots") else None)
                for p in self.registry.for_type(resource_type).values() if p.indexed and p.evaluate is not None)
        return plan

    def extract(self, resource: dict, only: frozenset[str] | None = None) -> dict[str, list[dict]]:
        """Index rows by kind (table), each row with ``param`` and the kind's value columns; of the
        parameters whose codes are in ``only`` if given (a reindex of some)."""
        resource_type = resource["resourceType"]
        rows: dict[str, list[dict]] = defaultdict(list)
        present = element_roots(resource)
        for parameter, roots in self._plan(resource_type):
            if only is not None and parameter.code not in only:
                continue
            if roots is not None and roots.isdisjoint(present):
                continue  # none of the elements it reads is there: no rows
            try:
                values = parameter.evaluate(resource)
            except Exception:  # noqa: BLE001 - an expression that cannot apply yields no rows
                continue
            if parameter.type == "composite":
                values = [composite.rows(values, parameter.component_types[1], self.base_url)]
            seen = set()
            for value in values:
                for row in self._rows(parameter.type, value):
                    row = dict(row)
                    row["param"] = parameter.code + row.pop("param_suffix", "")
                    if parameter.type == "reference" and parameter.targets and row.get("target_type") \
                            and row["target_type"] not in parameter.targets:
                        continue
                    key = tuple(sorted(row.items()))
                    if key not in seen:
                        seen.add(key)
                        rows[parameter.type].append(row)
        return rows

    def _rows(self, kind: str, value):
        if kind == "reference":
            return reference.rows(value, self.base_url)
        if kind == "composite":  # already rows (``composite.rows``)
            return list(value)
        try:
            return list(_ROW_BUILDERS[kind](value))
        except (ValueError, TypeError, KeyError, OverflowError):
            return []
