"""Alembic's environment for fhirportal: always driven from code (``fhirportal.store.migrate``), which
hands over an open SQLAlchemy connection; there is no ``alembic.ini``.

Each migration runs in its own transaction (``transaction_per_migration``), so a migration that must
work outside one (PostgreSQL's ``CREATE INDEX CONCURRENTLY``) can open an ``autocommit_block``. On
SQLite, ALTERs go through batch mode (copy-and-move of the table), which SQLite needs for most changes.
"""

from __future__ import annotations

from alembic import context

from fhirportal.store.migrate import include_object
from fhirportal.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover  (only reachable by running the alembic command by hand)
    raise RuntimeError("fhirportal's migrations run through `fhirportal db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=False,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
