"""XML → JSON: a FHIR XML document read into the resource's JSON form (http://hl7.org/fhir/R4/xml.html).

The reverse of ``writer``: every element must be one the definitions give its parent, in the FHIR
namespace (``Narrative.div`` in the XHTML one), in the definitions' order, repeated only where it may
repeat and with one type of a choice; a primitive needs a ``value`` attribute or extensions, another
element children or attributes; text is only allowed inside the div. Values become JSON values by
their type (booleans, integer types and decimals as JSON numbers: a decimal becomes what a JSON body
with the same number text would give, or a ``jsontext.Number`` with ``keep_decimal_text``). Checking
the values themselves (dates, codes, ...) is left to the validation every write gets.

Each problem is an ``XmlProblem`` with its line and column and the FHIRPath of the element; the
parser (``parser.new_parser``) refuses DTDs and entities, and nesting past ``max_depth`` stops the
read.
"""

from __future__ import annotations

import json
import math
import re

from fhirportal.fhir import jsontext

from .elements import (
    BOOLEAN,
    COMPLEX,
    DECIMAL,
    FHIR_NS,
    INTEGER_TYPES,
    PRIMITIVE,
    PRIMITIVE_TYPE,
    RESOURCE,
    XHTML,
    Element,
    Type,
    is_resource_type,
    type_of,
)
from .parser import XmlProblem, new_parser, parse, problem, split_name
from .xhtml import XHTML_NS, Fragment

_INTEGER = re.compile(r"0|[-+]?[1-9][0-9]*")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def read(data: bytes, *, max_depth: int = 64, keep_decimal_text: bool = False) -> dict:
    """The JSON form of the FHIR XML resource ``data`` (UTF-8); XmlProblem when it is not one."""
    return _Reader(data, max_depth, keep_decimal_text).run()


class _Frame:
    """An element being read. ``of_type`` None: a wrapper (``contained``, ``resource``) awaiting its resource."""

    __slots__ = ("of_type", "element", "path", "value", "content", "last", "last_name", "counts", "arrays")

    def __init__(self, of_type: Type | None, element: Element | None, path: str, content: dict | None):
        self.of_type = of_type
        self.element = element
        self.path = path
        self.value = None  # a primitive's value; a wrapper's resource
        self.content = content  # the JSON object being filled (a primitive's: its id and extensions)
        self.last = -1  # position of the last child element read (they must come in order)
        self.last_name = ""
        self.counts: dict[str, int] = {}
        self.arrays: list[str] = []  # repeating primitives read (their null-only JSON arrays are dropped)


class _Reader:
    def __init__(self, data: bytes, max_depth: int, keep_decimal_text: bool):
        self.data = data
        self.max_depth = max_depth
        self.number = jsontext.loads if keep_decimal_text else json.loads
        self.parser = new_parser()
        self.stack: list[_Frame] = []
        self.declarations: list[tuple[str | None, str]] = []
        self.fragment: Fragment | None = None
        self.fragment_start = 0
        self.result: dict | None = None

    def run(self) -> dict:
        parser = self.parser
        parser.StartNamespaceDeclHandler = lambda prefix, uri: self.declarations.append((prefix, uri))
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.text
        parse(parser, self.data)
        return self.result

    def problem(self, message: str, path: str | None = None, **kw) -> XmlProblem:
        return problem(self.parser, message, expression=path, **kw)

    # ------------------------------------------------------------ events
    def start(self, name: str, attributes: list[str]) -> None:
        declarations, self.declarations = self.declarations, []
        depth = len(self.stack) + (self.fragment.depth if self.fragment else 0)
        if depth >= self.max_depth:
            raise self.problem(f"The body nests deeper than {self.max_depth} levels", syntax=True)
        if self.fragment is not None:
            return self.fragment_event(self.fragment.start, name, attributes)
        namespace, local, _ = split_name(name)
        if not self.stack:
            return self.root(namespace, local, attributes)
        parent = self.stack[-1]
        if parent.of_type is None:
            return self.contained(parent, namespace, local, attributes)
        element = parent.of_type.elements.get(local)
        if element is None or element.attribute:
            raise self.problem(f"Unknown element '{local}' in {parent.path} (a FHIR R4 {_type_name(parent)} has "
                               f"no element '{local}')", parent.path)
        expected = XHTML_NS if element.kind == XHTML else FHIR_NS
        if namespace != expected:
            raise self.problem(f"The element '{local}' is in namespace '{namespace or '(none)'}'; it must be in "
                               f"'{expected}'", f"{parent.path}.{local}")
        self.check_order(parent, element)
        index = parent.counts[local] = parent.counts.get(local, -1) + 1
        path = f"{parent.path}.{local}[{index}]" if element.array else f"{parent.path}.{local}"
        if element.kind == PRIMITIVE:
            self.push_primitive(element, path, attributes)
        elif element.kind == COMPLEX:
            of_type = type_of(element.type)
            self.stack.append(_Frame(of_type, element, path, self.attributes(of_type, path, attributes)))
        elif element.kind == RESOURCE:
            self.attributes(None, path, attributes)
            self.stack.append(_Frame(None, element, path, None))
        else:
            self.fragment = Fragment((None, XHTML_NS) in declarations)
            self.fragment_start = self.parser.CurrentByteIndex
            self.fragment_event(self.fragment.start, name, attributes)

    def text(self, data: str) -> None:
        if self.fragment is not None:
            self.fragment.text(data)
        elif data.strip():
            path = self.stack[-1].path if self.stack else None
            raise self.problem(f"Text is not allowed in {path}: FHIR XML keeps values in value attributes", path)

    def end(self, _name: str) -> None:
        if self.fragment is not None:
            if self.fragment.end():
                self.stack[-1].content["div"] = self.div_text()
                self.fragment = None
            return
        frame = self.stack.pop()
        value = self.finish(frame)
        if not self.stack:
            self.result = value
            return
        parent = self.stack[-1]
        if parent.of_type is None:
            parent.value = value
            return
        name, content = frame.element.name, parent.content
        if frame.element.kind == PRIMITIVE:
            extra = frame.content or None
            if frame.element.array:
                if name not in parent.arrays:
                    parent.arrays.append(name)
                content.setdefault(name, []).append(frame.value)
                content.setdefault("_" + name, []).append(extra)
            else:
                if frame.value is not None:
                    content[name] = frame.value
                if extra:
                    content["_" + name] = extra
        elif frame.element.array:
            content.setdefault(name, []).append(value)
        else:
            content[name] = value

    # ------------------------------------------------------------ pieces
    def root(self, namespace: str, local: str, attributes: list[str]) -> None:
        if namespace != FHIR_NS:
            raise self.problem(f"The root element '{local}' is in namespace '{namespace or '(none)'}'; a FHIR "
                               f"resource is in '{FHIR_NS}'", syntax=True)
        if not is_resource_type(local):
            raise self.problem(f"The root element '{local}' is not a FHIR R4 resource type", syntax=True)
        self.attributes(None, local, attributes)
        self.stack.append(_Frame(type_of(local), None, local, {"resourceType": local}))

    def contained(self, wrapper: _Frame, namespace: str, local: str, attributes: list[str]) -> None:
        if namespace != FHIR_NS or not is_resource_type(local):
            raise self.problem(f"{wrapper.path} must hold a FHIR resource element (such as <Patient>); found "
                               f"'{local}'", wrapper.path)
        if wrapper.value is not None or wrapper.counts:
            raise self.problem(f"{wrapper.path} holds more than one resource", wrapper.path)
        wrapper.counts[local] = 0
        self.attributes(None, wrapper.path, attributes)
        self.stack.append(_Frame(type_of(local), None, wrapper.path, {"resourceType": local}))

    def check_order(self, parent: _Frame, element: Element) -> None:
        if element.position < parent.last:
            raise self.problem(f"'{element.name}' is out of order in {parent.path}: the definitions put it before "
                               f"'{parent.last_name}'", parent.path)
        if element.position == parent.last and not element.array:
            raise self.problem(f"'{element.name}' appears more than once in {parent.path}; it does not repeat",
                               parent.path)
        previous = parent.of_type.elements.get(parent.last_name)
        if element.choice and previous is not None and previous.choice == element.choice and previous is not element:
            raise self.problem(f"{parent.path} has both '{previous.name}' and '{element.name}'; "
                               f"{element.choice}[x] takes one type", parent.path)
        parent.last, parent.last_name = element.position, element.name

    def attributes(self, of_type: Type | None, path: str, attributes: list[str], value: bool = False) -> dict:
        """The element's attributes as JSON properties; namespaced ones (``xsi:schemaLocation``) are ignored."""
        allowed = {a.name for a in of_type.attributes} if of_type is not None else set()
        found: dict = {}
        for index in range(0, len(attributes), 2):
            namespace, local, _ = split_name(attributes[index])
            if namespace:
                continue
            if local not in allowed and not (value and local == "value"):
                raise self.problem(f"The attribute '{local}' is not allowed on {path}", path)
            if not attributes[index + 1]:
                raise self.problem(f"The attribute '{local}' of {path} is empty; FHIR XML attributes need a value",
                                   path)
            found[local] = attributes[index + 1]
        return found

    def push_primitive(self, element: Element, path: str, attributes: list[str]) -> None:
        found = self.attributes(PRIMITIVE_TYPE, path, attributes, value=True)
        text = found.pop("value", None)
        frame = _Frame(PRIMITIVE_TYPE, element, path, found)
        if text is not None:
            frame.value = self.convert(element.type, text, path)
        self.stack.append(frame)

    def convert(self, type_name: str, text: str, path: str):
        if type_name == BOOLEAN:
            if text not in ("true", "false"):
                raise self.problem(f"'{text}' is not a boolean (true or false) at {path}", path)
            return text == "true"
        if type_name in INTEGER_TYPES:
            if not _INTEGER.fullmatch(text):
                raise self.problem(f"'{text}' is not an integer at {path}", path)
            return int(text)
        if type_name == DECIMAL:
            if not _DECIMAL.fullmatch(text):
                raise self.problem(f"'{text}' is not a decimal at {path}", path)
            number = self.number(text)
            if isinstance(number, float) and not math.isfinite(number):
                raise self.problem(f"The decimal '{text}' at {path} is out of range", path)
            return number
        return text

    def finish(self, frame: _Frame):
        """The JSON value of a frame that has ended."""
        if frame.of_type is None:
            if frame.value is None:
                raise self.problem(f"{frame.path} holds no resource", frame.path)
            return frame.value
        content = frame.content
        for name in frame.arrays:
            for key in (name, "_" + name):
                if all(item is None for item in content[key]):
                    del content[key]
        if frame.element is not None and frame.value is None and not content:
            what = "a value attribute or extensions" if frame.of_type is PRIMITIVE_TYPE else "attributes or children"
            raise self.problem(f"{frame.path} is empty: a FHIR element needs {what}", frame.path)
        return content

    def fragment_event(self, event, *args) -> None:
        try:
            event(*args)
        except ValueError as exc:
            path = f"{self.stack[-1].path}.div"
            raise self.problem(f"{exc} (in {path})", path) from None

    def div_text(self) -> str:
        """The div's text as written when it stands on its own (see ``xhtml``), else written out again."""
        end = self.parser.CurrentByteIndex  # at an end tag: its start; after an empty-element tag: past it
        data = self.data
        if self.fragment.verbatim and data.startswith(b"</div", end) and data[end + 5:end + 6] in b"> \t\r\n":
            return data[self.fragment_start:data.index(b">", end) + 1].decode("utf-8")
        return self.fragment.serialise()


def _type_name(frame: _Frame) -> str:
    return "primitive" if frame.of_type is PRIMITIVE_TYPE else frame.of_type.name
