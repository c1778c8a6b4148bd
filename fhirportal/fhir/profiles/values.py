"""fixed[x] and pattern[x] on JSON values: a fixed value must be equal to the instance's (exactly: every
property, nothing more); a pattern must be contained in it (every property the pattern has, with the
pattern's value, recursively; each item of a pattern list matched by some item of the instance's list).
Booleans are never equal to numbers; numbers compare by value (``1`` equals ``1.0``)."""

from __future__ import annotations

import json
from typing import Any


def _same_primitive(value: Any, expected: Any) -> bool:
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    return value == expected


def equals(value: Any, fixed: Any) -> bool:
    if isinstance(fixed, dict):
        return isinstance(value, dict) and value.keys() == fixed.keys() and all(
            equals(value[key], item) for key, item in fixed.items())
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(
            equals(v, f) for v, f in zip(value, fixed, strict=True))
    return not isinstance(value, dict | list) and _same_primitive(value, fixed)


def contains(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(contains(value.get(key), item) for key, item in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(contains(v, item) for v in value) for item in pattern)
    return not isinstance(value, dict | list) and _same_primitive(value, pattern)


def show(value: Any) -> str:
    """A value as diagnostics quote it (compact JSON)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
