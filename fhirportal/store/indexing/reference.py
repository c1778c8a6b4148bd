"""Reference index rows: ``Type/id`` (relative or under our base URL) or any other url/canonical."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .normalize import clip

_RELATIVE = re.compile(r"^(?:(?P<base>.*)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def parse(reference: str, base_url: str | None = None) -> tuple[str | None, str | None]:
    """(type, id) of a reference that points into this server, else (None, None)."""
    match = _RELATIVE.match(reference)
    if not match:
        return None, None
    base = match.group("base")
    if base and (base_url is None or base.rstrip("/") != base_url.rstrip("/")):
        return None, None
    return match.group("type"), match.group("id")


def rows(value, base_url: str | None = None) -> Iterator[dict]:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and not reference.startswith("#"):
            target_type, target_id = parse(reference, base_url)
            yield {"target_type": target_type, "target_id": target_id,
                   "url": None if target_id else clip(reference, 1024)}
    elif isinstance(value, str):  # canonical / uri used as a reference
        target_type, target_id = parse(value, base_url)
        yield {"target_type": target_type, "target_id": target_id, "url": None if target_id else clip(value, 1024)}
