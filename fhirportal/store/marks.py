"""Marks: facts about a resource decided when it is written, kept as bits of ``resource.marks``.

A rule that many reads apply to every row (the portal's "never shown to patients" rules) would
otherwise cost correlated index subqueries on each read; decided once at write time from the
resource's token index rows, it costs one test of a column of the row the read loads anyway
(``marks & mask = 0``, see ``visibility.TypeRule.without_marks``).

The store knows no policy: the FHIR layer defines the marks (``Mark``) and hands them to the
repository, which sets the bits on every create and update. Changing a definition only affects rows
written afterwards, until ``fhirportal reindex`` recomputes the marks of existing rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenMatch:
    """A token index row of ``param`` with this code (and system; None: any system)."""

    param: str
    code: str
    system: str | None = None

    def found_in(self, rows: Sequence[Mapping]) -> bool:
        return any(row["param"] == self.param and row["code"] == self.code
                   and (self.system is None or row["system"] == self.system) for row in rows)


@dataclass(frozen=True)
class Mark:
    """Sets ``bit`` on a resource of one of ``types`` that has a token row matching any of ``when``,
    unless it also has one matching any of ``unless``. Several marks may share a bit (their OR)."""

    bit: int
    types: frozenset[str]
    when: tuple[TokenMatch, ...]
    unless: tuple[TokenMatch, ...] = ()

    def applies(self, token_rows: Sequence[Mapping]) -> bool:
        return (any(m.found_in(token_rows) for m in self.when)
                and not any(m.found_in(token_rows) for m in self.unless))


class Marker:
    """The marks by resource type; ``marks_of`` gives a resource's bits from its index rows."""

    def __init__(self, marks: Iterable[Mark] = ()):
        by_type: dict[str, list[Mark]] = defaultdict(list)
        for mark in marks:
            if mark.bit <= 0 or mark.bit & (mark.bit - 1) or mark.bit > 1 << 14:
                raise ValueError(f"a mark's bit must be one power of two that fits a small integer: {mark.bit}")
            for resource_type in mark.types:
                by_type[resource_type].append(mark)
        self._by_type = {t: tuple(m) for t, m in by_type.items()}

    def params(self, resource_type: str) -> frozenset[str]:
        """The token parameters a type's marks are decided from."""
        return frozenset(match.param for mark in self._by_type.get(resource_type, ())
                         for match in (*mark.when, *mark.unless))

    def fingerprint(self, resource_type: str) -> str:
        """The type's mark definitions, hashed: marks written under another fingerprint are out of date."""
        described = sorted(f"{mark.bit}:{sorted(map(repr, mark.when))}:{sorted(map(repr, mark.unless))}"
                           for mark in self._by_type.get(resource_type, ()))
        return hashlib.sha256(repr(described).encode()).hexdigest()[:32]

    def marks_of(self, resource_type: str, rows_by_kind: Mapping[str, Sequence[Mapping]]) -> int:
        marks = self._by_type.get(resource_type)
        if not marks:
            return 0
        token_rows = rows_by_kind.get("token", ())
        bits = 0
        for mark in marks:
            if not bits & mark.bit and mark.applies(token_rows):
                bits |= mark.bit
        return bits
