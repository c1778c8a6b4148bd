"""JSON → XML: a resource in its JSON form written as FHIR XML (http://hl7.org/fhir/R4/xml.html).

Elements come in the definitions' order whatever the JSON order; a repeating element is its element
once per item; a primitive is an element whose ``value`` attribute holds the JSON value (``true``,
``1.50``, text) and whose ``id`` attribute and ``extension`` children come from the JSON ``_name``
property (item by item for arrays, ``null`` where an item has none); ``Element.id`` and
``Extension.url`` are attributes; a resource inside a resource (``contained``,
``Bundle.entry.resource``, ``Parameters.parameter.resource``) is wrapped in an element named by its
type; ``Narrative.div`` is XHTML (``xhtml.div_to_xml``).

The document may embed stored resources as ``jsontext.Raw`` text (a searchset's entries) or be that
text itself; such text is parsed with its decimals kept as written (``jsontext.Number``), so a stored
1.50 is written ``value="1.50"``. An element R4 does not define (only an R4B-only choice type could
have passed validation) is written after the defined ones, its JSON shape mapped the same way (a
property that cannot be an element name is left out).
"""

from __future__ import annotations

import re

from fhirportal.fhir import jsontext

from .elements import COMPLEX, FHIR_NS, PRIMITIVE, RESOURCE, Element, Type, is_resource_type, type_of
from .xhtml import div_to_xml, escape_attribute

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def write(document, pretty: bool = False) -> str:
    """The FHIR XML of ``document`` (a resource as a dict, possibly embedding ``Raw`` text, or JSON
    text); ``pretty`` indents it by two spaces a level."""
    writer = _Writer(pretty)
    writer.resource(jsontext.loads(document) if isinstance(document, str) else document, 0, root=True)
    return "".join(writer.out)


_NAME = re.compile("[A-Za-z][A-Za-z0-9]*")  # what an element name can be (anything else cannot be FHIR)
_PADS = tuple("\n" + "  " * depth for depth in range(32))


def _value_text(value) -> str:
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, jsontext.Number):
        return value.text
    return jsontext.dumps(value)  # int, float: as JSON writes them


def _items(value) -> list:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


class _Writer:
    def __init__(self, pretty: bool):
        self.out: list[str] = [XML_DECLARATION]
        self.pretty = pretty

    def pad(self, depth: int) -> str:
        return _PADS[depth] if self.pretty and depth < len(_PADS) else ("\n" + "  " * depth if self.pretty else "")

    def resource(self, resource, depth: int, root: bool = False) -> None:
        if isinstance(resource, jsontext.Raw):
            resource = jsontext.loads(resource.text)
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not (isinstance(resource_type, str) and is_resource_type(resource_type)):
            raise ValueError(f"Cannot write {resource_type!r} as a FHIR resource in XML")
        namespace = f' xmlns="{FHIR_NS}"' if root else ""
        self.complex(resource_type, namespace, type_of(resource_type), resource, depth)

    def complex(self, name: str, attributes: str, of_type: Type, value, depth: int) -> None:
        if not isinstance(value, dict):
            return self.unknown(name, value, None, depth)
        for attribute in of_type.attributes:
            if attribute.name in value:
                attributes += f' {attribute.name}="{escape_attribute(_value_text(value[attribute.name]))}"'
        pad = self.pad(depth)
        mark = len(self.out)
        self.out.append(f"{pad}<{name}{attributes}>")
        self.children(of_type, value, depth + 1)
        if len(self.out) == mark + 1:
            self.out[mark] = f"{pad}<{name}{attributes}/>"
        else:
            self.out.append(f"{pad}</{name}>")

    def children(self, of_type: Type, value: dict, depth: int) -> None:
        keys = of_type.keys
        present: dict[int, Element] = {}
        unknown: list[str] = []
        for key in value:
            element = keys.get(key)
            if element is None:
                if key != "resourceType":
                    unknown.append(key)
            elif not element.attribute:
                present[element.position] = element
        pad = self.pad(depth)
        for position in sorted(present):
            element = present[position]
            item, extra = value.get(element.name), value.get(element.extra)
            if element.kind == PRIMITIVE and extra is None and item is not None and not element.array:
                self.out.append(f'{pad}<{element.name} value="{escape_attribute(_value_text(item))}"/>')
            else:
                self.element(element, item, extra, depth)
        for key in unknown:
            name = key[1:] if key.startswith("_") else key
            if _NAME.fullmatch(name) and (name == key or name not in value):
                self.unknown(name, value.get(name), value.get("_" + name), depth)

    def element(self, element: Element, value, extra, depth: int) -> None:
        name = element.name
        if element.kind == PRIMITIVE:
            if element.array:
                values, extras = _items(value), _items(extra)
                for index in range(max(len(values), len(extras))):
                    self.primitive(name, values[index] if index < len(values) else None,
                                   extras[index] if index < len(extras) else None, depth)
            else:
                self.primitive(name, value, extra, depth)
        elif element.kind == COMPLEX:
            of_type = type_of(element.type)
            for item in _items(value):
                self.complex(name, "", of_type, item, depth)
        elif element.kind == RESOURCE:
            pad = self.pad(depth)
            for item in _items(value):
                self.out.append(f"{pad}<{name}>")
                self.resource(item, depth + 1)
                self.out.append(f"{pad}</{name}>")
        elif isinstance(value, str):
            self.out.append(self.pad(depth) + div_to_xml(value))

    def primitive(self, name: str, value, extra, depth: int) -> None:
        extra = extra if isinstance(extra, dict) else {}
        if value is None and not extra:
            return
        attributes = f' id="{escape_attribute(str(extra["id"]))}"' if "id" in extra else ""
        if value is not None:
            attributes += f' value="{escape_attribute(_value_text(value))}"'
        extensions = _items(extra.get("extension"))
        pad = self.pad(depth)
        if not extensions:
            self.out.append(f"{pad}<{name}{attributes}/>")
            return
        self.out.append(f"{pad}<{name}{attributes}>")
        extension = type_of("Extension")
        for item in extensions:
            self.complex("extension", "", extension, item, depth + 1)
        self.out.append(f"{pad}</{name}>")

    def unknown(self, name: str, value, extra, depth: int) -> None:
        """An element without a definition, written from its JSON shape alone."""
        values, extras = _items(value), _items(extra)
        for index in range(max(len(values), len(extras))):
            item = values[index] if index < len(values) else None
            if isinstance(item, dict | jsontext.Raw) and (isinstance(item, jsontext.Raw) or "resourceType" in item):
                pad = self.pad(depth)
                self.out.append(f"{pad}<{name}>")
                self.resource(item, depth + 1)
                self.out.append(f"{pad}</{name}>")
            elif isinstance(item, dict):
                self.complex(name, "", _UNDEFINED, item, depth)
            elif not isinstance(item, list):
                self.primitive(name, item, extras[index] if index < len(extras) else None, depth)


_UNDEFINED = Type("undefined", {}, ())  # every child of an undefined element is undefined too
