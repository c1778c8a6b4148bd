"""Searching contained resources (``_contained=true|both``, ``_containedType=container|contained``).

A contained resource is matched through its own index rows (``contained_schema``): every criterion is
an ``EXISTS`` over the ``cx_…`` table of its kind, on the same contained resource (the container's pid
and the local id), so ``Medication?_contained=true&code=a&form=b`` needs one Medication with both.

What a request may see is decided by the container: the contained resource is found only inside a
container that ``visible_clause`` lets it see (a patient's token: its own records), and the searched
type's own rule adds what can be told of the contained resource itself (its marks, the granular
scopes' criteria). Chains, ``_has``, ``_list`` and ``_lastUpdated`` have no meaning inside a container
and are refused.

With ``both`` the top-level resources of the type are found as by any search (``build_where``). The
answer is in (pid, local id) order, top-level resources first in their pid (local id ``''``), paged by
that key: one entry per container (``container``) or per contained resource (``contained``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, String, and_, cast, exists, false, func, literal, not_, or_, select, true, union_all

from fhirportal.errors import BadRequest

from ..contained_schema import CONTAINED_TABLES, contained_resource
from ..schema import resource
from . import visibility as _visibility
from .aliases import alias
from .criteria import Criterion
from .lists import LIST_PARAMETER
from .query import NEGATING, build_where, value_clause

TOP_LEVEL = ""  # the local id of a top-level match in the (pid, local id) order


def _top_level():
    return cast(literal(TOP_LEVEL), String(64))


@dataclass(frozen=True)
class Match:
    """One entry of the answer: the stored row (a container, or with ``both`` a top-level match) and
    the local id of the contained resource (None: the row itself is the match)."""

    row: object
    contained_id: str | None


def _name(criterion: Criterion) -> str:
    return criterion.parameter.code + (f":{criterion.modifier}" if criterion.modifier else "")


def criterion_clause(criterion: Criterion, found, base_url: str | None = None):
    """SQL condition on a ``contained_resource`` row (or alias) ``found`` for one criterion."""
    parameter, where = criterion.parameter, _name(criterion)
    if criterion.chain is not None or criterion.has is not None or parameter is LIST_PARAMETER \
            or parameter.code == "_lastUpdated":
        name = "_has" if criterion.has is not None else where
        if criterion.chain is not None:
            name = f"{name}.{_name(criterion.chain)}"
        raise BadRequest(f"'{name}' cannot be used with _contained=true|both: contained resources are searched "
                         f"by their own elements only", expression=name)
    if parameter.code == "_id":
        condition = found.c.contained_id.in_(list(criterion.values))
        return not_(condition) if criterion.modifier == "not" else condition
    if parameter.type not in CONTAINED_TABLES:
        raise BadRequest(f"Search parameter '{parameter.code}' of type {parameter.type} is not supported",
                         expression=where)
    table = alias(CONTAINED_TABLES[parameter.type])
    param_name = parameter.code + (":of-type" if criterion.modifier == "of-type" else "")

    def having(*conditions):
        return exists(select(1).select_from(table).where(
            table.c.pid == found.c.pid, table.c.contained_id == found.c.contained_id,
            table.c.resource_type == found.c.resource_type, table.c.param == param_name, *conditions))

    try:
        if criterion.modifier == "missing" and criterion.codes is None:
            with_value = having()
            return not_(with_value) if criterion.values[-1] == "true" else with_value
        matching = having(value_clause(criterion, table, base_url))
    except ValueError as exc:
        raise BadRequest(f"Invalid value for search parameter '{where}': {exc}", expression=where) from exc
    return not_(matching) if criterion.modifier in NEGATING else matching


def _required(alternatives, found, base_url: str | None):
    """A granular scope's criteria, on the contained resource (one it cannot be told by: not seen)."""
    try:
        return or_(false(), *(and_(true(), *(criterion_clause(c, found, base_url) for c in group))
                              for group in alternatives))
    except BadRequest:
        return false()


def visible_clause(visibility: _visibility.Visibility | None, resource_type: str, found, container,
                   base_url: str | None = None):
    """The request may see the container, and the searched type's rule allows the contained resource."""
    if visibility is None:
        return true()
    rule = visibility.rules.get(resource_type)
    if rule is None:
        return false()
    conditions = [_visibility.visible_clause(visibility, container, None, base_url)]
    if rule.without_marks:
        conditions.append(found.c.marks.op("&")(rule.without_marks) == 0)
    conditions += [_required(alternatives, found, base_url) for alternatives in rule.require]
    return and_(true(), *conditions)


def _keys(resource_type: str, criteria: Sequence[Criterion], base_url: str | None,
          visibility: _visibility.Visibility | None, *, both: bool, per_container: bool,
          skip_containers: Sequence[str] = ()):
    """(pid, local id) of every match; per container: (pid, '') once per container. Containers of the
    ``skip_containers`` types are not looked into."""
    found, container = alias(contained_resource), alias(resource)
    local_id = _top_level() if per_container else found.c.contained_id
    inside = select(found.c.pid.label("pid"), local_id.label("local_id")).select_from(found).join(
        container, container.c.pid == found.c.pid).where(
        found.c.resource_type == resource_type, container.c.deleted == false(),
        *([container.c.resource_type.not_in(list(skip_containers))] if skip_containers else []),
        *(criterion_clause(c, found, base_url) for c in criteria),
        visible_clause(visibility, resource_type, found, container, base_url))
    if per_container:
        inside = inside.distinct()
    if not both:
        return inside
    top = select(resource.c.pid.label("pid"), _top_level().label("local_id")).where(
        build_where(resource_type, criteria, base_url, visibility))
    parts = union_all(top, inside).subquery()
    keys = select(parts.c.pid, parts.c.local_id)
    return keys.distinct() if per_container else keys


def search(conn: Connection, resource_type: str, criteria: Sequence[Criterion], *, both: bool,
           per_container: bool, count: int, after: tuple[int, str] | None = None,
           visibility: _visibility.Visibility | None = None, base_url: str | None = None,
           skip_containers: Sequence[str] = ()):
    """One page of matches (``Match``) in (pid, local id) order after ``after``, and the key of the
    last one if more follow."""
    keys = _keys(resource_type, criteria, base_url, visibility, both=both, per_container=per_container,
                 skip_containers=skip_containers).subquery()
    page = select(keys.c.pid, keys.c.local_id)
    if after is not None:
        pid, local_id = after
        page = page.where(or_(keys.c.pid > pid, and_(keys.c.pid == pid, keys.c.local_id > local_id)))
    found = conn.execute(page.order_by(keys.c.pid, keys.c.local_id).limit(count + 1)).all()
    more = len(found) > count
    found = found[:count]
    rows = {row.pid: row for row in conn.execute(select(resource).where(
        resource.c.pid.in_(sorted({key.pid for key in found}))))} if found else {}
    matches = [Match(rows[key.pid], None if per_container or key.local_id == TOP_LEVEL else key.local_id)
               for key in found if key.pid in rows]
    return matches, ((found[-1].pid, found[-1].local_id) if more else None)


def count(conn: Connection, resource_type: str, criteria: Sequence[Criterion], *, both: bool, per_container: bool,
          visibility: _visibility.Visibility | None = None, base_url: str | None = None,
          skip_containers: Sequence[str] = ()) -> int:
    keys = _keys(resource_type, criteria, base_url, visibility, both=both, per_container=per_container,
                 skip_containers=skip_containers).subquery()
    return conn.execute(select(func.count()).select_from(keys)).scalar_one()
