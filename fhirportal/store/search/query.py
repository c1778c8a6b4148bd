"""Compile criteria into SQL: each criterion is an ``EXISTS`` over its index table (AND between
criteria, OR between a criterion's comma-separated values), the way the large FHIR servers do it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import and_, exists, false, not_, or_, select, true, tuple_

from fhirportal.errors import BadRequest

from ..indexing import dates, normalize, reference
from ..schema import INDEX_TABLES, resource
from . import visibility as _visibility
from .aliases import alias
from .criteria import Criterion
from .lists import LIST_PARAMETER, listed
from .per_pid import per_pid
from .prefixes import number_range, range_condition, split_prefix

_ESCAPE = "\\"
NEGATING = ("not", "not-in")  # the resource has no index row matching the values


def _like_escape(text: str) -> str:
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


def _token(table, value: str, modifier: str | None):
    if modifier == "text":  # the words of the concept's text or a coding's display
        return table.c.text.like("%" + _like_escape(normalize.fold(value)) + "%", escape=_ESCAPE)
    if modifier == "of-type":
        parts = value.split("|")
        if len(parts) != 3:
            raise ValueError("identifier:of-type takes system|code|value")
        system, code, ident = parts
        return and_(table.c.system == system, table.c.code == code, table.c.text == normalize.fold(ident))
    if "|" not in value:
        return table.c.code == value
    system, code = value.split("|", 1)
    if not system:
        return and_(table.c.system.is_(None), table.c.code == code)
    if not code:
        return table.c.system == system
    return and_(table.c.system == system, table.c.code == code)


def _codes(table, codes: Sequence[tuple[str | None, str]]):
    """A row holds one of the (system, code) pairs: per system one ``code IN (...)``, so the condition
    nests as deep as there are systems, not codes (SQLite refuses expressions nested past 1000)."""
    by_system: dict[str | None, list[str]] = {}
    for system, code in codes:
        by_system.setdefault(system, []).append(code)
    if not by_system:
        return false()
    return or_(*(and_(table.c.system.is_(None) if system is None else table.c.system == system,
                      table.c.code.in_(sorted(set(found))))
                 for system, found in sorted(by_system.items(), key=lambda item: item[0] or "")))


_LAST_CHARACTER = "\U0010ffff"


def _string(table, value: str, modifier: str | None):
    if modifier == "exact":
        return table.c.exact == value
    folded = normalize.fold(value)
    if modifier == "contains":
        return table.c.norm.like(f"%{_like_escape(folded)}%", escape=_ESCAPE)
    # starts-with as a byte-order range (an index range scan on both databases)
    return and_(table.c.norm >= folded, table.c.norm < folded + _LAST_CHARACTER)


def _date(table, value: str, _modifier):
    prefix, text = split_prefix(value)
    low, high = dates.parse_range(text)
    slack = abs(dates.to_micros(datetime.now(UTC)) - low) // 10 if prefix == "ap" else 0
    return range_condition(prefix, table.c.low, table.c.high, low, high, slack)


def _reference(table, value: str, modifier: str | None, base_url: str | None = None):
    target_type, target_id = reference.parse(value, base_url)
    if target_id is None and "/" not in value and ":" not in value:
        target_type, target_id = modifier, value  # a bare id, optionally typed by :Type
    if target_id is not None:
        condition = table.c.target_id == target_id
        return and_(condition, table.c.target_type == target_type) if target_type else condition
    return table.c.url == value


def _number(table, value: str, _modifier, column=None):
    column = table.c.value if column is None else column
    prefix, text = split_prefix(value)
    exact, low, high = number_range(text)
    if prefix in ("eq", "ne", "ap"):
        return range_condition(prefix, column, column, low, high, abs(exact) * 0.1)
    return range_condition(prefix, column, column, exact, exact)


def _quantity(table, value: str, modifier):
    parts = value.split("|")
    if len(parts) not in (1, 3):
        raise ValueError("a quantity is number, or number|system|code")
    condition = _number(table, parts[0], modifier)
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if system:
            condition = and_(condition, table.c.system == system)
        if code:
            condition = and_(condition, or_(table.c.code == code, table.c.unit == code))
    return condition


def _uri(table, value: str, modifier: str | None):
    if modifier == "below":
        return table.c.uri.like(_like_escape(value) + "%", escape=_ESCAPE)
    return table.c.uri == value


class _SecondComponent:
    """ix_composite's ``v_*`` columns under the names the clause of the second component's kind uses."""

    NAMES = {"token": {"system": "v_system", "code": "v_code", "text": "v_text"},
             "quantity": {"value": "v_number", "system": "v_system", "code": "v_code", "unit": "v_text"},
             "date": {"low": "v_low", "high": "v_high"},
             "string": {"norm": "v_text", "exact": "v_text"},
             "reference": {"target_type": "v_system", "target_id": "v_code", "url": "v_text"}}

    def __init__(self, columns, kind: str):
        self.c = SimpleNamespace(**{name: getattr(columns.c, column) for name, column in self.NAMES[kind].items()})


def _composite(columns, value: str, second_kind: str, base_url: str | None):
    """``system|code$value``: both on the same item (one ix_composite row)."""
    first, separator, second = value.partition("$")
    if not separator or not first or not second:
        raise ValueError("a composite value is a token and a value joined by '$' (e.g. http://loinc.org|8480-6$gt100)")
    view = _SecondComponent(columns, second_kind)
    matches = _reference(view, second, None, base_url) if second_kind == "reference" \
        else _CLAUSES[second_kind](view, second, None)
    return and_(_token(columns, first, None), matches)


_CLAUSES = {
    "token": _token,
    "string": _string,
    "date": _date,
    "reference": _reference,
    "number": _number,
    "quantity": _quantity,
    "uri": _uri,
}


def _table_param(criterion: Criterion, res):
    """``_id`` and ``_lastUpdated`` live on the resource table itself."""
    if criterion.parameter.code == "_id":
        condition = res.c.fhir_id.in_(criterion.values)
        return not_(condition) if criterion.modifier == "not" else condition
    conditions = []
    for value in criterion.values:
        prefix, text = split_prefix(value)
        low, high = dates.parse_range(text)
        low_dt, high_dt = dates.to_datetime(low), dates.to_datetime(high)
        conditions.append(range_condition(prefix, res.c.last_updated, res.c.last_updated, low_dt, high_dt))
    return or_(*conditions)


def _type_condition(column, types: Sequence[str] | None):
    if not types:
        return true()
    return column == types[0] if len(types) == 1 else column.in_(list(types))


def _chain(criterion: Criterion, res, base_url: str | None, visibility=None):
    """The reference points at a resource that meets ``criterion.chain`` (and that the request may see)."""
    ref = alias(INDEX_TABLES["reference"])
    target = alias(resource)
    target_types = [criterion.modifier] if criterion.modifier else list(criterion.parameter.targets)
    targets = select(target.c.resource_type, target.c.fhir_id).where(
        target.c.deleted == false(), _type_condition(target.c.resource_type, target_types),
        criterion_clause(criterion.chain, target, base_url, target_types or None),
        _visibility.visible_clause(visibility, target, target_types or None, base_url))
    referring = select(ref.c.pid).where(
        ref.c.param == criterion.parameter.code,
        _type_condition(ref.c.target_type, target_types),
        tuple_(ref.c.target_type, ref.c.target_id).in_(targets),
    )
    return res.c.pid.in_(referring)


def _has(criterion: Criterion, res, base_url: str | None, types: Sequence[str] | None, visibility=None):
    """Some resource of ``has[0]`` that the request may see refers here through ``has[1]`` and meets
    the criterion."""
    source_type, reference_param = criterion.has
    ref = alias(INDEX_TABLES["reference"])
    source = alias(resource)
    plain = dataclasses.replace(criterion, has=None)
    sources = select(source.c.pid).where(source.c.resource_type == source_type, source.c.deleted == false(),
                                         criterion_clause(plain, source, base_url, [source_type]),
                                         _visibility.visible_clause(visibility, source, [source_type], base_url))
    referenced = select(ref.c.target_id).where(
        ref.c.resource_type == source_type,
        ref.c.param == reference_param,
        _type_condition(ref.c.target_type, types),
        ref.c.pid.in_(sources),
    )
    return res.c.fhir_id.in_(referenced)


def _selectivity(criterion: Criterion) -> int:
    """A rough rank, most selective first: which criterion should drive the search."""
    if criterion.modifier == "missing" or criterion.modifier in NEGATING:
        return 5
    if criterion.chain is not None or criterion.has is not None:
        return 4
    kind = criterion.parameter.type
    if criterion.parameter.code == "_id" or kind == "reference":
        return 0
    if criterion.parameter.code == "identifier" or kind == "string":
        return 1
    return 3


def criterion_clause(criterion: Criterion, res=resource, base_url: str | None = None,
                     types: Sequence[str] | None = None, *, drives: bool = True, visibility=None,
                     page: tuple[int | None, int] | None = None):
    """SQL condition on the resource table (or an alias of it) for one criterion.

    The criterion that ``drives`` the search is an uncorrelated ``pid IN (SELECT pid FROM ix_… WHERE
    …)`` so the database starts from that index; the others are correlated ``EXISTS`` checks of the
    rows found, through each index table's pid index. ``types``: the resource types searched,
    repeated on the index rows so that the (resource_type, param, value) indexes apply.
    ``visibility``: what the request may see; chains and ``_has`` only look at visible resources.
    ``page`` (after pid, size), for the criterion that drives a search with nothing else to check,
    in pid order: the index subquery itself yields only that page's pids, so a common value
    (``Patient?name=smi``) costs a page of row lookups, not one per match. Index rows exist only for
    current resources of their type, so nothing outside the subquery could drop one of those pids.
    """
    parameter = criterion.parameter
    where = f"{parameter.code}{':' + criterion.modifier if criterion.modifier else ''}"
    try:
        if criterion.has is not None:
            return _has(criterion, res, base_url, types, visibility)
        if criterion.chain is not None:
            return _chain(criterion, res, base_url, visibility)
        if parameter is LIST_PARAMETER:
            return listed(criterion, res, visibility)
        if parameter.code in ("_id", "_lastUpdated"):
            return _table_param(criterion, res)
        if parameter.type not in _CLAUSES and not (parameter.type == "composite" and parameter.indexed):
            raise BadRequest(f"Search parameter '{parameter.code}' of type {parameter.type} is not supported",
                             expression=where)
        table = alias(INDEX_TABLES[parameter.type])
        # A correlated check is a lookup of this row's index entries: through the pid index only.
        columns = table if drives else per_pid(table)
        param_name = parameter.code + (":of-type" if criterion.modifier == "of-type" else "")
        rows_of = and_(table.c.param == param_name, _type_condition(columns.c.resource_type, types))

        def having(*conditions):
            if drives:
                pids = select(table.c.pid).where(rows_of, *conditions)
                if page is not None and criterion.modifier != "missing" and criterion.modifier not in NEGATING:
                    after_pid, size = page
                    if after_pid is not None:
                        pids = pids.where(table.c.pid > after_pid)
                    pids = pids.distinct().order_by(table.c.pid).limit(size)
                return res.c.pid.in_(pids)
            # LIMIT 1 OFFSET 0 keeps PostgreSQL from flattening the check into a join that may read
            # the whole index table; it stays a per-row lookup through the pid index.
            return exists(select(1).select_from(table).where(table.c.pid == res.c.pid, rows_of, *conditions)
                          .limit(1).offset(0))

        if criterion.modifier == "missing" and criterion.codes is None:
            with_value = having()
            return not_(with_value) if criterion.values[-1] == "true" else with_value
        matching = having(value_clause(criterion, columns, base_url))
        return not_(matching) if criterion.modifier in NEGATING else matching
    except ValueError as exc:
        raise BadRequest(f"Invalid value for search parameter '{where}': {exc}", expression=where) from exc


def value_clause(criterion: Criterion, columns, base_url: str | None = None):
    """The condition one index row (``columns``: an ``ix_…`` table, or a table of the same columns)
    must meet for one of the criterion's values (or resolved codes); ``:not`` and ``:not-in`` negate
    the resource's check of it, not this. Raises ValueError for a malformed value."""
    parameter = criterion.parameter
    if criterion.codes is not None:
        return _codes(columns, criterion.codes)
    values = []
    for value in criterion.values:
        if parameter.type == "reference":
            only_target = parameter.targets[0] if len(parameter.targets) == 1 else None
            values.append(_reference(columns, value, criterion.modifier or only_target, base_url))
        elif parameter.type == "composite":
            values.append(_composite(columns, value, parameter.component_types[1], base_url))
        else:
            modifier = None if criterion.modifier == "not" else criterion.modifier
            values.append(_CLAUSES[parameter.type](columns, value, modifier))
    return or_(*values)


def build_where(resource_types: str | Sequence[str], criteria: Iterable[Criterion], base_url: str | None = None,
                visibility: _visibility.Visibility | None = None, *, page: tuple[int | None, int] | None = None):
    """The search's ``WHERE``: types, not deleted, every criterion, and what ``visibility`` allows.

    ``page`` (after pid, size): the search is paged in pid order; with one criterion and no
    visibility to check, its index subquery yields only that page (see ``criterion_clause``)."""
    types = [resource_types] if isinstance(resource_types, str) else list(resource_types)
    type_clause = resource.c.resource_type == types[0] if len(types) == 1 else resource.c.resource_type.in_(types)
    clauses = [type_clause, resource.c.deleted == false()]
    ordered = sorted(criteria, key=_selectivity)
    pushed = page if len(ordered) == 1 and visibility is None else None
    clauses += [criterion_clause(c, resource, base_url, types, drives=(n == 0), visibility=visibility,
                                 page=pushed if n == 0 else None)
                for n, c in enumerate(ordered)]
    if visibility is not None:
        clauses.append(_visibility.visible_clause(visibility, resource, types, base_url, drives=True))
    return and_(true(), *clauses)
