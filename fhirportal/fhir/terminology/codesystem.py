"""One CodeSystem's concepts, indexed: by code, its hierarchy (parents and children) and the
``compose.include.filter`` operators over them.

The hierarchy is the nesting of ``concept`` (read as is-a: no R4 code system says otherwise) plus
each ``child`` property (a further parent, as the HL7 v3 code systems record multiple parents). The
concept dicts are the resource's own, not copies: treat them as read-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fhirportal.errors import NotSupported

# Concept properties that mark a concept as a grouper, not to be used in data.
ABSTRACT_PROPERTIES = ("notSelectable", "abstract")
INACTIVE_STATUSES = ("retired", "deprecated", "inactive")
HIERARCHY_PROPERTIES = ("concept", "code")  # what is-a, descendent-of, ... filter on
VALUE_KEYS = ("valueCode", "valueCoding", "valueString", "valueInteger", "valueBoolean", "valueDateTime",
              "valueDecimal")


def property_value(prop: dict) -> tuple[str, object] | None:
    """(value[x] key, value) of a concept property."""
    for key in VALUE_KEYS:
        if key in prop:
            return key, prop[key]
    return None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a Coding
        return str(value.get("code", ""))
    return str(value)


class CodeSystem:
    """The concepts of one CodeSystem resource (``resource`` as published, without narrative)."""

    def __init__(self, resource: dict):
        self.resource = resource
        self.url: str = resource["url"]
        self.version: str | None = resource.get("version")
        self.content: str = resource.get("content", "complete")
        self.concepts: dict[str, dict] = {}
        self.order: list[str] = []  # document order, parents before their children
        self.parents: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self._walk(resource.get("concept", []), None)
        for code, concept in self.concepts.items():
            for prop in concept.get("property", []):
                if prop.get("code") == "child" and prop.get("valueCode") in self.concepts:
                    self._link(code, prop["valueCode"])
        self._below: dict[str, frozenset[str]] = {}
        self._above: dict[str, frozenset[str]] = {}

    def _walk(self, concepts: list[dict], parent: str | None) -> None:
        for concept in concepts:
            code = concept.get("code")
            if not isinstance(code, str) or code in self.concepts:
                continue
            self.concepts[code] = concept
            self.order.append(code)
            if parent is not None:
                self._link(parent, code)
            self._walk(concept.get("concept", []), code)

    def _link(self, parent: str, child: str) -> None:
        if child not in self.children.setdefault(parent, []):
            self.children[parent].append(child)
            self.parents.setdefault(child, []).append(parent)

    @property
    def name(self) -> str:
        return self.resource.get("title") or self.resource.get("name") or self.url

    @property
    def complete(self) -> bool:
        """Does this server hold every concept of the code system?"""
        return self.content == "complete"

    def concept(self, code: str) -> dict | None:
        return self.concepts.get(code)

    def display(self, code: str) -> str | None:
        concept = self.concepts.get(code)
        return concept.get("display") if concept else None

    def properties(self, code: str) -> Iterator[tuple[str, str, object]]:
        """(property code, value[x] key, value) of a concept: its own properties, then ``parent`` and
        ``child``."""
        concept = self.concepts.get(code) or {}
        for prop in concept.get("property", []):
            found = property_value(prop)
            if found is not None and prop.get("code") != "child":
                yield prop["code"], found[0], found[1]
        for parent in self.parents.get(code, []):
            yield "parent", "valueCode", parent
        for child in self.children.get(code, []):
            yield "child", "valueCode", child

    def is_abstract(self, code: str) -> bool:
        return any(name in ABSTRACT_PROPERTIES and value is True for name, _, value in self.properties(code))

    def is_inactive(self, code: str) -> bool:
        return any((name == "status" and value in INACTIVE_STATUSES) or (name == "inactive" and value is True)
                   for name, _, value in self.properties(code))

    # ------------------------------------------------------------------ hierarchy
    def _closure(self, code: str, links: dict[str, list[str]], cache: dict[str, frozenset[str]]) -> frozenset[str]:
        if code not in cache:
            found: set[str] = set()
            todo = list(links.get(code, []))
            while todo:
                current = todo.pop()
                if current not in found:
                    found.add(current)
                    todo.extend(links.get(current, []))
            found.discard(code)
            cache[code] = frozenset(found)
        return cache[code]

    def descendants(self, code: str) -> frozenset[str]:
        """Every code below ``code`` (not ``code`` itself)."""
        return self._closure(code, self.children, self._below)

    def ancestors(self, code: str) -> frozenset[str]:
        """Every code above ``code`` (not ``code`` itself)."""
        return self._closure(code, self.parents, self._above)

    def subsumes(self, code_a: str, code_b: str) -> str:
        if code_a == code_b:
            return "equivalent"
        if code_b in self.descendants(code_a):
            return "subsumes"
        if code_a in self.descendants(code_b):
            return "subsumed-by"
        return "not-subsumed"

    # ------------------------------------------------------------------ filters
    def _with_property(self, name: str, matches) -> set[str]:
        return {code for code in self.order
                if any(prop == name and matches(_text(value)) for prop, _, value in self.properties(code))}

    def filter(self, prop: str, op: str, value: str) -> set[str]:
        """The codes a ``compose.include.filter`` (property, op, value) selects."""
        if prop in HIERARCHY_PROPERTIES:
            if op in ("is-a", "descendent-of", "is-not-a", "generalizes") and value not in self.concepts:
                return set() if op != "is-not-a" else set(self.order)
            if op == "is-a":
                return {value} | self.descendants(value)
            if op == "descendent-of":
                return set(self.descendants(value))
            if op == "is-not-a":
                return set(self.order) - {value} - self.descendants(value)
            if op == "generalizes":
                return {value} | self.ancestors(value)
            if op in ("=", "in"):
                wanted = value.split(",") if op == "in" else [value]
                return {code for code in wanted if code in self.concepts}
            if op == "not-in":
                return set(self.order) - set(value.split(","))
            if op == "regex":
                pattern = _regex(value)
                return {code for code in self.order if pattern.fullmatch(code)}
        elif op == "=":
            return self._with_property(prop, lambda text: text == value)
        elif op == "in":
            wanted = set(value.split(","))
            return self._with_property(prop, lambda text: text in wanted)
        elif op == "not-in":
            wanted = set(value.split(","))
            return set(self.order) - self._with_property(prop, lambda text: text in wanted)
        elif op == "regex":
            pattern = _regex(value)
            return self._with_property(prop, lambda text: pattern.fullmatch(text) is not None)
        elif op == "exists":
            having = self._with_property(prop, lambda _text: True)
            return having if value == "true" else set(self.order) - having
        raise NotSupported(f"The filter '{prop} {op} {value}' on {self.url} is not supported by this server")


def _regex(value: str) -> re.Pattern:
    try:
        return re.compile(value)
    except re.error as exc:
        raise NotSupported(f"The filter's regular expression '{value}' is not one this server can run: {exc}") \
            from exc
