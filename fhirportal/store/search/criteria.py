"""A search criterion as the store receives it: one parameter, its modifier, OR-ed raw values."""

from __future__ import annotations

from dataclasses import dataclass

from ..indexing.registry import SearchParameter


@dataclass(frozen=True)
class Criterion:
    parameter: SearchParameter
    values: tuple[str, ...]
    modifier: str | None = None

    @property
    def canonical(self) -> str:
        """Stable text for this criterion (used as a lock key for conditional writes)."""
        name = self.parameter.code + (f":{self.modifier}" if self.modifier else "")
        return f"{name}={','.join(self.values)}"
