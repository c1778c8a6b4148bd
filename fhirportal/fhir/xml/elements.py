"""Each FHIR R4 type's elements as the XML format sees them: name, type, kind, order, cardinality.

Read from the generated definitions (``tools/build_definitions.py``): ``structure.json`` gives each
property's type and whether it repeats, ``elements.json`` the definitions' order (the order XML
requires) and which properties are attributes of their parent element (``Element.id``,
``Extension.url``). A type is a resource or datatype name or a backbone element path
(``Observation.component``); choice elements are there once per type (``valueQuantity``, ...).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from fhirportal import definitions

FHIR_NS = "http://hl7.org/fhir"

# What an element holds, which decides how it is written.
PRIMITIVE = 0  # a value attribute, optionally an id attribute and extension children
COMPLEX = 1  # child elements (a datatype or backbone element)
RESOURCE = 2  # one child element named by the resource type (contained, Bundle.entry.resource, ...)
XHTML = 3  # Narrative.div: XHTML in the XHTML namespace, a string in JSON

# Primitive types whose JSON form is a number or a boolean; every other primitive is a JSON string.
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
DECIMAL = "decimal"
BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class Element:
    name: str  # the JSON property and the XML element (or attribute) name
    type: str  # a primitive type, a key of structure.json, "Resource" or "xhtml"
    kind: int
    array: bool
    attribute: bool  # written as an attribute of the parent element
    position: int  # place in the definitions' order
    choice: str | None = None  # the choice element's stem ("value" of valueQuantity)
    extra: str = field(init=False)  # the JSON property of a primitive's id and extensions: "_" + name

    def __post_init__(self):
        object.__setattr__(self, "extra", "_" + self.name)


@dataclass(frozen=True, slots=True)
class Type:
    name: str
    elements: dict[str, Element]
    attributes: tuple[Element, ...]  # the elements written as attributes, in order
    keys: dict[str, Element] = field(init=False)  # the elements by JSON property, "_name" included

    def __post_init__(self):
        keys = {**self.elements, **{element.extra: element for element in self.elements.values()}}
        object.__setattr__(self, "keys", keys)


def _kind(type_name: str) -> int:
    if type_name == "Resource":
        return RESOURCE
    if type_name == "xhtml":
        return XHTML
    return PRIMITIVE if type_name[0].islower() else COMPLEX


def _type(name: str, properties: dict[str, dict], order: list[str]) -> Type:
    elements = {}
    for position, entry in enumerate(order):
        attribute = entry.startswith("@")
        prop = entry.lstrip("@")
        spec = properties[prop]
        elements[prop] = Element(prop, spec["type"], _kind(spec["type"]), bool(spec.get("array")), attribute,
                                 position, spec.get("choice"))
    return Type(name, elements, tuple(e for e in elements.values() if e.attribute))


# What every primitive element may hold besides its value: ``id`` (an attribute) and extensions.
_PRIMITIVE_ID = Element("id", "string", PRIMITIVE, False, True, 0)
PRIMITIVE_TYPE = Type("primitive", {"id": _PRIMITIVE_ID,
                                    "extension": Element("extension", "Extension", COMPLEX, True, False, 1)},
                      (_PRIMITIVE_ID,))


@functools.cache
def type_of(name: str) -> Type | None:
    """The type ``name`` (a resource, datatype or backbone path), or None if R4 has no such type."""
    properties = definitions.load("structure").get(name)
    if properties is None:
        return None
    return _type(name, properties, definitions.load("elements")[name])


@functools.cache
def is_resource_type(name: str) -> bool:
    """Whether ``name`` is an R4 resource type (every resource has Resource.implicitRules, no datatype has)."""
    return "." not in name and "implicitRules" in definitions.load("structure").get(name, {})
