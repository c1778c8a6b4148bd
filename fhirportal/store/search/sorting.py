"""``_sort`` and keyset paging.

Each sort key becomes two SQL columns: ``(value IS NULL, value)`` so that resources without a value
sort last in either direction and the keyset comparison never meets a NULL. A repeated element sorts
by its lowest value ascending and its highest value descending, as the spec says. The last tie
breaker is always ``pid`` ascending, so the order is total and a cursor (the last row's key values)
addresses a stable position however the data changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, literal, or_, select

from ..indexing.registry import SearchParameter
from ..schema import INDEX_TABLES, resource
from .aliases import alias

_VALUE_COLUMN = {"string": "norm", "token": "code", "number": "value", "quantity": "value", "reference": "target_id",
                 "uri": "uri"}


@dataclass(frozen=True)
class SortKey:
    parameter: SearchParameter
    descending: bool = False


def _value_expression(key: SortKey):
    code = key.parameter.code
    if code == "_lastUpdated":
        return resource.c.last_updated
    if code == "_id":
        return resource.c.fhir_id
    table = alias(INDEX_TABLES[key.parameter.type])
    if key.parameter.type == "date":
        column = table.c.high if key.descending else table.c.low
    else:
        column = table.c[_VALUE_COLUMN[key.parameter.type]]
    aggregate = func.max(column) if key.descending else func.min(column)
    return (select(aggregate).where(table.c.pid == resource.c.pid, table.c.param == code)
            .correlate(resource).scalar_subquery())


def sort_columns(keys: list[SortKey]) -> list[tuple]:
    """[(column, descending)] including the null flags and the final pid."""
    columns = []
    for key in keys:
        value = _value_expression(key)
        columns.append((case((value.is_(None), literal(1)), else_=literal(0)), False))
        columns.append((value, key.descending))
    columns.append((resource.c.pid, False))
    return columns


def order_by(columns: list[tuple]) -> list:
    return [column.desc() if descending else column.asc() for column, descending in columns]


def after(columns: list[tuple], values: list):
    """Rows strictly after ``values`` in the order of ``columns`` (the keyset condition)."""
    alternatives = []
    for position, (column, descending) in enumerate(columns):
        value = values[position]
        earlier = zip(columns[:position], values[:position], strict=True)
        equal_before = [(c.is_(None) if v is None else c == v) for (c, _), v in earlier]
        if value is None:
            continue  # nothing sorts after NULL within its (null-flag) group
        beyond = column < value if descending else column > value
        alternatives.append(and_(*equal_before, beyond))
    return or_(*alternatives)


def encode_values(values) -> list:
    return [["t", v.isoformat()] if isinstance(v, datetime) else v for v in values]


def decode_values(raw: list) -> list:
    return [datetime.fromisoformat(v[1]) if isinstance(v, list) and len(v) == 2 and v[0] == "t" else v for v in raw]
