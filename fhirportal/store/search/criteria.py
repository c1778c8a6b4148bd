"""A search criterion as the store receives it: one parameter, its modifier, OR-ed raw values."""

from __future__ import annotations

from dataclasses import dataclass

from ..indexing.registry import SearchParameter


@dataclass(frozen=True)
class Criterion:
    """``parameter[:modifier]=v1,v2`` on the searched type.

    ``chain``: a chained search (``subject:Patient.name=x``): ``parameter`` is the reference, ``modifier``
    the target type if given, and ``chain`` the criterion the referenced resource must meet.
    ``has``: a reverse chain (``_has:Observation:patient:code=x``): (type, reference parameter) of the
    resources that must point here, ``parameter`` the criterion they must meet.
    ``codes``: a token criterion whose values the caller resolved to (system, code) pairs (``:in``,
    ``:below`` ... ``values`` keep what was asked): a row matches one of the pairs (system None: a
    code without a system); with the modifier ``not-in`` the resource must have no such row.
    """

    parameter: SearchParameter
    values: tuple[str, ...]
    modifier: str | None = None
    chain: Criterion | None = None
    has: tuple[str, str] | None = None
    codes: tuple[tuple[str | None, str], ...] | None = None

    @property
    def canonical(self) -> str:
        """Stable text for this criterion (used as a lock key for conditional writes)."""
        name = self.parameter.code + (f":{self.modifier}" if self.modifier else "")
        if self.chain is not None:
            return f"{name}.{self.chain.canonical}"
        if self.has is not None:
            return f"_has:{self.has[0]}:{self.has[1]}:{name}={','.join(self.values)}"
        return f"{name}={','.join(self.values)}"
