"""Serialising response documents that embed stored JSON text without parsing it again.

A Bundle of 50 stored resources is rendered by splicing their stored text into the Bundle, which
keeps searches and history pages cheap; ``_pretty`` and other transforms parse it back when needed.
"""

from __future__ import annotations

import json


class Raw:
    """Already-serialised JSON, embedded verbatim."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}…)"


class Number:
    """A JSON number kept as the text it was written with (``loads`` makes them of every number with a
    fraction or an exponent), so that a decimal such as 1.50 is written out as 1.50 again."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other) -> bool:
        return isinstance(other, Number) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Number({self.text})"


def loads(text: str):
    """Parsed JSON whose decimals stay ``Number``s (their text as written)."""
    return json.loads(text, parse_float=Number)


def dumps(document) -> str:
    """Compact JSON of ``document``, splicing ``Raw`` values and ``Number`` texts in as they are."""
    if isinstance(document, Raw | Number):
        return document.text
    if isinstance(document, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in document.items()) + "}"
    if isinstance(document, list | tuple):
        return "[" + ",".join(dumps(v) for v in document) + "]"
    return json.dumps(document, ensure_ascii=False)


def to_plain(document):
    """The same document with every ``Raw`` parsed, for transforms and pretty printing."""
    if isinstance(document, Raw):
        return json.loads(document.text)
    if isinstance(document, dict):
        return {k: to_plain(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [to_plain(v) for v in document]
    return document
