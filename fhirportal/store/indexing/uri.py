"""Uri index rows (uri, url, canonical)."""

from __future__ import annotations

from collections.abc import Iterator

from .normalize import clip


def rows(value) -> Iterator[dict]:
    if isinstance(value, str) and value:
        yield {"uri": clip(value, 1024)}
