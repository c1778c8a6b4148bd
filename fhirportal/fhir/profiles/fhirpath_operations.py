"""The values, operators and functions of the compiled FHIRPath evaluator (``fhirpath``): each operator
takes its operands' collections, each function is made from its compiled arguments and takes the focus
collection and ``$this``; collections are lists of (value, type path) items."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

INTEGER = re.compile(r"^[+-]?\d+$")

Item = tuple[Any, str]  # a value and its type path (a type name, or an element path for backbone elements)
Compiled = Callable[[list, Item], list]  # (focus collection, $this) -> collection


class Fallback(Exception):
    """The data needs what this module does not evaluate (date comparison): fhirpathpy decides."""


class EvaluationError(Exception):
    """FHIRPath calls this an error (a collection where a single item is required)."""


# ------------------------------------------------------------------ values

def _singleton(collection: list) -> Any:
    if len(collection) > 1:
        raise EvaluationError(f"a single item was expected, found {len(collection)}")
    return collection[0][0] if collection else None


def _truth(collection: list) -> bool | None:
    """A collection where a Boolean is expected: empty -> None, a single Boolean -> itself, anything
    else -> True."""
    if not collection:
        return None
    value = collection[0][0]
    return value if len(collection) == 1 and isinstance(value, bool) else True


def boolean(value: bool | None) -> list:
    return [] if value is None else [(value, "boolean")]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dated(item: Item) -> bool:
    return item[1].lower() in ("date", "datetime", "instant", "time")


def _same(left: Item, right: Item) -> bool:
    if _dated(left) or _dated(right):
        raise Fallback
    a, b = left[0], right[0]
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _number(a) and _number(b):
        return a == b
    if isinstance(a, str | dict | list) and type(a) is type(b):
        return a == b
    return False


def _type_name(item: Item) -> str:
    path = item[1]
    if "." not in path:
        return path
    return "BackboneElement" if path.partition(".")[0][:1].isupper() else path.rpartition(".")[2]


def is_type(item: Item, type_name: str) -> bool:
    if isinstance(item[0], dict) and "resourceType" in item[0]:
        return item[0]["resourceType"] == type_name
    return _type_name(item).lower() == type_name.rpartition(".")[2].lower()



# ------------------------------------------------------------------ operators

def _or(a: list, b: list) -> list:
    x, y = _truth(a), _truth(b)
    return boolean(True if x or y else (False if x is False and y is False else None))


def _and(a: list, b: list) -> list:
    x, y = _truth(a), _truth(b)
    return boolean(False if x is False or y is False else (True if x and y else None))


def _xor(a: list, b: list) -> list:
    x, y = _truth(a), _truth(b)
    return boolean(None if x is None or y is None else x != y)


def _implies(a: list, b: list) -> list:
    x, y = _truth(a), _truth(b)
    if x is False:
        return boolean(True)
    return boolean(True if y else (None if x is None or y is None else False))


def _equal(a: list, b: list) -> list:
    if not a or not b:
        return []
    return boolean(len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True)))


def _unequal(a: list, b: list) -> list:
    result = _equal(a, b)
    return boolean(not result[0][0]) if result else []


def _operands(a: list, b: list) -> tuple[Any, Any] | None:
    if not a or not b:
        return None
    if len(a) > 1 or len(b) > 1:
        raise EvaluationError("an operator needs single items")
    if _dated(a[0]) or _dated(b[0]):
        raise Fallback
    x, y = a[0][0], b[0][0]
    if (_number(x) and _number(y)) or (isinstance(x, str) and isinstance(y, str)):
        return x, y
    raise EvaluationError(f"cannot compare or combine {type(x).__name__} and {type(y).__name__}")


def _comparison(compare: Callable[[Any, Any], bool]) -> Callable[[list, list], list]:
    def apply(a: list, b: list) -> list:
        pair = _operands(a, b)
        return [] if pair is None else boolean(compare(*pair))

    return apply


def _arithmetic(combine: Callable[[Any, Any], Any], strings: bool = False) -> Callable[[list, list], list]:
    def apply(a: list, b: list) -> list:
        pair = _operands(a, b)
        if pair is None:
            return []
        if isinstance(pair[0], str) and not strings:
            raise EvaluationError("arithmetic on strings")
        result = combine(*pair)
        if result is None:
            return []
        return [(result, "string" if isinstance(result, str) else "integer" if isinstance(result, int) else "decimal")]

    return apply


def _mod(x: Any, y: Any) -> Any:
    if y == 0:
        return None
    return x - y * math.trunc(x / y) if isinstance(x, int) and isinstance(y, int) else math.fmod(x, y)


OPERATORS: dict[str, dict[str, Callable[[list, list], list]]] = {
    "OrExpression": {"or": _or, "xor": _xor},
    "AndExpression": {"and": _and},
    "ImpliesExpression": {"implies": _implies},
    "EqualityExpression": {"=": _equal, "!=": _unequal},
    "InequalityExpression": {"<": _comparison(lambda x, y: x < y), "<=": _comparison(lambda x, y: x <= y),
                             ">": _comparison(lambda x, y: x > y), ">=": _comparison(lambda x, y: x >= y)},
    "AdditiveExpression": {"+": _arithmetic(lambda x, y: x + y, strings=True), "-": _arithmetic(lambda x, y: x - y)},
    "MultiplicativeExpression": {"*": _arithmetic(lambda x, y: x * y), "mod": _arithmetic(_mod)},
}


# ------------------------------------------------------------------ functions

def _string(focus: list) -> str | None:
    value = _singleton(focus)
    return value if isinstance(value, str) else None


def _integer_argument(argument: Compiled, focus: list, this: Item) -> int | None:
    value = _singleton(argument([this], this))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _exists(criteria: Compiled | None = None) -> Compiled:
    if criteria is None:
        return lambda focus, this: boolean(bool(focus))
    return lambda focus, this: boolean(any(_truth(criteria([item], item)) is True for item in focus))


def _where(criteria: Compiled) -> Compiled:
    return lambda focus, this: [item for item in focus if _truth(criteria([item], item)) is True]


def _select(projection: Compiled) -> Compiled:
    return lambda focus, this: [found for item in focus for found in projection([item], item)]


def _matches(pattern: Compiled) -> Compiled:
    def matches(focus: list, this: Item) -> list:
        value, regex = _string(focus), _singleton(pattern([this], this))
        if value is None or not isinstance(regex, str):
            return []
        return boolean(re.search(regex, value, re.DOTALL) is not None)

    return matches


def _substring(start: Compiled, length: Compiled | None = None) -> Compiled:
    def substring(focus: list, this: Item) -> list:
        value, begin = _string(focus), _integer_argument(start, focus, this)
        if value is None or begin is None or begin < 0 or begin >= len(value):
            return []
        if length is None:
            return [(value[begin:], "string")]
        count = _integer_argument(length, focus, this)
        return [] if count is None else [(value[begin:begin + max(count, 0)], "string")]

    return substring


def _to_integer(focus: list, this: Item) -> list:
    if len(focus) != 1:
        return []
    value = focus[0][0]
    if isinstance(value, bool):
        return [(int(value), "integer")]
    if isinstance(value, int) or (isinstance(value, str) and INTEGER.match(value)):
        return [(int(value), "integer")]
    return []


def _to_string(focus: list, this: Item) -> list:
    if len(focus) != 1:
        return []
    value = focus[0][0]
    if isinstance(value, bool):
        return [("true" if value else "false", "string")]
    if isinstance(value, str | int | float):
        return [(str(value), "string")]
    return []


def _length(focus: list, this: Item) -> list:
    value = _string(focus)
    return [] if value is None else [(len(value), "integer")]


def _iif(criterion: Compiled, yes: Compiled, no: Compiled | None = None) -> Compiled:
    def iif(focus: list, this: Item) -> list:
        current = focus[0] if len(focus) == 1 else this
        if _truth(criterion(focus, current)) is True:
            return yes(focus, current)
        return no(focus, current) if no is not None else []

    return iif


FUNCTIONS: dict[tuple[str, int], Callable[..., Compiled]] = {
    ("exists", 0): _exists, ("exists", 1): _exists,
    ("empty", 0): lambda: lambda focus, this: boolean(not focus),
    ("where", 1): _where, ("select", 1): _select, ("matches", 1): _matches,
    ("substring", 1): _substring, ("substring", 2): _substring,
    ("toInteger", 0): lambda: _to_integer, ("toString", 0): lambda: _to_string, ("length", 0): lambda: _length,
    ("iif", 2): _iif, ("iif", 3): _iif,
    ("not", 0): lambda: lambda focus, this: boolean(None if _truth(focus) is None else not _truth(focus)),
    ("count", 0): lambda: lambda focus, this: [(len(focus), "integer")],
    ("first", 0): lambda: lambda focus, this: focus[:1],
}
