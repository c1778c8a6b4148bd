"""Version and index rows written in bulk at the end of a transaction (or before the next query
in it that reads them).

Writing one resource adds a version row and touches up to seven index tables; a transaction Bundle
or a bulk load writes hundreds of resources. Buffering those rows per connection and inserting each
table's rows with multi-row statements turns thousands of statements into a handful, while any
search, history or vread in the same transaction first flushes so it sees every write.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, delete, insert

from .schema import INDEX_TABLES, resource_version

_KEY = "fhirportal.write_buffer"
_DELETES = {kind: delete(table) for kind, table in INDEX_TABLES.items()}
_INSERTS = {kind: insert(table) for kind, table in INDEX_TABLES.items()}
_INSERT_VERSION = insert(resource_version)
_CHUNK = 500


class WriteBuffer:
    def __init__(self):
        self.cleared: set[int] = set()  # pids whose existing index rows must go
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.pending: set[int] = set()
        self.versions: list[dict] = []

    def add_version(self, row: dict) -> None:
        self.versions.append(row)

    def replace(self, pid: int, rows_by_kind: dict[str, list[dict]] | None, *, existing: bool) -> None:
        if pid in self.pending:
            for kind in self.rows:
                self.rows[kind] = [row for row in self.rows[kind] if row["pid"] != pid]
        if existing:
            self.cleared.add(pid)
        self.pending.add(pid)
        for kind, rows in (rows_by_kind or {}).items():
            self.rows[kind].extend(rows)

    def flush(self, conn: Connection) -> None:
        for start in range(0, len(self.versions), _CHUNK):
            conn.execute(_INSERT_VERSION, self.versions[start:start + _CHUNK])
        self.versions.clear()
        if self.cleared:
            pids = sorted(self.cleared)
            for kind, table in INDEX_TABLES.items():
                for start in range(0, len(pids), _CHUNK):
                    conn.execute(_DELETES[kind].where(table.c.pid.in_(pids[start:start + _CHUNK])))
        for kind, rows in self.rows.items():
            for start in range(0, len(rows), _CHUNK):
                conn.execute(_INSERTS[kind], rows[start:start + _CHUNK])
        self.cleared.clear()
        self.rows.clear()
        self.pending.clear()


def buffer_for(conn: Connection) -> WriteBuffer:
    """The connection's buffer; created on first use and flushed before the transaction commits."""
    buffer = conn.info.get(_KEY)
    if buffer is None:
        buffer = conn.info[_KEY] = WriteBuffer()
        conn.info.setdefault("before_commit", []).append(lambda: flush(conn))
    return buffer


def flush(conn: Connection) -> None:
    buffer = conn.info.get(_KEY)
    if buffer is not None:
        buffer.flush(conn)
