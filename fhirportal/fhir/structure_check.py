"""Structural validation from the R4 structure table, for the resource types the model library has no
class for (the R4 types that R4B dropped: MedicinalProduct*, Substance* specifications, the evidence
syntheses). It checks what the models would: every element is known, singletons are not arrays and
arrays are arrays, required elements are present, primitives have the JSON type and lexical form of
their FHIR type, primitive extensions (``_name``) are Elements, nested resources are checked by their
own type. Problems are ``Issue``s pointing at the element.
"""

from __future__ import annotations

import re

from fhirportal import definitions
from fhirportal.errors import Issue

_NUMBER = (int, float)
_PRIMITIVE_JSON = {
    "boolean": bool, "integer": int, "positiveInt": int, "unsignedInt": int, "decimal": _NUMBER,
}
_PATTERNS = {
    "id": re.compile(r"^[A-Za-z0-9\-.]{1,64}$"),
    "code": re.compile(r"^[^\s]+( [^\s]+)*$"),
    "date": re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$"),
    "dateTime": re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$"),
    "instant": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"),
    "time": re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d+)?$"),
    "oid": re.compile(r"^urn:oid:[0-2](\.(0|[1-9]\d*))+$"),
    "uuid": re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    "base64Binary": re.compile(r"^[A-Za-z0-9+/=\s]*$"),
}
_MAX_DEPTH = 64


class StructureCheck:
    def __init__(self):
        self.structure = definitions.load("structure")

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
        for name, element in elements.items():
            if element.get("required") and "choice" not in element and name not in node:
                found.append(Issue("Missing required element", code="required", expression=f"{path}.{name}"))
        for name, value in node.items():
            if name.startswith("_") and name[1:] in elements:
                self._primitive_extensions(value, f"{path}.{name}", found, depth)
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
        if type_name == "positiveInt" and value < 1 or type_name == "unsignedInt" and value < 0:
            found.append(Issue(f"'{value}' is not a valid {type_name}", code="value", expression=where))
        pattern = _PATTERNS.get(type_name)
        if isinstance(value, str) and (not value.strip() or pattern is not None and not pattern.match(value)):
            found.append(Issue(f"'{value[:64]}' is not a valid {type_name}", code="value", expression=where))

    def _primitive_extensions(self, value, where: str, found: list[Issue], depth: int) -> None:
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            if item is None and isinstance(value, list):
                continue
            at = f"{where}[{position}]" if isinstance(value, list) else where
            if not isinstance(item, dict) or set(item) - {"id", "extension"}:
                found.append(Issue("An Element (id, extension) is expected here", code="structure", expression=at))
                continue
            if "id" in item:
                self._primitive("string", item["id"], f"{at}.id", found)
            extensions = item.get("extension", [])
            if not isinstance(extensions, list):
                found.append(Issue("A non-empty array is expected", code="structure", expression=f"{at}.extension"))
                continue
            for number, extension in enumerate(extensions):
                self._complex("Extension", extension, f"{at}.extension[{number}]", found, depth + 1)
