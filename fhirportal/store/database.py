"""Engine and transactions for SQLite (embedded default) and PostgreSQL.

``Database.read()`` and ``Database.write()`` each yield a SQLAlchemy ``Connection`` inside one
database transaction. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that
writers queue up front instead of failing half-way; on PostgreSQL ``lock(key)`` takes a
transaction-scoped advisory lock (used to make conditional creates race-free).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from . import auth_schema, export_schema, outbox_schema, portal_settings_schema  # noqa: F401  (register their tables)
from .schema import metadata

_WRITE = "fhirportal_write"


def _normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "cache_size=-65536",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = "IMMEDIATE" if connection.get_execution_options().get(_WRITE) else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = _normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                kwargs.update(connect_args={"check_same_thread": False, "timeout": 30})
        else:
            # psycopg prepares statements it sees repeatedly, and PostgreSQL then switches to a
            # generic plan that cannot see the searched values: a search that takes 1 ms with its
            # values takes 60 ms without. Plan every execution for its own values.
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20,
                          connect_args={"options": "-c plan_cache_mode=force_custom_plan"})
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def drop_schema(self) -> None:
        metadata.drop_all(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        Work buffered on the connection (``connection.info["before_commit"]`` callbacks, e.g. index
        rows) is written just before the commit, inside the transaction.

        ``durable=False`` lets PostgreSQL acknowledge the commit before its WAL reaches the disk
        (``synchronous_commit = off``): still atomic and crash-consistent, but a crash of the
        database server may lose the last fraction of a second of such commits. Only for writes
        whose loss is harmless (e.g. an issued token the client would request again).
        """
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

    def analyze(self) -> None:
        """Refresh the planner's statistics (after bulk loads; autovacuum may be off or behind)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()

    def dispose(self) -> None:
        self.engine.dispose()
