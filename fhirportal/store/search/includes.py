"""``_include`` and ``_revinclude``: the resources a page of matches points at, or that point at it.

Only resources the request may see (its ``Visibility``) are included, filtered in the same query
that loads them; ``:iterate`` goes on from the visible ones only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, false, or_, select

from ..schema import INDEX_TABLES, resource
from .visibility import Visibility, visible_clause


@dataclass(frozen=True)
class IncludeSpec:
    """``source_type:param[:target_type]``; ``param`` None means every reference parameter (``*``)."""

    source_type: str
    param: str | None
    target_type: str | None = None
    reverse: bool = False
    iterate: bool = False


def group_by_type(identities) -> dict[str, list[str]]:
    """(type, id) pairs as {type: [ids]}, each id once."""
    grouped: dict[str, set[str]] = {}
    for resource_type, fhir_id in identities:
        grouped.setdefault(resource_type, set()).add(fhir_id)
    return {resource_type: sorted(ids) for resource_type, ids in grouped.items()}


def _spec_conditions(ref, spec: IncludeSpec) -> list:
    conditions = []
    if spec.source_type != "*":
        conditions.append(ref.c.resource_type == spec.source_type)
    if spec.param:
        conditions.append(ref.c.param == spec.param)
    if spec.target_type:
        conditions.append(ref.c.target_type == spec.target_type)
    return conditions


def _targets_of(conn: Connection, pids: Sequence[int], spec: IncludeSpec) -> set[tuple[str, str]]:
    ref = INDEX_TABLES["reference"]
    conditions = [ref.c.pid.in_(pids), ref.c.target_id.is_not(None), *_spec_conditions(ref, spec)]
    return {(row.target_type, row.target_id) for row in conn.execute(
        select(ref.c.target_type, ref.c.target_id).where(*conditions).distinct())}


def _rows_by_identity(conn: Connection, identities: set[tuple[str, str]], visibility: Visibility | None,
                      base_url: str | None):
    grouped = group_by_type(identities)
    if visibility is not None:
        grouped = {t: ids for t, ids in grouped.items() if visibility.sees_type(t)}
    if not grouped:
        return []
    condition = or_(*(and_(resource.c.resource_type == t, resource.c.fhir_id.in_(ids)) for t, ids in grouped.items()))
    visible = visible_clause(visibility, resource, list(grouped), base_url)
    return conn.execute(select(resource).where(condition, resource.c.deleted == false(), visible)).all()


def _referrers_of(conn: Connection, identities: set[tuple[str, str]], spec: IncludeSpec,
                  visibility: Visibility | None, base_url: str | None):
    ref = INDEX_TABLES["reference"]
    grouped = group_by_type(identities)
    if not grouped:
        return []
    pointing = or_(*(and_(ref.c.target_type == t, ref.c.target_id.in_(ids)) for t, ids in grouped.items()))
    pids = select(ref.c.pid).where(pointing, *_spec_conditions(ref, spec)).distinct()
    types = None if spec.source_type == "*" else [spec.source_type]
    visible = visible_clause(visibility, resource, types, base_url)
    return conn.execute(select(resource).where(resource.c.pid.in_(pids), resource.c.deleted == false(),
                                               visible)).all()


def included_rows(conn: Connection, matches: list, specs: Sequence[IncludeSpec], max_rounds: int = 3,
                  limit: int = 1000, *, visibility: Visibility | None = None, base_url: str | None = None) -> list:
    """Rows to add with search mode "include" (never the matches themselves, each once), only those
    ``visibility`` allows. Bounded: at most ``max_rounds`` rounds (the first, then ``:iterate`` ones)
    and ``limit`` rows, however the references loop."""
    seen = {(row.resource_type, row.fhir_id) for row in matches}
    found: list = []
    current = list(matches)
    for round_number in range(max_rounds):
        active = [s for s in specs if round_number == 0 or s.iterate]
        if not active or not current:
            break
        pids = [row.pid for row in current]
        identities = {(row.resource_type, row.fhir_id) for row in current}
        new_rows = []
        for spec in active:
            rows = _referrers_of(conn, identities, spec, visibility, base_url) if spec.reverse else \
                _rows_by_identity(conn, _targets_of(conn, pids, spec), visibility, base_url)
            for row in rows:
                identity = (row.resource_type, row.fhir_id)
                if identity not in seen:
                    seen.add(identity)
                    new_rows.append(row)
        found += new_rows
        if len(found) >= limit:
            return found[:limit]
        current = new_rows
    return found
