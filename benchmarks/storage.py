"""How much room a benchmark's database takes, for the "bytes per request" figures.

``footprint(url)`` measures, on a connection of its own (as of the last commit, WAL included):
- ``database``: the bytes the database uses — SQLite: pages in use (``page_count - freelist_count``) x
  page size; PostgreSQL: ``pg_database_size`` (tables, indexes, TOAST, free space inside their files);
- ``access_log``: the access log's table and indexes (every partition on PostgreSQL; SQLite's ``dbstat``);
- ``access_log_rows``: its rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Footprint:
    database: int
    access_log: int
    access_log_rows: int

    def __sub__(self, other: Footprint) -> Footprint:
        return Footprint(self.database - other.database, self.access_log - other.access_log,
                         self.access_log_rows - other.access_log_rows)


def footprint(url: str) -> Footprint:
    if url.startswith("sqlite:///"):
        return _sqlite(url.removeprefix("sqlite:///"))
    return _postgresql(url)


def _sqlite(path: str) -> Footprint:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        used = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'access_log' AND type IN ('table', 'index')")]
        log_bytes = 0
        if names:
            marks = ", ".join("?" for _ in names)
            log_bytes = conn.execute(f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({marks})",
                                     names).fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM access_log").fetchone()[0] if names else 0
    finally:
        conn.close()
    return Footprint(used * page_size, log_bytes, rows)


def _postgresql(url: str) -> Footprint:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        log_bytes = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('access_log')"
        ).fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM access_log").fetchone()[0]
    return Footprint(int(database), int(log_bytes), int(rows))


def per_request(growth: Footprint, requests: int) -> str:
    """``"312 B/request (access log 180 B/row)"`` for a report line."""
    if requests <= 0:
        return "n/a"
    text = f"{growth.database / requests:,.0f} B/request"
    if growth.access_log_rows > 0:
        text += f" (access log {growth.access_log / growth.access_log_rows:,.0f} B/entry incl. indexes)"
    return text
