"""The access log keeps each access's request id: ``access_log.request_id`` (the ``X-Request-ID`` the
server answered; null for the rows written before).

Locks (PostgreSQL): adds a nullable column without a default to the partitioned ``access_log`` (and so to
each of its partitions): an ACCESS EXCLUSIVE lock on the table and its partitions for the instant of the
catalog change, no rewrite (journal writes wait for that instant only). SQLite: one ``ALTER TABLE … ADD
COLUMN``, no rebuild.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_log") as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log") as batch_op:
        batch_op.drop_column("request_id")
