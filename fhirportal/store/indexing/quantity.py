"""Quantity index rows: value with system/code/unit (Quantity, Age, Duration, Money, Range ends)."""

from __future__ import annotations

from collections.abc import Iterator

from .normalize import clip


def rows(value) -> Iterator[dict]:
    if not isinstance(value, dict):
        return
    if "value" in value:
        yield {"value": float(value["value"]), "system": clip(value.get("system")),
               "code": clip(value.get("code") or value.get("currency")), "unit": clip(value.get("unit"))}
    else:  # Range
        for end in ("low", "high"):
            if isinstance(value.get(end), dict):
                yield from rows(value[end])
