"""The access log: one compact, append-only row per access (who, which app, whose record, what,
outcome, when), from which the FHIR layer renders AuditEvents on the way out (``fhir/audit_view.py``).

A row with ``stored_pid`` instead indexes an AuditEvent another system POSTed (stored as a resource,
append-only): so that AuditEvent searches page through one table in time order.

On PostgreSQL the table is range-partitioned by month on ``recorded`` (``journal.ensure_partitions``
keeps the months ahead created; ``fhirportal audit prune`` drops whole old months). A partitioned
table's unique constraints must include the partition key, so there the table has no primary key:
``id`` comes from a sequence and has an index of its own. SQLite keeps one plain table (``id`` the
rowid).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, SmallInteger, String, Table, Text, event, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable

from .schema import metadata

access_log = Table(
    "access_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("recorded", DateTime(timezone=True), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("fhir_user", String(200), nullable=True),
    Column("client_id", String(128), nullable=True),
    Column("patient_id", String(64), nullable=True),  # whose record the access was about
    Column("actor_patient", String(64), nullable=True),  # the acting token's patient, when that is another one
    Column("action", String(32), nullable=False),  # read vread search … portal-invite, stored (a stored AuditEvent)
    Column("resource_type", String(64), nullable=True),
    Column("query", Text, nullable=True),  # the id read, or the search string
    Column("outcome", SmallInteger, nullable=False),  # HTTP status
    Column("stored_pid", Integer, nullable=True),  # the stored AuditEvent this row indexes
    Column("request_id", String(64), nullable=True),  # the HTTP request's id (X-Request-ID)
    Index("ix_access_log_patient", "patient_id", "recorded"),
    Index("ix_access_log_actor", "actor_patient", "recorded", sqlite_where=text("actor_patient IS NOT NULL"),
          postgresql_where=text("actor_patient IS NOT NULL")),
    Index("ix_access_log_stored", "stored_pid", sqlite_where=text("stored_pid IS NOT NULL"),
          postgresql_where=text("stored_pid IS NOT NULL")),
)

# PostgreSQL: partitioned by month, no primary key (it would have to include ``recorded``), ``id`` indexed.
PARTITIONED_DDL = """
CREATE TABLE access_log (
    id BIGSERIAL NOT NULL,
    recorded TIMESTAMP WITH TIME ZONE NOT NULL,
    account_id INTEGER,
    fhir_user VARCHAR(200),
    client_id VARCHAR(128),
    patient_id VARCHAR(64),
    actor_patient VARCHAR(64),
    action VARCHAR(32) NOT NULL,
    resource_type VARCHAR(64),
    query TEXT,
    outcome SMALLINT NOT NULL,
    stored_pid INTEGER,
    request_id VARCHAR(64)
) PARTITION BY RANGE (recorded)
"""
ID_INDEX_DDL = "CREATE INDEX IF NOT EXISTS ix_access_log_id ON access_log (id)"


@compiles(CreateTable, "postgresql")
def _create_partitioned(create, compiler, **kw):
    if create.element is access_log:
        return PARTITIONED_DDL
    return compiler.visit_create_table(create, **kw)


@event.listens_for(access_log, "after_create")
def _default_partition(target, connection, **kw):
    """PostgreSQL: the id index and a default partition (rows of a month whose partition is not there yet
    land there instead of failing; ``journal.ensure_partitions`` creates the months ahead)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(ID_INDEX_DDL)
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS access_log_default PARTITION OF access_log DEFAULT")
