"""The access log as a view: AuditEvents are rendered from the journal, no longer stored per access.

- ``access_log`` loses ``materialized`` (and its index) and gains ``actor_patient`` (the acting
  token's patient when the record was another one's) and ``stored_pid`` (the row indexes a stored
  AuditEvent another system sent); ``outcome`` becomes a SMALLINT.
- The AuditEvent resources the old version made from the journal (``AuditEvent/access-N``) are removed
  with their versions and index rows: ``access-N`` is now rendered from journal row N, the same id.
- AuditEvents other systems sent stay stored; each gets an index row in the log (its time: the
  resource's lastUpdated), so AuditEvent searches page through one table.
- PostgreSQL: the journal becomes a table partitioned by month on ``recorded`` (a partition per month
  from the oldest row to three months ahead, and a default one).

Stop the old version's workers before running it: their journal inserts name ``materialized``.

Locks (PostgreSQL): the journal is copied into the new partitioned table in batches of 50,000 rows
while the log keeps being written; its indexes are built on the new table; then the last rows are copied and the tables
swapped under an EXCLUSIVE lock on ``access_log`` (reads go on; journal writes wait for that last
batch only). The
journal-made AuditEvents are deleted 5,000 resources per transaction (row locks on those rows only).
SQLite: the journal table is rebuilt in one transaction (the database is locked for writes meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = "id, recorded, account_id, fhir_user, client_id, patient_id, action, resource_type, query, outcome"
BATCH = 50_000
DELETE_BATCH = 5_000
INDEX_TABLES = ("ix_token", "ix_string", "ix_date", "ix_reference", "ix_quantity", "ix_number", "ix_uri",
                "ix_composite")
JOURNAL_MADE = "resource_type = 'AuditEvent' AND fhir_id LIKE 'access-%'"
INDEXES = (("ix_access_log_id", "(id)"), ("ix_access_log_patient", "(patient_id, recorded)"),
           ("ix_access_log_actor", "(actor_patient, recorded) WHERE actor_patient IS NOT NULL"),
           ("ix_access_log_stored", "(stored_pid) WHERE stored_pid IS NOT NULL"))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _partitioned_journal()
    else:
        with op.batch_alter_table("access_log", recreate="always") as batch:
            batch.drop_index("ix_access_log_pending")
            batch.drop_column("materialized")
            batch.add_column(sa.Column("actor_patient", sa.String(length=64), nullable=True))
            batch.add_column(sa.Column("stored_pid", sa.Integer(), nullable=True))
            batch.alter_column("outcome", existing_type=sa.Integer(), type_=sa.SmallInteger(), existing_nullable=False)
        op.create_index("ix_access_log_actor", "access_log", ["actor_patient", "recorded"],
                        sqlite_where=sa.text("actor_patient IS NOT NULL"))
        op.create_index("ix_access_log_stored", "access_log", ["stored_pid"],
                        sqlite_where=sa.text("stored_pid IS NOT NULL"))
    _drop_journal_made_audit_events()
    op.execute(  # AuditEvents other systems sent: an index row each, in the log's time order
        "INSERT INTO access_log (recorded, patient_id, action, resource_type, outcome, stored_pid) "
        "SELECT r.last_updated, (SELECT x.target_id FROM ix_reference x WHERE x.pid = r.pid AND x.param = 'patient' "
        "AND x.target_type = 'Patient' ORDER BY x.target_id LIMIT 1), 'stored', 'AuditEvent', 0, r.pid "
        "FROM resource r WHERE r.resource_type = 'AuditEvent' AND r.deleted = false")


def _drop_journal_made_audit_events() -> None:
    """Remove ``AuditEvent/access-N`` resources (journal row N renders them now), a batch at a time."""
    bind = op.get_bind()
    context = op.get_context()
    while True:
        with context.autocommit_block() if bind.dialect.name == "postgresql" else _same_transaction():
            pids = [row[0] for row in bind.execute(sa.text(
                f"SELECT pid FROM resource WHERE {JOURNAL_MADE} LIMIT {DELETE_BATCH}"))]
            if not pids:
                return
            chosen = ", ".join(str(int(pid)) for pid in pids)
            for table in (*INDEX_TABLES, "resource_version", "resource"):
                bind.execute(sa.text(f"DELETE FROM {table} WHERE pid IN ({chosen})"))


class _same_transaction:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _months(oldest: datetime, ahead: int = 3) -> list[datetime]:
    month = datetime(oldest.year, oldest.month, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    last = datetime(now.year, now.month, 1, tzinfo=UTC)
    for _ in range(ahead):
        last = datetime(last.year + (last.month == 12), last.month % 12 + 1, 1, tzinfo=UTC)
    months = []
    while month <= last:
        months.append(month)
        month = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
    return months


# The partitioned journal as of this revision (later ones add columns: 0007 ``request_id``).
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
    stored_pid INTEGER
) PARTITION BY RANGE (recorded)
"""


def _partitioned_journal() -> None:
    bind = op.get_bind()
    context = op.get_context()
    with context.autocommit_block():
        bind.execute(sa.text(PARTITIONED_DDL.replace("CREATE TABLE access_log", "CREATE TABLE access_log_new")))
        bind.execute(sa.text("CREATE TABLE access_log_new_default PARTITION OF access_log_new DEFAULT"))
        oldest = bind.execute(sa.text("SELECT min(recorded) FROM access_log")).scalar() or datetime.now(UTC)
        for month in _months(oldest.astimezone(UTC)):
            after = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
            bind.execute(sa.text(
                f"CREATE TABLE access_log_{month.year:04d}_{month.month:02d}_new PARTITION OF access_log_new "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{after.isoformat()}')"))
        copied = 0
        while True:  # copy in batches while the old version's table keeps being written
            done = bind.execute(sa.text(
                f"INSERT INTO access_log_new ({COLUMNS}) SELECT {COLUMNS} FROM access_log "
                f"WHERE id > :after AND id <= :until"), {"after": copied, "until": copied + BATCH}).rowcount
            highest = bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM access_log")).scalar()
            copied += BATCH
            if copied >= highest and not done:
                break
        for name, definition in INDEXES:  # built before the swap, on the new table only
            bind.execute(sa.text(f"CREATE INDEX {name}_new ON access_log_new {definition}"))
    # the last rows, the swap and the names, with writes to the old table held for that moment only
    bind.execute(sa.text("LOCK TABLE access_log IN EXCLUSIVE MODE"))
    bind.execute(sa.text(f"INSERT INTO access_log_new ({COLUMNS}) SELECT {COLUMNS} FROM access_log "
                         f"WHERE id > (SELECT coalesce(max(id), 0) FROM access_log_new)"))
    bind.execute(sa.text("SELECT setval('access_log_new_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM "
                         "access_log_new), false)"))
    bind.execute(sa.text("DROP TABLE access_log"))
    bind.execute(sa.text("ALTER TABLE access_log_new RENAME TO access_log"))
    bind.execute(sa.text("ALTER SEQUENCE access_log_new_id_seq RENAME TO access_log_id_seq"))
    for (name,) in bind.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'access_log'::regclass")).all():
        bind.execute(sa.text(f"ALTER TABLE {name} RENAME TO {name.removesuffix('_new').replace('_new_', '_')}"))
    for name, _definition in INDEXES:
        bind.execute(sa.text(f"ALTER INDEX {name}_new RENAME TO {name}"))


def downgrade() -> None:
    raise NotImplementedError("the journal-made AuditEvent resources are gone: restore the backup taken before "
                              "upgrading (see the README's upgrade section)")
