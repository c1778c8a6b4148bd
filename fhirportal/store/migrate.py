"""Schema versions: the alembic migration chain in ``migrations/``, and what the server does with a
database it is pointed at.

- An empty database is created at the newest revision (the models' ``create_all``, then stamped:
  the chain and the models are kept equal by a test), under a lock so that workers starting
  together create it once.
- A database created before migrations existed (no ``alembic_version``) whose tables are exactly
  those of the baseline release is stamped as the baseline; one that matches no known schema is
  refused with what to do.
- A database at an older revision is refused (``OutdatedSchema``) with the command that upgrades
  it: the server never migrates by itself while other versions of it may still be serving.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text

from .database import Database, OutdatedSchema
from .schema import metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema of the first release with migrations (commit 96d475c)
VERSION_TABLE = "alembic_version"
_LOCK_KEY = 7_153_862_401  # the advisory lock serialising schema changes on PostgreSQL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: ``empty``, ``current``, ``behind`` (needs upgrading), ``unversioned``
    (the baseline's tables without a version row), ``unknown`` (tables of no known schema) or
    ``ahead`` (a revision this version does not know: made by a newer fhirportal)."""

    state: str
    revision: str | None
    head: str
    detail: str = ""


_PARTITION = re.compile(r"^access_log_(\d{4}_\d{2}|default)$")


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """What autogenerate compares: not the access log's monthly partitions and the index on its ``id``
    (PostgreSQL only, where the partitioned table has no primary key: journal_schema.py), which the
    models do not list."""
    if type_ == "index" and name == "ix_access_log_id":
        return False
    table = obj.table.name if type_ in ("index", "column", "unique_constraint", "foreign_key_constraint") \
        else name
    return not (table and _PARTITION.match(table))


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    return script_directory().get_current_head()


def _our_tables(names) -> set[str]:
    return {name for name in names if name in _baseline_columns() or name in metadata.tables}


_baseline_cache: dict[str, dict[str, set[str]]] = {}


def _baseline_columns() -> dict[str, set[str]]:
    """The baseline's tables and their columns, as the baseline migration creates them (run once on
    an in-memory SQLite database: table and column names do not depend on the dialect)."""
    if "columns" not in _baseline_cache:
        engine = create_engine("sqlite://")
        with engine.connect() as connection:
            command.upgrade(config(connection), BASELINE)
            connection.commit()
            inspector = inspect(connection)
            _baseline_cache["columns"] = {
                table: {column["name"] for column in inspector.get_columns(table)}
                for table in inspector.get_table_names() if table != VERSION_TABLE}
        engine.dispose()
    return _baseline_cache["columns"]


def _differences(connection: Connection, expected: dict[str, set[str]]) -> list[str]:
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    problems = [f"table {name} missing" for name in sorted(set(expected) - present)]
    unexpected = []
    for name in sorted(set(expected) & present):
        columns = {column["name"] for column in inspector.get_columns(name)}
        problems += [f"{name}.{column} missing" for column in sorted(expected[name] - columns)]
        unexpected += [f"{name}.{column} unexpected" for column in sorted(columns - expected[name])]
    return problems + unexpected  # what is missing first: the message shows the first few


def status(connection: Connection) -> SchemaStatus:
    newest = head()
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables:
        revisions = MigrationContext.configure(connection).get_current_heads()
        if revisions:
            revision = revisions[0]
            if revision == newest:
                return SchemaStatus("current", revision, newest)
            known = {script.revision for script in script_directory().walk_revisions()}
            if revision not in known:
                return SchemaStatus("ahead", revision, newest, "made by a newer fhirportal")
            return SchemaStatus("behind", revision, newest)
    if not _our_tables(tables):
        return SchemaStatus("empty", None, newest)
    problems = _differences(connection, _baseline_columns())
    if problems:
        return SchemaStatus("unknown", None, newest, "; ".join(problems[:8]))
    return SchemaStatus("unversioned", None, newest)


@contextmanager
def _schema_lock(database: Database):
    """A write transaction that holds the schema lock: workers and commands starting together take
    turns (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock)."""
    with database.write() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        yield connection


def refusal(found: SchemaStatus) -> str:
    """What to tell an operator whose database this version cannot serve."""
    if found.state == "behind":
        return (f"the database schema is at revision {found.revision}, this version of fhirportal needs "
                f"{found.head}: back it up, then run `fhirportal db upgrade` (see the README's upgrade section)")
    if found.state == "ahead":
        return (f"the database schema is at revision {found.revision}, which this version of fhirportal does "
                f"not know ({found.detail}; this version's newest is {found.head}): run the newer version")
    return (f"the database's tables match no schema fhirportal knows ({found.detail}). It was made by a "
            f"version older than the first release with migrations, or changed by hand: export what you need "
            f"(`fhirportal export`), then `fhirportal init-db --drop` (deletes every row) and load it again")


def ensure_current(database: Database) -> SchemaStatus:
    """Make the database servable or refuse it: create an empty one at the newest revision, stamp an
    unversioned baseline, and raise ``OutdatedSchema`` for anything not at the newest revision."""
    with _schema_lock(database) as connection:
        found = status(connection)
        if found.state == "empty":
            metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(script_directory(), "head")
            log.info("created the database schema at revision %s", found.head)
            return SchemaStatus("current", found.head, found.head)
        if found.state == "unversioned":
            MigrationContext.configure(connection).stamp(script_directory(), BASELINE)
            log.warning("an unversioned database with the baseline schema: stamped as revision %s", BASELINE)
            found = SchemaStatus("behind" if found.head != BASELINE else "current", BASELINE, found.head)
        if found.state == "current":
            missing = [problem for problem in _differences(connection, _model_columns()) if "missing" in problem]
            if missing:  # at the newest revision, yet changed by hand since
                found = SchemaStatus("unknown", found.revision, found.head, "; ".join(missing[:8]))
    if found.state != "current":
        raise OutdatedSchema(refusal(found))
    return found


def _model_columns() -> dict[str, set[str]]:
    return {table.name: {column.name for column in table.columns} for table in metadata.sorted_tables}


def upgrade(database: Database, target: str = "head", *, echo: Callable[[str], None] = print) -> SchemaStatus:
    """Bring the database to ``target`` through the migration chain, printing each migration as it
    runs. An empty database is created at the newest revision; an unversioned baseline is stamped first."""
    with _schema_lock(database) as connection:
        found = status(connection)
        if found.state == "unknown" or found.state == "ahead":
            raise OutdatedSchema(refusal(found))
        if found.state == "unversioned":
            MigrationContext.configure(connection).stamp(script_directory(), BASELINE)
            echo(f"stamped the unversioned database as the baseline, revision {BASELINE}")
    if found.state == "empty" and target == "head":
        ensure_current(database)
        echo(f"created the schema at revision {found.head}")
        return status_of(database)
    handler = _EchoHandler(echo)
    migration_log = logging.getLogger("alembic.runtime.migration")
    previous_level = migration_log.level
    migration_log.addHandler(handler)
    migration_log.setLevel(logging.INFO)
    try:
        with database.engine.connect() as connection:
            if database.dialect == "postgresql":  # one upgrade at a time (session lock: it spans transactions)
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
            try:
                command.upgrade(config(connection), target)
            finally:
                if database.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                    connection.commit()
    finally:
        migration_log.removeHandler(handler)
        migration_log.setLevel(previous_level)
    return status_of(database)


def status_of(database: Database) -> SchemaStatus:
    with database.engine.connect() as connection:
        return status(connection)


class _EchoHandler(logging.Handler):
    def __init__(self, echo: Callable[[str], None]):
        super().__init__(logging.INFO)
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Running upgrade"):
            self.echo(message)


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, oldest first: (revision, down_revision, first line of its message)."""
    scripts = list(script_directory().walk_revisions())
    return [(s.revision, s.down_revision, (s.doc or "").splitlines()[0] if s.doc else "") for s in reversed(scripts)]
