"""Number index rows."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal


def rows(value) -> Iterator[dict]:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        yield {"value": float(value)}
