"""Search-parameter expressions as published, reduced to what the indexer evaluates for one base type:
the union parts that start with that type, and ``X.where(resolve() is T)`` as ``X`` with target
``T`` (a reference's target type is checked from the reference itself, without resolving it).
``tools/build_definitions.py`` does the same to FHIR R4's own definitions."""

from __future__ import annotations

import re

WHERE_RESOLVE = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)")


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on top-level ``|`` (outside parentheses and string literals)."""
    parts: list[str] = []
    depth, quote, current = 0, False, []
    characters = iter(expression)
    for ch in characters:
        current.append(ch)
        if quote:
            if ch == "\\":
                current.append(next(characters, ""))
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif ch == "|" and depth == 0:
            current.pop()
            parts.append("".join(current).strip())
            current = []
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def for_base(base: str, expression: str) -> tuple[str, tuple[str, ...]]:
    """(the expression's parts for ``base``, joined by `` | ``; the target types its
    ``where(resolve() is T)`` filters name, empty if none)."""
    parts, targets = [], []
    for part in split_union(expression):
        head = re.match(r"^\(*\s*([A-Za-z][A-Za-z0-9]*)", part)
        if head and head.group(1) not in (base, "Resource", "DomainResource") and head.group(1)[0].isupper():
            continue
        resolved = WHERE_RESOLVE.search(part)
        if resolved:
            targets.append(resolved.group(1))
            part = WHERE_RESOLVE.sub("", part)
        parts.append(part)
    return " | ".join(parts), tuple(dict.fromkeys(targets))
