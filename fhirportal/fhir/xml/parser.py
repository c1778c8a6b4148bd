"""The one way this package parses XML: expat, with every DTD refused.

A DOCTYPE declaration is refused as soon as it starts, so no entity can be declared (no entity
expansion bombs), no external DTD or entity is ever fetched (external entities are refused as
well, should expat ask), and only XML's five predefined entities and character references remain.
The document is read as UTF-8 whatever its declaration says (FHIR's one encoding). Expat reads
nesting without recursion; callers bound the depth themselves.

Names arrive as ``"namespace local"`` (``"namespace local prefix"`` when written with a prefix,
``"local"`` when in no namespace) and attributes as a flat ``[name, value, ...]`` list in
document order.
"""

from __future__ import annotations

from xml.parsers import expat


class XmlProblem(Exception):
    """What is wrong with a document and where (line and column, from 1). ``syntax``: the body is not
    readable XML at all (not well-formed, a DTD, too deep), as opposed to XML that is not FHIR."""

    def __init__(self, message: str, line: int, column: int, *, syntax: bool = False, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.syntax = syntax
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.message} (line {self.line}, column {self.column})"


def problem(parser, message: str, **kw) -> XmlProblem:
    """An XmlProblem at the parser's current event."""
    return XmlProblem(message, parser.CurrentLineNumber, parser.CurrentColumnNumber + 1, **kw)


def new_parser():
    """An expat parser set up as described above; the caller adds the element and text handlers."""
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
    parser.namespace_prefixes = True
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse_dtd(*_):
        raise problem(parser, "The document has a DOCTYPE declaration; FHIR XML may have no DTD and no entity "
                              "declarations", syntax=True)

    def refuse_external_entity(*_):
        raise problem(parser, "The document refers to an external entity, which is never resolved", syntax=True)

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = refuse_external_entity
    return parser


def parse(parser, data: bytes | str) -> None:
    """Feed the whole document to ``parser``; XmlProblem when it is not well-formed."""
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlProblem(f"The body is not well-formed XML: {expat.ErrorString(exc.code)}", exc.lineno,
                         exc.offset + 1, syntax=True) from exc


def split_name(name: str) -> tuple[str, str, bool]:
    """``(namespace, local name, written with a prefix)`` of an expat name."""
    parts = name.split(" ")
    if len(parts) == 1:
        return "", parts[0], False
    return parts[0], parts[1], len(parts) == 3
