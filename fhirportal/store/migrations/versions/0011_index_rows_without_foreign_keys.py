"""Index rows without foreign keys: the ``ix_*`` and ``cx_*`` tables and ``contained_resource`` stop
referencing ``resource`` with a constraint.

Their rows are derived data: written only with their resource, in its transaction, by the write buffer
(``store/write_buffer.py``, the resource row first; a reserved pid whose resource is not written
fails the transaction), cleared and rewritten with it, rebuilt by ``fhirportal reindex``, and read only
joined to ``resource``. Resources are never deleted from ``resource`` (a deletion is a version). The
constraints guarded nothing those rules do not, and cost most of the database's work of a bulk
write: about twenty per resource, each a lookup and (PostgreSQL) a row lock on the resource row.
``resource_version`` keeps its foreign key (one per version: history is not derived).

Locks (PostgreSQL): each DROP CONSTRAINT takes ACCESS EXCLUSIVE on its index table and SHARE ROW
EXCLUSIVE on ``resource`` for an instant (catalog only, no scan); writes queue behind it briefly.
SQLite: each table is rebuilt without the constraint (a copy of its rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_KINDS = ("token", "string", "date", "reference", "quantity", "number", "uri", "composite")
TABLES = (*(f"ix_{kind}" for kind in _KINDS), "contained_resource", *(f"cx_{kind}" for kind in _KINDS))
# SQLite's constraints are unnamed: batch mode names the reflected ones by this convention to drop them.
_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        if bind.dialect.name == "postgresql":
            for key in sa.inspect(bind).get_foreign_keys(table):
                op.drop_constraint(key["name"], table, type_="foreignkey")
            continue
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch:
            batch.drop_constraint(f"fk_{table}_pid_resource", type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        if bind.dialect.name == "postgresql":
            op.create_foreign_key(None, table, "resource", ["pid"], ["pid"])
            continue
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_pid_resource", "resource", ["pid"], ["pid"])
