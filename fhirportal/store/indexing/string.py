"""String index rows: plain strings, HumanNames and Addresses (one row per part)."""

from __future__ import annotations

from collections.abc import Iterator

from .normalize import clip, fold

_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def _row(text: str) -> dict:
    return {"norm": fold(text), "exact": clip(text)}


def rows(value) -> Iterator[dict]:
    if isinstance(value, str):
        if value:
            yield _row(value)
        return
    if not isinstance(value, dict):
        return
    parts = _NAME_PARTS if any(k in value for k in ("family", "given", "prefix", "suffix")) else _ADDRESS_PARTS
    for part in parts:
        item = value.get(part)
        for text in item if isinstance(item, list) else [item]:
            if isinstance(text, str) and text:
                yield _row(text)
