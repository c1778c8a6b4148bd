"""Walking an instance along a compiled profile: for every element the snapshot defines, the items the
instance has there (array items, choice properties, primitives present only through ``_name``
extensions) are counted against min/max, sliced, and each checked against its element (or slice):
fixed[x], pattern[x], the choice's allowed types, Reference targets, required bindings, invariants,
then its children. Extensions whose url is a definition in the loaded packages are validated against
that definition wherever they occur, also inside datatypes the snapshot does not expand.

Only what the profile says is checked here; the base structure (unknown elements, primitive formats) is
the model validation's job (``fhirportal.fhir.validation``), so unknown properties are passed over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirportal.fhir.profiles import bindings, extensions, invariants, slicing, values
from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import Contains, Element, Profile, type_of_suffix

REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
EXTENSIONS = ("extension", "modifierExtension")


class Run:
    """One validation: the issues found so far and what the walk consults."""

    __slots__ = ("issues", "contains", "definitions", "resource", "root")

    def __init__(self, resource: dict, root: Element, contains: Contains,
                 definitions: Callable[[str], Profile | None]):
        self.issues: list = []
        self.contains = contains
        self.definitions = definitions  # extension url -> its compiled definition, if loaded
        self.resource = resource
        self.root = root


def walk(run: Run, node: Element, obj: dict, expression: str, type_code: str | None) -> None:
    """Check ``obj`` (an instance of ``node``) against ``node``'s children."""
    hits: dict[Element, dict[str, str | None]] = {}
    keys = node.keys
    for key in obj:
        entry = keys.get(key) or _other_choice(node, key)
        if entry is not None:
            hits.setdefault(entry[0], {})[key[1:] if key[0] == "_" else key] = entry[1]
    for child in node.required:
        if child not in hits:
            _element(run, node, type_code, child, obj, {}, expression)
    for child, names in hits.items():
        _element(run, node, type_code, child, obj, names, expression)


def _other_choice(node: Element, key: str) -> tuple[Element, str] | None:
    """A property naming a choice with a type the profile does not allow (``effectivePeriod`` where only
    dateTime is): the choice element and the type the suffix names."""
    if not node.choices:
        return None
    name = key[1:] if key[:1] == "_" else key
    for child in node.choices:
        prefix = child.json_name
        if name.startswith(prefix) and len(name) > len(prefix) and name[len(prefix)].isupper():
            return child, type_of_suffix(name[len(prefix):])
    return None


def _items(obj: dict, name: str) -> list[tuple[Any, int | None, Any]]:
    """(value, index, its ``_name`` part) of each item of property ``name``; value None for a primitive
    present only through its ``_name`` extensions; index None for a single value."""
    value, extra = obj.get(name), obj.get("_" + name)
    if extra is None:
        if isinstance(value, list):
            return [(item, index, None) for index, item in enumerate(value) if item is not None]
        return [] if value is None else [(value, None, None)]
    if isinstance(value, list) or isinstance(extra, list):
        found = value if isinstance(value, list) else []
        more = extra if isinstance(extra, list) else []
        items = [(found[i] if i < len(found) else None, i, more[i] if i < len(more) else None)
                 for i in range(max(len(found), len(more)))]
        return [item for item in items if item[0] is not None or item[2] is not None]
    return [(value, None, extra)]


def _element(run: Run, parent: Element, parent_type: str | None, child: Element, obj: dict,
             names: dict[str, str | None], expression: str) -> None:
    if child.plain:  # counted, and searched for package extensions if complex
        count = 0
        for name in names:
            for value, index, extra in _items(obj, name):
                count += 1
                if isinstance(value, dict) or isinstance(extra, dict):
                    where = f"{expression}.{name}" if index is None else f"{expression}.{name}[{index}]"
                    _scan(run, value if isinstance(value, dict) else extra, where)
        if count < child.min or (child.max is not None and count > child.max):
            _cardinality(run, child, count, _collection(expression, child, names))
        return
    items, count = [], 0
    for name, type_code in names.items():
        for value, index, extra in _items(obj, name):
            where = f"{expression}.{name}" if index is None else f"{expression}.{name}[{index}]"
            count += 1
            if isinstance(extra, dict):  # a primitive's extensions
                _scan(run, extra, where)
            if child.choice and type_code not in child.types:
                run.issues.append(problem(where, f"type {type_code} is not allowed here", child.profile,
                                          f"{child.id} allows {', '.join(child.types)}", code="structure"))
                continue
            items.append((value, type_code, where))
    maximum = child.max
    if count < child.min or (maximum is not None and count > maximum):
        _cardinality(run, child, count, _collection(expression, child, names))
    if child.slicing is not None and child.slicing.supported and child.slicing.slices:
        # a missing element or an item of a type not allowed is reported already: not again as missing slices
        minimums = len(items) == count and (count > 0 or child.min == 0)
        nodes = slicing.assign(child, items, _collection(expression, child, names), run.contains, run.issues,
                               minimums)
        for (value, type_code, where), node in zip(items, nodes, strict=True):
            if value is not None:
                _item(run, parent, parent_type, node, value, type_code, where)
    else:
        for value, type_code, where in items:
            if value is not None:
                _item(run, parent, parent_type, child, value, type_code, where)


def _collection(expression: str, child: Element, names: dict) -> str:
    """The expression of all of ``child``'s items (a choice by its one present name, if one is)."""
    return f"{expression}.{next(iter(names))}" if len(names) == 1 else f"{expression}.{child.json_name}"


def _cardinality(run: Run, child: Element, count: int, where: str) -> None:
    rule = f"{child.id} requires {child.cardinality()}"
    if count < child.min:
        run.issues.append(problem(where, f"minimum {child.min}, found {count}", child.profile, rule,
                                  code="required"))
    else:
        what = "is prohibited" if child.max == 0 else f"maximum {child.max}, found {count}"
        run.issues.append(problem(where, what, child.profile, rule, code="structure"))


def _item(run: Run, parent: Element, parent_type: str | None, node: Element, value: Any, type_code: str | None,
          where: str) -> None:
    issues = run.issues
    if node.fixed is not None and not values.equals(value, node.fixed[1]):
        issues.append(problem(where, f"must be {values.show(node.fixed[1])}", node.profile,
                              f"{node.id} {node.fixed[0]}", code="value"))
    if node.pattern is not None and not values.contains(value, node.pattern[1]):
        issues.append(problem(where, f"must contain {values.show(node.pattern[1])}", node.profile,
                              f"{node.id} {node.pattern[0]}", code="value"))
    if node.binding is not None:
        issues.extend(bindings.check(node, value, type_code, where, run.contains))
    if node.targets is not None and type_code == "Reference" and isinstance(value, dict):
        target = _reference_type(value, run.resource)
        if target is not None and target not in node.targets:
            issues.append(problem(where, f"a reference to {target} is not allowed here", node.profile,
                                  f"{node.id} targets {', '.join(sorted(node.targets))}", code="structure"))
    if node.invariants:
        issues.extend(invariants.check(node, value, type_code, where))
    if not isinstance(value, dict):
        return
    if "resourceType" in value:  # a contained resource: only its extensions are validated here
        _scan(run, value, where)
    elif type_code == "Extension":
        _extension(run, parent, parent_type, node, value, where)
    elif node.children:
        walk(run, node, value, where, type_code)
    else:
        _scan(run, value, where)


def _extension(run: Run, parent: Element, parent_type: str | None, node: Element, value: dict, where: str) -> None:
    if node.children:
        walk(run, node, value, where, "Extension")
    url = value.get("url")
    definition = run.definitions(url) if isinstance(url, str) else None
    if definition is None:
        if not node.children:
            _scan(run, value, where)
        return
    if not extensions.context_allows(definition, parent, parent_type, parent is run.root):
        run.issues.append(extensions.context_problem(definition, parent, parent_type, where))
    walk(run, definition.root, value, where, "Extension")


def _scan(run: Run, value: dict, where: str) -> None:
    """Find extensions defined in the loaded packages inside a value the snapshot does not expand (or in
    a contained resource)."""
    for key, child in value.items():
        if isinstance(child, list):
            for index, item in enumerate(child):
                if isinstance(item, dict):
                    _scanned(run, key, item, f"{where}.{key}[{index}]")
        elif isinstance(child, dict):
            _scanned(run, key, child, f"{where}.{key}")


def _scanned(run: Run, key: str, item: dict, where: str) -> None:
    url = item.get("url") if key in EXTENSIONS else None
    definition = run.definitions(url) if isinstance(url, str) else None
    if definition is None:
        _scan(run, item, where)
    else:
        walk(run, definition.root, item, where, "Extension")


def _reference_type(reference: dict, resource: dict) -> str | None:
    """The resource type a Reference points at, when the reference (or its ``type``) says."""
    literal = reference.get("reference")
    if isinstance(literal, str):
        if literal.startswith("#"):
            contained = resource.get("contained")
            for item in contained if isinstance(contained, list) else []:
                if isinstance(item, dict) and item.get("id") == literal[1:]:
                    found = item.get("resourceType")
                    return found if isinstance(found, str) else None
            return None
        match = REFERENCE.search(literal)
        if match:
            return match.group(1)
    declared = reference.get("type")
    if isinstance(declared, str) and declared:
        name = declared.rpartition("/")[2]
        return name if name[:1].isupper() and name.isalnum() else None
    return None
