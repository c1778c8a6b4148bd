"""Correlated per-row checks (``EXISTS (SELECT 1 FROM ix_… WHERE pid = resource.pid AND …)``) must look
the row's index entries up through the pid index: a resource has a handful of them.

PostgreSQL chooses that index from its statistics. SQLite without statistics (no ``ANALYZE`` has run,
the usual case) prefers the index with the most equality-constrained leading columns — for
``category = laboratory`` the (resource_type, param, code, system) index — and then walks every
laboratory row of the table for each resource checked: a patient's read of one Observation took
1.6 ms instead of 0.5 ms with 20,000 lab results stored, and grows with the table.

``per_pid(table)`` gives the clause builders a view of an index table whose index-leading columns
(``resource_type``, ``target_type``) are written ``+column`` on SQLite — SQLite's documented way to
keep a term from choosing an index — and plainly elsewhere; the pid index is then the only one that
fits.
"""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

# The leading columns of the index tables' value indexes (see ``store/schema.py``).
INDEX_LEADING_COLUMNS = frozenset({"resource_type", "target_type"})


class Unindexed(ColumnElement):
    """A column that no index may serve a comparison with (SQLite); the column itself elsewhere."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column):
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _plain(element: Unindexed, compiler, **kw) -> str:
    return compiler.process(element.column, **kw)


@compiles(Unindexed, "sqlite")
def _unary_plus(element: Unindexed, compiler, **kw) -> str:
    return "+" + compiler.process(element.column, **kw)


class _Columns:
    def __init__(self, columns):
        self._columns = columns

    def __getattr__(self, name: str):
        column = getattr(self._columns, name)
        return Unindexed(column) if name in INDEX_LEADING_COLUMNS else column

    def __getitem__(self, name: str):
        return self.__getattr__(name)


class PerPid:
    """An index table (or alias) as a per-pid lookup sees it: ``.c.pid`` plain, the index-leading
    columns unindexed; ``.table`` is the table itself (for FROM and the correlation)."""

    def __init__(self, table):
        self.table = table
        self.c = _Columns(table.c)


def per_pid(table) -> PerPid:
    return PerPid(table)
