"""Version and index rows written in bulk at the end of a transaction (or before the next query
in it that reads them).

Writing one resource adds a version row and touches up to seven index tables; a transaction Bundle
or a bulk load writes hundreds of resources. Buffering those rows per connection and inserting each
table's rows with multi-row statements turns thousands of statements into a handful, while any
search, history or vread in the same transaction first flushes so it sees every write. On
PostgreSQL, many version and index rows go in with ``COPY`` (``_copy``): an executemany of INSERTs is
one statement per row for the server, several times the work of copying the same rows; a few (one
REST write's) go in with a multi-row INSERT per table, all in one statement (one round trip, where a
COPY per table takes several each), and an update clears its old index rows from every index table in
one statement.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, Table, delete, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fhirportal.errors import Conflict

from .contained_schema import CONTAINED_TABLES, contained_resource
from .schema import INDEX_TABLES, resource, resource_version

_KEY = "fhirportal.write_buffer"
# Contained resources' rows (contained_schema), by table name: written and cleared with their container's.
CONTAINED = {table.name: table for table in (contained_resource, *CONTAINED_TABLES.values())}


def _copy(conn: Connection, table: Table, rows: list[dict]) -> None:
    """Append ``rows`` to ``table`` with PostgreSQL's COPY, in the connection's transaction (columns
    a row lacks are NULL)."""
    columns = [column.name for column in table.columns]
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(tuple(row.get(name) for name in columns))


def _multi_row_insert(table: Table, rows: list[dict]) -> tuple[str, list]:
    """A multi-row INSERT of ``rows`` (PostgreSQL's driver placeholders) and its parameters."""
    columns = [column.name for column in table.columns]
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))}"
    return statement, [row.get(name) for row in rows for name in columns]


def _values(conn: Connection, batches: list[tuple[Table, list[dict]]]) -> None:
    """Append a few rows to each of several tables with one statement: one round trip, where a COPY takes
    several (the INSERTs but the last as data-modifying WITH queries)."""
    inserts = [_multi_row_insert(table, rows) for table, rows in batches]
    heads = [f"w{n} AS ({statement})" for n, (statement, _) in enumerate(inserts[:-1])]
    statement = (f"WITH {', '.join(heads)} " if heads else "") + inserts[-1][0]
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(statement, [value for _, values in inserts for value in values])


def append_rows(conn: Connection, table: Table, rows: list[dict]) -> None:
    """Insert ``rows`` into ``table`` (columns a row lacks are NULL); see ``append_all``."""
    append_all(conn, [(table, rows)])


def append_all(conn: Connection, batches: list[tuple[Table, list[dict]]]) -> None:
    """Insert each batch's rows into its table (columns a row lacks are NULL). On PostgreSQL the batches
    of up to ``_FEW`` rows (a REST write's) go in together, in one statement; larger ones (a Bundle's, a
    bulk load's) with COPY. On SQLite an executemany per table."""
    batches = [(table, rows) for table, rows in batches if rows]
    if conn.dialect.name != "postgresql":
        _sqlite_executemany(conn, batches)
        return
    few = [(table, rows) for table, rows in batches if len(rows) <= _FEW]
    for table, rows in batches:
        if len(rows) > _FEW:
            _copy(conn, table, rows)
    if few:
        _values(conn, few)


_CHUNK = 500
_PID_BLOCK = 500
_FEW = 50

_SQLITE_INSERTS: dict[str, tuple[str, list]] = {}


def _sqlite_insert(conn: Connection, table: Table) -> tuple[str, list]:
    """The table's INSERT for SQLite's driver, and each column's name and bind processor (what
    SQLAlchemy would convert: a datetime to its stored text, a boolean to 0/1)."""
    if table.name not in _SQLITE_INSERTS:
        columns = [(column.name, column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect))
                   for column in table.columns]
        statement = (f"INSERT INTO {table.name} ({', '.join(name for name, _ in columns)}) "
                     f"VALUES ({', '.join('?' * len(columns))})")
        _SQLITE_INSERTS[table.name] = statement, columns
    return _SQLITE_INSERTS[table.name]


def _sqlite_executemany(conn: Connection, batches: list[tuple[Table, list[dict]]]) -> None:
    """An executemany per table on the driver's cursor: the same rows SQLAlchemy would send, without
    its work per statement, which runs inside SQLite's one writers' turn."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        for table, rows in batches:
            statement, columns = _sqlite_insert(conn, table)
            cursor.executemany(statement, [
                tuple(row.get(name) if process is None else process(row.get(name)) for name, process in columns)
                for row in rows])
    finally:
        cursor.close()


# SQLite: new resources in a multi-row INSERT that skips ids already taken and says which it wrote.
_SQLITE_INSERT_RESOURCES = (sqlite_insert(resource).on_conflict_do_nothing(index_elements=["resource_type", "fhir_id"])
                            .returning(resource.c.pid))
# PostgreSQL: new resources as one binary array per column (one short statement, parsed once, whatever
# the count; a multi-row VALUES list is a new statement text, parsed anew, for each count of rows).
_RESOURCE_COLUMNS = ("pid", "resource_type", "fhir_id", "version_id", "last_updated", "deleted", "content",
                     "content_hash", "marks")
_UNNEST_RESOURCES = (
    f"INSERT INTO resource ({', '.join(_RESOURCE_COLUMNS)}) SELECT * FROM unnest(%b::integer[], %b::varchar[], "
    "%b::varchar[], %b::integer[], %b::timestamptz[], %b::boolean[], %b::text[], %b::varchar[], %b::smallint[]) "
    "ON CONFLICT (resource_type, fhir_id) DO NOTHING RETURNING pid")


def _insert_new_resources(conn: Connection, rows: list[dict]) -> set[int]:
    """Insert new resources (pids reserved), skipping ids already taken; the pids written."""
    if conn.dialect.name != "postgresql":
        return set(conn.execute(_SQLITE_INSERT_RESOURCES, rows).scalars())
    with conn.connection.driver_connection.cursor() as cursor:
        # binary arrays (%b): the JSON content goes as it is, nothing escaped
        cursor.execute(_UNNEST_RESOURCES, [[row.get(name) for row in rows] for name in _RESOURCE_COLUMNS])
        return {pid for (pid,) in cursor.fetchall()}


class WriteBuffer:
    def __init__(self, dialect: str):
        self.dialect = dialect
        self.cleared: set[int] = set()  # pids whose existing index rows must go
        self.cleared_contained: set[int] = set()  # of those, the pids that may have contained rows too
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.contained: dict[str, list[dict]] = defaultdict(list)  # by table name (``CONTAINED``)
        self.pending: set[int] = set()
        self.versions: list[dict] = []
        self.resources: list[dict] = []  # new resources, with pids reserved by reserve_pid
        self.free_pids: list[int] = []
        self.next_pid: int | None = None

    def reserve_pid(self, conn: Connection) -> int:
        """A pid for a new resource written at the next flush.

        PostgreSQL hands out blocks from the table's sequence; on SQLite, whose writers are
        serialised, the next pid follows the highest one in the table or already reserved.
        """
        if self.dialect == "postgresql":
            if not self.free_pids:
                self.free_pids = list(conn.execute(
                    text("SELECT nextval(pg_get_serial_sequence('resource', 'pid')) FROM generate_series(1, :n)"),
                    {"n": _PID_BLOCK}).scalars())[::-1]
            return self.free_pids.pop()
        if self.next_pid is None:
            self.next_pid = conn.execute(text("SELECT coalesce(max(pid), 0) + 1 FROM resource")).scalar_one()
        self.next_pid += 1
        return self.next_pid - 1

    def add_resource(self, row: dict) -> None:
        self.resources.append(row)

    def add_version(self, row: dict) -> None:
        self.versions.append(row)

    def replace(self, pid: int, rows_by_kind: dict[str, list[dict]] | None, *, existing: bool,
                contained: dict[str, list[dict]] | None = None, had_contained: bool = True) -> None:
        """The resource's index rows (by kind) and its contained resources' (by table name) from now on.
        ``had_contained``: the version replaced may have had contained resources (their rows go too)."""
        if pid in self.pending:
            for rows in (self.rows, self.contained):
                for name in rows:
                    rows[name] = [row for row in rows[name] if row["pid"] != pid]
        if existing:
            self.cleared.add(pid)
            if had_contained:
                self.cleared_contained.add(pid)
        self.pending.add(pid)
        for kind, rows in (rows_by_kind or {}).items():
            self.rows[kind].extend(rows)
        for name, rows in (contained or {}).items():
            self.contained[name].extend(rows)

    def flush_resources(self, conn: Connection) -> None:
        """Insert the new resources' rows (not yet their versions and index rows): enough for a read of
        the resource table."""
        for start in range(0, len(self.resources), _CHUNK):
            chunk = self.resources[start:start + _CHUNK]
            written = _insert_new_resources(conn, chunk)
            lost = [f"{row['resource_type']}/{row['fhir_id']}" for row in chunk if row["pid"] not in written]
            if lost:
                raise Conflict(f"{', '.join(lost[:5])} was created by another request meanwhile; try again")
        self.resources.clear()
        self.next_pid = None  # autoincrement inserts may follow; count from the table again

    def flush(self, conn: Connection) -> None:
        self.flush_resources(conn)
        if self.cleared:  # old index rows go before the new ones come
            clear_indexes(conn, sorted(self.cleared))
        if self.cleared_contained:
            pids = sorted(self.cleared_contained)
            for table in CONTAINED.values():
                for start in range(0, len(pids), _CHUNK):
                    conn.execute(delete(table).where(table.c.pid.in_(pids[start:start + _CHUNK])))
        append_all(conn, [(resource_version, self.versions),
                          *((INDEX_TABLES[kind], rows) for kind, rows in self.rows.items()),
                          *((CONTAINED[name], rows) for name, rows in self.contained.items())])
        self.versions.clear()
        self.cleared.clear()
        self.cleared_contained.clear()
        self.rows.clear()
        self.contained.clear()
        self.pending.clear()


_CLEAR_ALL = text("WITH " + ", ".join(f"d_{kind} AS (DELETE FROM {table.name} WHERE pid = ANY(:pids))"
                                     for kind, table in INDEX_TABLES.items()) + " SELECT 1")


_SQLITE_CLEAR = [f"DELETE FROM {table.name} WHERE pid IN " for table in INDEX_TABLES.values()]


def clear_indexes(conn: Connection, pids: list[int]) -> None:
    """Delete the index rows of ``pids`` from every index table: on PostgreSQL in one statement (a
    data-modifying WITH per table: one round trip instead of one per table); on SQLite one short
    statement per table on the driver's cursor (the pids are integers: nothing to convert), which costs
    a fraction of building each through SQLAlchemy, inside the writers' turn."""
    for start in range(0, len(pids), _CHUNK):
        chunk = pids[start:start + _CHUNK]
        if conn.dialect.name == "postgresql":
            conn.execute(_CLEAR_ALL, {"pids": chunk})
            continue
        where = "(" + ",".join("?" * len(chunk)) + ")"
        cursor = conn.connection.driver_connection.cursor()
        try:
            for statement in _SQLITE_CLEAR:
                cursor.execute(statement + where, chunk)
        finally:
            cursor.close()


def buffer_for(conn: Connection) -> WriteBuffer:
    """The connection's buffer; created on first use and flushed before the transaction commits."""
    buffer = conn.info.get(_KEY)
    if buffer is None:
        buffer = conn.info[_KEY] = WriteBuffer(conn.dialect.name)
        conn.info.setdefault("before_commit", []).append(lambda: flush(conn))
    return buffer


def flush(conn: Connection) -> None:
    buffer = conn.info.get(_KEY)
    if buffer is not None:
        buffer.flush(conn)


def flush_resources(conn: Connection) -> None:
    """Write the buffered new resources' rows, for a read of the resource table alone."""
    buffer = conn.info.get(_KEY)
    if buffer is not None and buffer.resources:
        buffer.flush_resources(conn)
