"""String folding shared by indexing and search: case- and accent-insensitive comparison."""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 255


def fold(value: str) -> str:
    """Lower-case, strip accents and collapse white space (``"Zoë  Ñandú"`` → ``"zoe nandu"``)."""
    if value.isascii():  # nothing to decompose (most codes, names and texts)
        return " ".join(value.lower().split())[:MAX_LENGTH]
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())[:MAX_LENGTH]


def clip(value: str | None, length: int = MAX_LENGTH) -> str | None:
    return None if value is None else value[:length]
