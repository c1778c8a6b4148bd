"""Engine and transactions for SQLite (embedded default) and PostgreSQL.

``Database.read()`` and ``Database.write()`` each yield a SQLAlchemy ``Connection`` inside one
database transaction. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that
writers queue up front instead of failing half-way; on PostgreSQL ``lock(key)`` takes a
transaction-scoped advisory lock (used to make conditional creates race-free).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from . import (  # noqa: F401  (register their tables)
    auth_schema,
    contained_schema,
    export_schema,
    index_schema,
    journal_schema,
    outbox_schema,
    portal_settings_schema,
    subscription_schema,
    web_schema,
)
from .pg_pool import READS, install_pool_checks
from .schema import metadata
from .sqlite_checkpoints import Checkpointer
from .sqlite_writers import WriterQueue

try:
    import psycopg
except ImportError:  # an installation for SQLite only
    psycopg = None

_WRITE = "fhirportal_write"
log = logging.getLogger(__name__)

# Bounds on waiting for PostgreSQL, so that a database that went away costs a request a few seconds
# (answered 503) rather than a hang. A ``?connect_timeout=…`` (or any of these) in the URL wins.
CONNECT_TIMEOUT_SECONDS = 3  # giving up on opening a connection (psycopg; at least 2)
POOL_TIMEOUT_SECONDS = 5  # waiting for a pooled connection when all are in use
_POSTGRESQL_CONNECT_DEFAULTS = {
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    # A connection whose peer vanished without a FIN/RST (a cable, a firewall) is noticed within
    # about 20 s when idle (keepalives) and 15 s when data is unacknowledged (tcp_user_timeout, ms).
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 2,
    "tcp_user_timeout": 15000,
}
# SQLSTATE classes and codes of a PostgreSQL that cannot serve now but may in a moment: connection
# exceptions, shutting down / starting up, too many connections, serialization failure, deadlock.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database file",
                     "disk i/o error")


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached or cannot serve right now (gone away,
    refusing connections, connection pool exhausted, a SQLite file locked past its busy timeout), as
    opposed to a fault of the statement: the request may be retried later (HTTP 503)."""
    if isinstance(error, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if psycopg is not None and isinstance(error, psycopg.Error):
        if isinstance(error, psycopg.InterfaceError):  # "the connection is closed" and the like
            return True
        if isinstance(error, psycopg.OperationalError):  # sqlstate None: raised by the client (connect, EOF)
            return error.sqlstate is None or error.sqlstate.startswith(_TRANSIENT_SQLSTATES)
        return False
    if isinstance(error, sqlite3.OperationalError):
        return str(error).lower().startswith(_SQLITE_TRANSIENT)
    return False


def end_after_request(transaction: ExitStack, what: str, error: BaseException | None = None) -> None:
    """End a transaction a request held open, from its teardown — after the answer is made, where
    an error would become the WSGI server's bare 500. Committed, or rolled back if the request
    raised ``error`` (a failure to roll back is logged: the request has failed already). If the
    database went away during the request, the commit cannot happen (its connection is gone, or was
    invalidated by the failure the request already answered 503 for): that is logged, not raised;
    anything else is raised."""
    if error is not None:
        try:
            transaction.__exit__(type(error), error, error.__traceback__)
        except Exception:  # noqa: BLE001
            log.exception("rolling back %s failed", what)
        return
    try:
        transaction.close()
    except Exception as exc:
        if not (unavailable(exc) or isinstance(exc, sa_exc.PendingRollbackError)):
            raise
        log.warning("ending %s failed, the database is unavailable: %s", what, type(exc).__name__)


class DriverQuery:
    """One fixed SELECT run straight on the driver's cursor of an SQLAlchemy connection, for a lookup
    made on every request (the access token's): SQLAlchemy's per-execution work (execution context,
    parameter and result processing) costs several times what such an indexed lookup costs the
    database. The SQL is SQLAlchemy's own compilation of ``statement`` for the dialect, and columns
    come back through their types' result processors, so values are what ``conn.execute`` returns.

    ``first(conn, **params)``: the first row as a tuple, or None. Should the driver raise, the
    statement runs again through SQLAlchemy, which raises (or answers) as every other query does.
    """

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        self.statement = statement
        self.sql = str(compiled)
        self.positions = list(compiled.positiontup) if compiled.positional else None
        self.processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                           for column in statement.selected_columns]

    def first(self, conn: Connection, **params) -> tuple | None:
        args = [params[name] for name in self.positions] if self.positions is not None else params
        try:
            cursor = conn.connection.driver_connection.cursor()
            try:
                cursor.execute(self.sql, args)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:  # noqa: BLE001  (SQLAlchemy raises it as every other query does)
            row = conn.execute(self.statement, params).first()
            return None if row is None else tuple(row)
        if row is None:
            return None
        return tuple(value if process is None else process(value)
                     for process, value in zip(self.processors, row, strict=True))


class OutdatedSchema(RuntimeError):
    """The database is not at the schema revision this version serves (``migrate.refusal`` says why
    and what to do)."""


def _normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine, *, own_checkpoints: bool) -> None:
    """``own_checkpoints``: the write-ahead log is checkpointed by a ``Checkpointer``, not in commits."""
    pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000",
               "cache_size=-65536") + (("wal_autocheckpoint=0",) if own_checkpoints else ())

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = "IMMEDIATE" if connection.get_execution_options().get(_WRITE) else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False, pooler: str = "none"):
        """``pooler="transaction"``: PostgreSQL is reached through a transaction-pooling PgBouncer, so no
        session state may outlive a transaction: no server-side prepared statements, no startup
        options (PgBouncer refuses them); every statement is planned for its values anyway."""
        self.url = _normalise_url(url)
        self.pooler = pooler
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"echo": echo, "future": True}
        self._writers: WriterQueue | None = None  # SQLite files: writers queue for their turn
        self._checkpoints: Checkpointer | None = None  # SQLite files: the log checkpointed outside that turn
        # Told of each write transaction that ended: (seconds waiting for the writers' turn (SQLite), seconds
        # from then to the commit or rollback); set by the metrics (observability.state).
        self.on_write: Callable[[float, float], None] | None = None
        self.in_memory = self.dialect == "sqlite" and (parsed.database or "") in ("", ":memory:")
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if self.in_memory:  # one connection, shared by every thread: it is the database
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                kwargs.update(connect_args={"check_same_thread": False, "timeout": 30})
                self._writers = WriterQueue(database)
                self._checkpoints = Checkpointer(database, self._writers)
        else:
            # psycopg prepares statements it sees repeatedly, and PostgreSQL then switches to a
            # generic plan that cannot see the searched values: a search that takes 1 ms with its
            # values takes 60 ms without. Plan every execution for its own values.
            # A pooled connection that died while idle (the database restarted) is replaced before use
            # (``pg_pool``).
            connect_args = {name: value for name, value in _POSTGRESQL_CONNECT_DEFAULTS.items()
                            if name not in parsed.query}
            if pooler == "transaction":
                connect_args["prepare_threshold"] = None
            else:
                connect_args["options"] = "-c plan_cache_mode=force_custom_plan"
            kwargs.update(pool_size=10, max_overflow=20, pool_timeout=POOL_TIMEOUT_SECONDS,
                          connect_args=connect_args)
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, own_checkpoints=self._checkpoints is not None)
        else:
            install_pool_checks(self.engine)

    def create_schema(self) -> None:
        """Make the schema servable (``migrate.ensure_current``): create an empty database at the newest
        revision; refuse (``OutdatedSchema``) one that needs ``fhirportal db upgrade`` or matches no
        known schema, rather than answer 500s (or worse: serve patients what the portal withholds)."""
        from .migrate import ensure_current

        ensure_current(self)

    def drop_schema(self) -> None:
        """Drop every table, the schema version included (destroys all data)."""
        from .migrate import VERSION_TABLE

        metadata.drop_all(self.engine)
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {VERSION_TABLE}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Statements that read (PostgreSQL: in autocommit, ``pg_pool.READS``; SQLite: in one transaction)."""
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection = connection.execution_options(**READS)
            with connection.begin():
                yield connection

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        ``on_write``, if set, is told how long the write waited for its turn and then took.

        Work buffered on the connection (``connection.info["before_commit"]`` callbacks, e.g. index
        rows) is written just before the commit, inside the transaction.

        ``durable=False`` lets PostgreSQL acknowledge the commit before its WAL reaches the disk
        (``synchronous_commit = off``): still atomic and crash-consistent, but a crash of the
        database server may lose the last fraction of a second of such commits. Only for writes
        whose loss is harmless (e.g. an issued token the client would request again).
        """
        asked = began = time.perf_counter()
        with ExitStack() as turn:
            if self._checkpoints is not None:
                turn.callback(self._checkpoints.wrote)  # after the turn ends
            if self.on_write is not None:
                turn.callback(lambda: self.on_write(began - asked, time.perf_counter() - began))
            if self._writers is not None:
                turn.enter_context(self._writers.turn())
            began = time.perf_counter()
            with self._transaction(durable) as connection:
                yield connection

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE: True})
            connection.info.clear()
            try:
                with connection.begin():
                    if not durable and self.dialect == "postgresql":
                        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    yield connection
                    for callback in connection.info.pop("before_commit", []):
                        callback()
            finally:
                connection.info.clear()

    def lock(self, connection: Connection, key: str) -> None:
        """Serialise transactions that share ``key`` until the current transaction ends.

        SQLite already serialises writers (``BEGIN IMMEDIATE``); PostgreSQL takes an advisory lock.
        """
        if self.dialect == "postgresql":
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            number = int.from_bytes(digest, "big", signed=True)
            connection.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": number})

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a trivial query now (a node's readiness for a load balancer)."""
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
                connection.exec_driver_sql("SELECT 1")
                connection.rollback()
            return True
        except Exception as exc:  # noqa: BLE001
            if unavailable(exc):
                return False
            raise

    def analyze(self) -> None:
        """Refresh the planner's statistics (after bulk loads; autovacuum may be off or behind)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()

    def dispose(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.stop()
        self.engine.dispose()
