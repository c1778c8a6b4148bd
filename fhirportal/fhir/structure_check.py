"""Structural validation from the R4 structure table: every element is known, singletons are not
arrays and arrays are arrays, required elements (and required choices) are present, at most one
alternative of a choice is given, primitives have the JSON type, lexical form and range of their FHIR
type (real calendar dates, 32-bit integers, finite decimals, decodable base64), primitive extensions
(``_name``) are Elements with content, shaped like their primitive, nested resources are checked by
their own type. Problems are ``Issue``s pointing at the element.

It is the first structural check of every write (``validation``): several times faster than building
the model library's objects, and at least as strict (``tests/fhir/test_structure_check.py`` holds it
to that on mutated US Core examples). The model library is consulted only where this check finds a
problem; its verdict and words then stand.
"""

from __future__ import annotations

import binascii
import math
import re
from datetime import date

from fhirportal import definitions
from fhirportal.errors import Issue

_NUMBER = (int, float)
_PRIMITIVE_JSON = {
    "boolean": bool, "integer": int, "positiveInt": int, "unsignedInt": int, "decimal": _NUMBER,
}
_YEAR = r"(\d(\d(\d[1-9]|[1-9]0)|[1-9]00)|[1-9]000)"  # 0001-9999
_PATTERNS = {
    "id": re.compile(r"^[A-Za-z0-9\-.]{1,64}$"),
    "code": re.compile(r"^[^\s]+( [^\s]+)*$"),
    # the R4 regular expressions (hours 00-23, minutes and seconds 00-59; a calendar check follows)
    "date": re.compile(rf"^{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$"),
    "dateTime": re.compile(rf"^{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
                           r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$"),
    "instant": re.compile(rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
                          r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$"),
    "time": re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?$"),
    "oid": re.compile(r"^urn:oid:[0-2](\.(0|[1-9]\d*))+$"),
    "uuid": re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    "base64Binary": re.compile(r"^[A-Za-z0-9+/=\s]*$"),
}
_MAX_DEPTH = 64
_DATED = ("date", "dateTime", "instant")
_INT32 = (-2**31, 2**31 - 1)
_INTEGERS = ("integer", "positiveInt", "unsignedInt")


class StructureCheck:
    def __init__(self):
        self.structure = definitions.load("structure")
        self._choices = {type_key: _choices(elements) for type_key, elements in self.structure.items()}
        self._required = {type_key: tuple(name for name, element in elements.items()
                                          if element.get("required") and "choice" not in element)
                          for type_key, elements in self.structure.items()}

    def issues(self, resource: dict) -> list[Issue]:
        found: list[Issue] = []
        self._resource(resource, resource.get("resourceType", "Resource"), found, 0)
        return found

    def _resource(self, node, path: str, found: list[Issue], depth: int) -> None:
        resource_type = node.get("resourceType") if isinstance(node, dict) else None
        if not isinstance(resource_type, str) or resource_type not in self.structure or "." in resource_type:
            found.append(Issue("A resource with a known resourceType is expected here", code="structure",
                               expression=path))
            return
        self._complex(resource_type, {k: v for k, v in node.items() if k != "resourceType"}, path, found, depth)

    def _complex(self, type_key: str, node, path: str, found: list[Issue], depth: int) -> None:
        if depth > _MAX_DEPTH:
            found.append(Issue("Nested too deeply", code="structure", expression=path))
            return
        if not isinstance(node, dict):
            found.append(Issue(f"An object ({type_key}) is expected here", code="structure", expression=path))
            return
        elements = self.structure[type_key]
        for name in self._required[type_key]:
            if name not in node:
                found.append(Issue("Missing required element", code="required", expression=f"{path}.{name}"))
        alternatives, required = self._choices[type_key]
        if alternatives:
            given: dict[str, dict[str, None]] = {}  # choice -> the alternatives given, in the document's order
            for key in node:
                name = key[1:] if key.startswith("_") else key
                if name in alternatives:
                    given.setdefault(alternatives[name], {})[name] = None
            for group, names in given.items():
                if len(names) > 1:
                    names = list(names)
                    found.append(Issue(f"Only one of {', '.join(names)} may be given ({group}[x] is a choice)",
                                       code="structure", expression=f"{path}.{names[1]}"))
            for group in required:
                if group not in given:
                    found.append(Issue(f"Missing required element {group}[x]", code="required",
                                       expression=f"{path}.{group}[x]"))
        for name, value in node.items():
            if name.startswith("_") and name != "_id" and _is_primitive(elements.get(name[1:]), self.structure):
                self._primitive_extensions(value, elements[name[1:]].get("array", False), f"{path}.{name}",
                                           found, depth)
                continue
            element = elements.get(name)
            if element is None:
                found.append(Issue("Unknown element", code="structure", expression=f"{path}.{name}"))
                continue
            where = f"{path}.{name}"
            if element.get("array"):
                if not isinstance(value, list) or not value:
                    found.append(Issue("A non-empty array is expected", code="structure", expression=where))
                    continue
                for position, item in enumerate(value):
                    self._value(element["type"], item, f"{where}[{position}]", found, depth)
            elif isinstance(value, list):
                found.append(Issue("A single value is expected, not an array", code="structure", expression=where))
            else:
                self._value(element["type"], value, where, found, depth)

    def _value(self, type_name: str, value, where: str, found: list[Issue], depth: int) -> None:
        if type_name == "Resource":
            self._resource(value, where, found, depth + 1)
        elif type_name in self.structure:
            self._complex(type_name, value, where, found, depth + 1)
        elif type_name == "xhtml":
            if not isinstance(value, str) or not value.lstrip().startswith("<div"):
                found.append(Issue("XHTML (a <div>) is expected", code="structure", expression=where))
        else:
            self._primitive(type_name, value, where, found)

    @staticmethod
    def _primitive(type_name: str, value, where: str, found: list[Issue]) -> None:
        expected = _PRIMITIVE_JSON.get(type_name, str)
        if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
            found.append(Issue(f"A {type_name} is expected here", code="structure", expression=where))
            return
        if type_name in _INTEGERS and not _INT32[0] <= value <= _INT32[1] \
                or type_name == "positiveInt" and value < 1 or type_name == "unsignedInt" and value < 0 \
                or type_name == "decimal" and not math.isfinite(value):
            found.append(Issue(f"'{value}' is not a valid {type_name}", code="value", expression=where))
            return
        if not isinstance(value, str):
            return
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (JSON's \ud800): not a Unicode string
                found.append(Issue(f"A {type_name} is expected here (not valid Unicode)", code="value",
                                   expression=where))
                return
        pattern = _PATTERNS.get(type_name)
        if not value.strip() or pattern is not None and not pattern.match(value) \
                or type_name in _DATED and not _on_the_calendar(value) \
                or type_name == "base64Binary" and not _decodes(value):
            found.append(Issue(f"'{value[:64]}' is not a valid {type_name}", code="value", expression=where))

    def _primitive_extensions(self, value, array: bool, where: str, found: list[Issue], depth: int) -> None:
        if array != isinstance(value, list):
            shape = "an array (its primitive is one)" if array else "a single Element, not an array"
            found.append(Issue(f"{shape[0].upper()}{shape[1:]} is expected here", code="structure", expression=where))
            return
        items = value if array else [value]
        for position, item in enumerate(items):
            if item is None and array:
                continue
            at = f"{where}[{position}]" if array else where
            if not isinstance(item, dict) or set(item) - {"id", "extension"} or not item:
                found.append(Issue("An Element with an id or extensions is expected here", code="structure",
                                   expression=at))
                continue
            if "id" in item:
                self._primitive("string", item["id"], f"{at}.id", found)
            extensions = item.get("extension", [])
            if not isinstance(extensions, list):
                found.append(Issue("A non-empty array is expected", code="structure", expression=f"{at}.extension"))
                continue
            for number, extension in enumerate(extensions):
                self._complex("Extension", extension, f"{at}.extension[{number}]", found, depth + 1)


def _choices(elements: dict) -> tuple[dict[str, str], tuple[str, ...]]:
    """A type's choice elements: each alternative's choice (valueString -> value), and the choices of
    which one alternative is required."""
    alternatives = {name: element["choice"] for name, element in elements.items() if "choice" in element}
    required = {element["choice"] for element in elements.values() if "choice" in element and element.get("required")}
    return alternatives, tuple(sorted(required))


def _is_primitive(element: dict | None, structure: dict) -> bool:
    return element is not None and element["type"] not in structure and element["type"] not in ("Resource", "xhtml")


def _on_the_calendar(value: str) -> bool:
    """A full date part is a real day (no 30 February); a partial one (year, year-month) passed its pattern."""
    if len(value) < 10:
        return True
    try:
        date(int(value[:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def _decodes(value: str) -> bool:
    try:
        binascii.a2b_base64("".join(value.split()).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return True
