"""``Narrative.div``: XHTML in XML, the same XHTML as a string in JSON.

Read from XML, the div's text is taken as written (the bytes from ``<div`` to ``</div>``) when that
text stands on its own: it declares the XHTML namespace as its default and uses no prefix of an
outer element. Otherwise it is written out again from what was parsed, with the namespace declared.
Written to XML, a JSON div that is such a standalone XHTML ``div`` goes in as it is; one without the
namespace declaration is written out again with it; one that is not well-formed XML at all (which
the server's validation does not catch) becomes the escaped text of an XHTML div, so that the
document stays readable.
"""

from __future__ import annotations

import functools
import re

from .parser import XmlProblem, new_parser, parse, split_name

XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_START, _TEXT, _END = range(3)


# Characters XML 1.0 cannot hold, not even as character references (FHIR strings may not hold them
# either; one that got into a stored resource is written as U+FFFD rather than break the document).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_text(text: str) -> str:
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ATTRIBUTE_SPECIAL = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


def escape_attribute(text: str) -> str:
    """An attribute value, with the whitespace that attribute normalisation would turn into spaces kept."""
    if not _ATTRIBUTE_SPECIAL.search(text):
        return text  # most values: nothing to escape
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("\ufffd", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;"))


class Fragment:
    """A div being parsed: its events, and whether its text as written can be used as it is.

    ``start``/``text``/``end`` take the parser's events from the div's own start tag to its end tag;
    ``start`` raises ValueError for what FHIR narrative may not hold (other namespaces' elements or
    attributes). ``strict``: elements in no namespace are refused too (in an XML document, where the
    div must be XHTML; a JSON div without its xmlns is taken as XHTML)."""

    def __init__(self, declares_xhtml: bool, strict: bool = True):
        self.events: list[tuple] = []
        self.verbatim = declares_xhtml
        self.strict = strict
        self.depth = 0

    def start(self, name: str, attributes: list[str]) -> None:
        namespace, local, prefixed = split_name(name)
        if namespace != XHTML_NS and (namespace or self.strict):
            raise ValueError(f"Narrative XHTML may only hold XHTML elements, not '{local}' in namespace "
                             f"'{namespace or '(none)'}'")
        written = []
        for index in range(0, len(attributes), 2):
            attribute_ns, attribute, attribute_prefixed = split_name(attributes[index])
            if attribute_ns == XML_NS:
                attribute = "xml:" + attribute
            elif attribute_ns:
                raise ValueError(f"Narrative XHTML may not hold the attribute '{attribute}' of namespace "
                                 f"'{attribute_ns}'")
            self.verbatim = self.verbatim and not (attribute_prefixed and attribute_ns != XML_NS)
            written.append((attribute, attributes[index + 1]))
        self.verbatim = self.verbatim and not prefixed
        self.events.append((_START, local, written, self.depth == 0))
        self.depth += 1

    def text(self, data: str) -> None:
        self.events.append((_TEXT, data))

    def end(self) -> bool:
        """Record an end tag; True when it closed the div."""
        self.events.append((_END,))
        self.depth -= 1
        return self.depth == 0

    def serialise(self) -> str:
        """The div written out again: XHTML as the default namespace, attributes in document order."""
        out: list[str] = []
        stack: list[str] = []
        previous = None
        for event in self.events:
            if event[0] == _START:
                _, local, attributes, root = event
                declaration = f' xmlns="{XHTML_NS}"' if root else ""
                written = "".join(f' {name}="{escape_attribute(value)}"' for name, value in attributes)
                out.append(f"<{local}{declaration}{written}>")
                stack.append(local)
            elif event[0] == _TEXT:
                out.append(escape_text(event[1]))
            elif previous == _START:
                out[-1] = out[-1][:-1] + "/>"
                stack.pop()
            else:
                out.append(f"</{stack.pop()}>")
            previous = event[0]
        return "".join(out)


@functools.lru_cache(maxsize=4096)
def div_to_xml(div: str) -> str:
    """The XML for a JSON ``Narrative.div`` (cached: narratives repeat across a practice's records)."""
    try:
        fragment = _read(div)
    except (XmlProblem, ValueError):
        return f'<div xmlns="{XHTML_NS}">{escape_text(div)}</div>'
    if fragment.verbatim and div.startswith("<div") and div.endswith(">"):
        return div
    return fragment.serialise()


def _read(div: str) -> Fragment:
    parser = new_parser()
    declarations: list[tuple[str | None, str]] = []
    fragment: Fragment | None = None

    def start(name: str, attributes: list[str]) -> None:
        nonlocal fragment
        if fragment is None:
            if split_name(name)[1] != "div":
                raise ValueError("Narrative XHTML must be a div element")
            fragment = Fragment((None, XHTML_NS) in declarations, strict=False)
        declarations.clear()
        fragment.start(name, attributes)

    parser.StartNamespaceDeclHandler = lambda prefix, uri: declarations.append((prefix, uri))
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _name: fragment.end()
    parser.CharacterDataHandler = lambda data: fragment.text(data) if fragment is not None and fragment.depth else None
    parse(parser, div)
    return fragment
