"""A compiled FHIRPath evaluator for the forms profile invariants use, built on fhirpathpy's parser and
R4 model (its values, operators and functions are in ``fhirpath_operations``); an expression with
anything else (or data this module does not compare, such as dates) is evaluated by fhirpathpy itself.

fhirpathpy interprets its parse tree on every call (60-600 µs for a US Core invariant); compiled into
closures here the same expressions cost a few microseconds. The semantics are FHIRPath N1's
(https://hl7.org/fhirpath/N1/) as HL7's reference validator reads them, where fhirpathpy differs:
- where a Boolean is expected, a collection that is not a single Boolean is ``true`` if it has items
  (us-core-13 ``practitioner or organization or …`` on references; fhirpathpy raises there, and N1's
  singleton evaluation would call two locations an error);
- ``=`` and ``!=`` with an empty side are empty (fhirpathpy: false);
- type tests (``is``, ``ofType``) compare type names without regard to case, so that an
  ``effectiveDateTime`` (FHIR ``dateTime``) ``is DateTime``.

Supported: paths (choice elements by the model's choice types, primitives present only through
``_name`` extensions), ``$this``, string/number/boolean literals, ``and or xor implies``, ``= !=``,
``< <= > >=``, ``+ - * mod``, ``is``, and the functions ``exists empty where select ofType matches
substring toInteger toString length iif not count first``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhirportal.fhir.profiles.fhirpath_operations import (
    FUNCTIONS,
    INTEGER,
    OPERATORS,
    Compiled,
    EvaluationError,
    Fallback,
    Item,
    boolean,
    is_type,
)

__all__ = ["MODEL", "EvaluationError", "Fallback", "Unsupported", "compile_expression"]

MODEL = models["r4"]
_PATH_TYPES: dict[str, str] = MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = MODEL["pathsDefinedElsewhere"]
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


class Unsupported(Exception):
    """The expression uses something this module does not compile."""


def compile_expression(expression: str) -> Callable[[Any, str], list] | None:
    """A function of (value, type path) returning the expression's result (a list of values), or None
    if the expression uses something not supported here. The function raises ``Fallback`` for data it
    does not evaluate and ``EvaluationError`` where FHIRPath reports an error."""
    try:
        compiled = _compile(parse(expression)["children"][0])
    except Unsupported:
        return None

    def evaluate(value: Any, type_path: str) -> list:
        return [found for found, _ in compiled([(value, type_path)], (value, type_path))]

    return evaluate


# ------------------------------------------------------------------ navigation

def _child_path(path: str, name: str) -> str:
    full = f"{path}.{name}"
    full = _ELSEWHERE.get(full, full)
    found = _PATH_TYPES.get(full)
    if found is None:
        return full  # a backbone element (or a path the model does not know): navigated by name
    return found.rpartition(".")[2] if found.startswith("System.") else found


def _extend(found: list, value: Any, extra: Any, path: str) -> None:
    if isinstance(value, list) or isinstance(extra, list):
        values = value if isinstance(value, list) else []
        extras = extra if isinstance(extra, list) else []
        for index in range(max(len(values), len(extras))):
            item = values[index] if index < len(values) else None
            if item is not None or (index < len(extras) and extras[index] is not None):
                found.append((item, path))
    elif value is not None or extra is not None:
        found.append((value, path))


def _member(name: str) -> Compiled:
    def member(focus: list, this: Item) -> list:
        found: list = []
        for value, path in focus:
            if not isinstance(value, dict):
                continue
            if name[:1].isupper() and value.get("resourceType") == name:
                found.append((value, path))
                continue
            choice = _CHOICES.get(f"{path}.{name}")
            if choice is None:
                _extend(found, value.get(name), value.get("_" + name), _child_path(path, name))
                continue
            for type_name in choice:
                key = name + type_name
                _extend(found, value.get(key), value.get("_" + key), type_name)
        return found

    return member


# ------------------------------------------------------------------ compiling

def _compile(node: dict) -> Compiled:
    kind = node.get("type")
    children = node.get("children") or []
    if kind in ("TermExpression", "ParenthesizedTerm"):
        return _compile(children[0])
    if kind == "InvocationTerm":
        return _invocation(children[0])
    if kind == "InvocationExpression":
        left, right = _compile(children[0]), _invocation(children[1])
        return lambda focus, this: right(left(focus, this), this)
    if kind == "LiteralTerm":
        return _literal(children[0])
    if kind == "TypeExpression" and node.get("terminalNodeText") == ["is"]:
        return _type_test(_compile(children[0]), children[1]["text"].replace("`", ""))
    operator = (node.get("terminalNodeText") or [None])[0]
    if kind in OPERATORS and operator in OPERATORS[kind] and len(children) == 2:
        left, right, apply = _compile(children[0]), _compile(children[1]), OPERATORS[kind][operator]
        return lambda focus, this: apply(left(focus, this), right(focus, this))
    raise Unsupported(f"{kind} {operator or ''}")


def _literal(node: dict) -> Compiled:
    kind, text = node.get("type"), node.get("text", "")
    if kind == "StringLiteral":
        value = _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u" and len(m.group(1)) == 5
                            else _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
        result = [(value, "string")]
    elif kind == "NumberLiteral":
        result = [(int(text), "integer")] if INTEGER.match(text) else [(float(text), "decimal")]
    elif kind == "BooleanLiteral":
        result = [(text == "true", "boolean")]
    else:
        raise Unsupported(kind)
    return lambda focus, this: result


def _type_test(operand: Compiled, type_name: str) -> Compiled:
    def test(focus: list, this: Item) -> list:
        found = operand(focus, this)
        if len(found) > 1:
            raise EvaluationError(f"'is' needs a single item, found {len(found)}")
        return boolean(is_type(found[0], type_name)) if found else []

    return test


def _invocation(node: dict) -> Compiled:
    kind = node.get("type")
    if kind == "MemberInvocation":
        return _member(node["children"][0]["text"].replace("`", ""))
    if kind == "ThisInvocation":
        return lambda focus, this: [this]
    if kind == "FunctionInvocation":
        function = node["children"][0]
        name = function["children"][0]["text"]
        params = function["children"][1]["children"] if len(function["children"]) > 1 else []
        if name == "ofType":
            if len(params) != 1:
                raise Unsupported("ofType arity")
            type_name = params[0]["text"].replace("`", "")
            return lambda focus, this: [item for item in focus if is_type(item, type_name)]
        make = FUNCTIONS.get((name, len(params)))
        if make is None:
            raise Unsupported(f"{name}/{len(params)}")
        return make(*[_compile(param) for param in params])
    raise Unsupported(kind)

