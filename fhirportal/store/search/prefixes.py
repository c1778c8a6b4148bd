"""Comparison prefixes of number, date and quantity search values (``ge2024``, ``lt5.4``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, not_

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and not raw[2:3].isalpha():
        return raw[:2], raw[2:]
    return "eq", raw


def number_range(text: str) -> tuple[float, float, float]:
    """(value, low, high): the implicit precision range of a decimal (``5.4`` → [5.35, 5.45])."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a number: {text!r}")
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb(exponent - 1) if isinstance(exponent, int) else Decimal(0)
    return float(value), float(value - half), float(value + half)


def range_condition(prefix: str, low_col, high_col, low, high, slack=0):
    """SQL condition for a stored [low_col, high_col] range against a search range [low, high].

    ``slack`` is how far "approximately" (``ap``) reaches beyond the search range; the caller knows
    the scale (10 % of a number, 10 % of the distance from now for a date).
    """
    match prefix:
        case "eq":
            return and_(low_col >= low, high_col <= high)
        case "ne":
            return not_(and_(low_col >= low, high_col <= high))
        case "gt":
            return high_col > high
        case "lt":
            return low_col < low
        case "ge":
            return high_col >= low
        case "le":
            return low_col <= high
        case "sa":
            return low_col > high
        case "eb":
            return high_col < low
        case "ap":
            return and_(low_col <= high + slack, high_col >= low - slack)
    raise ValueError(f"unknown prefix {prefix!r}")
