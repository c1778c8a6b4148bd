"""Composite index rows: the pairs a composite search parameter matches (``code-value-quantity``,
``component-code-value-quantity``, ``combo-code-value-concept``, ``characteristic-value``,
``relationship``, ``context-type-value`` …).

A composite parameter's expression selects items (the Observation itself, each of its components,
each useContext …); its two components are evaluated on each item, and every combination of the
first's token rows with the second's rows is one row of ``ix_composite``: the token in ``system`` /
``code``, the second value in ``v_*`` columns by its kind (``SECOND_KINDS``), so that ``a$b`` matches
only when both hold of the same item. Composites of more than two components (MolecularSequence's
coordinates) or whose first component is not a token are not indexed (nor advertised).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from . import date, quantity, reference, string, token
from .normalize import clip
from .paths import compile_simple

SECOND_KINDS = ("token", "quantity", "date", "string", "reference")
_EMPTY = dict.fromkeys(("v_system", "v_code", "v_text", "v_number", "v_low", "v_high"))  # every row has every column
_ITEM = "Item"


def supported(components: tuple[dict, ...], kinds: tuple[str, ...]) -> bool:
    return len(components) == 2 and len(kinds) == 2 and kinds[0] == "token" and kinds[1] in SECOND_KINDS \
        and not any("%resource" in (c.get("expression") or "") for c in components)


def compile_composite(base: str, expression: str, components: tuple[dict, ...]) -> Callable[[dict], list] | None:
    """A function giving, per item the expression selects (a part naming the type alone: the resource
    itself), the values of the two components: [(first values, second values), ...]."""
    parts = [p.strip() for p in expression.split("|")]
    walkers = [None if part == base else compile_simple(part) for part in parts]
    first, second = (_component(c.get("expression") or "") for c in components)
    if first is None or second is None or any(w is None for p, w in zip(parts, walkers, strict=True) if p != base):
        return None

    def evaluate(resource: dict) -> list:
        items = []
        for walker in walkers:
            items.extend([resource] if walker is None else walker(resource))
        return [(first(item), second(item)) for item in items if isinstance(item, dict)]

    return evaluate


def _component(expression: str) -> Callable[[dict], list] | None:
    """A component's expression (relative to an item: ``code``, ``value.as(Quantity)``, ``target`` …)."""
    walker = compile_simple(" | ".join(f"{_ITEM}.{p.strip()}" for p in expression.split("|")))
    if walker is None:
        return None
    return lambda item: walker({**item, "resourceType": _ITEM})


def _second_rows(kind: str, value, base_url: str | None) -> Iterator[dict]:
    if kind == "token":
        for row in token.rows(value):
            if "param_suffix" not in row:
                yield {"v_system": row["system"], "v_code": row["code"]}
    elif kind == "quantity":
        for row in quantity.rows(value):
            yield {"v_number": row["value"], "v_system": row["system"], "v_code": row["code"], "v_text": row["unit"]}
    elif kind == "date":
        for row in date.rows(value):
            yield {"v_low": row["low"], "v_high": row["high"]}
    elif kind == "string":
        for row in string.rows(value):
            yield {"v_text": row["norm"]}
    elif kind == "reference":
        for row in reference.rows(value, base_url):
            yield {"v_system": row.get("target_type"), "v_code": row.get("target_id"), "v_text": clip(row.get("url"))}


def rows(pairs: list[tuple[list, list]], second_kind: str, base_url: str | None) -> Iterator[dict]:
    """The index rows of one resource's items (``compile_composite``'s values)."""
    for first_values, second_values in pairs:
        tokens = [row for value in first_values for row in token.rows(value) if "param_suffix" not in row]
        if not tokens:
            continue
        try:
            values = [row for value in second_values for row in _second_rows(second_kind, value, base_url)]
        except (ValueError, TypeError, KeyError, OverflowError):
            continue
        for code_row in tokens:
            for value_row in values:
                yield {"system": code_row["system"], "code": code_row["code"], **_EMPTY, **value_row}
