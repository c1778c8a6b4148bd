"""Token index rows: codes, Codings, CodeableConcepts, Identifiers, ContactPoints, booleans."""

from __future__ import annotations

from collections.abc import Iterator

from .normalize import clip, fold

OF_TYPE_SUFFIX = ":of-type"


def _row(system: str | None, code: str | None, text: str | None = None) -> dict:
    return {"system": clip(system), "code": clip(code), "text": fold(text) if text else None}


def _codeable_concept(value: dict) -> Iterator[dict]:
    """One row per coding; ``text`` holds the concept's text and the coding's display (for ``:text``)."""
    text = value.get("text")
    codings = value.get("coding") or []
    for coding in codings:
        words = " ".join(t for t in (text, coding.get("display")) if t)
        yield _row(coding.get("system"), coding.get("code"), words or None)
    if not codings and text:
        yield _row(None, None, text)


def _identifier(value: dict) -> Iterator[dict]:
    """Identifier or ContactPoint: system|value; an Identifier's type also feeds ``:of-type``
    (rows indexed under ``<param>:of-type`` with the type's system|code and the value as text)."""
    identifier_type = value.get("type") if isinstance(value.get("type"), dict) else {}
    yield _row(value.get("system"), str(value["value"]), identifier_type.get("text"))
    for coding in identifier_type.get("coding", []):
        yield {"param_suffix": OF_TYPE_SUFFIX, "system": clip(coding.get("system")),
               "code": clip(coding.get("code")), "text": fold(str(value["value"]))}


def rows(value) -> Iterator[dict]:
    if isinstance(value, bool):
        yield _row(None, "true" if value else "false")
    elif isinstance(value, str | int):
        yield _row(None, str(value))
    elif isinstance(value, dict):
        if "coding" in value or set(value) == {"text"}:
            yield from _codeable_concept(value)
        elif "value" in value:
            yield from _identifier(value)
        elif "code" in value:
            yield _row(value.get("system"), value.get("code"), value.get("display"))
