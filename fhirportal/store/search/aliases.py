"""Table aliases for building one request's statements, without rebuilding them each time.

Every index-table lookup in a search is a subquery over its own alias of the table (correlated checks
and nested chains must not share one). ``table.alias()`` copies every column of the table into the new
alias on first use — a sixth of a patient's lab search went there. Within a request scope
(``begin()``, called as each request starts), ``alias(table)`` hands out the request's first, second,
… alias of that table from a pool built once per process (``ix_token_0``, ``ix_token_1``, …): no two
uses in one request share an alias, whichever statements they end up in, and the same search's SQL
is the same text every time. Outside a request scope (command line, background threads) each call
makes a new anonymous alias as before.
"""

from __future__ import annotations

import contextvars
import functools
import threading

from sqlalchemy import Table

_counts: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("alias_counts", default=None)
_lock = threading.Lock()


def begin() -> None:
    """Start a request scope in the current context: aliases are numbered from 0 again."""
    _counts.set({})


def end() -> None:
    _counts.set(None)


def alias(table: Table):
    counts = _counts.get()
    if counts is None:
        return table.alias()
    n = counts.get(table.name, 0)
    counts[table.name] = n + 1
    return _pooled(table, n)


@functools.cache
def _pooled(table: Table, n: int):
    with _lock:
        made = table.alias(f"{table.name}_{n}")
        made.c  # noqa: B018 — populate the column collection once, before any thread reads it
        return made
