"""Search-index state and reindex jobs: which definitions the index rows were built with.

Adds ``search_index`` and ``reindex_job`` (``store/index_schema.py``) and records, as ready, the
fingerprints of the baseline release's search-parameter definitions and marks
(``0002_search_index.json``, computed with ``store.index_state.expected_fingerprints`` from that
release's definitions): the rows that release wrote are complete for them. At start-up the server
compares them with its own definitions, and what differs on a type with resources is pending until
``fhirportal reindex``.

Locks (PostgreSQL): creates two new tables; nothing existing is touched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BASELINE_FINGERPRINTS = Path(__file__).with_suffix(".json")


def upgrade() -> None:
    search_index = op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "code"),
    )
    op.create_table(
        "reindex_job",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("last_pid", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    now = datetime.now(UTC)
    fingerprints = json.loads(BASELINE_FINGERPRINTS.read_text())
    op.bulk_insert(search_index, [
        {"resource_type": resource_type, "code": code, "fingerprint": fingerprint, "state": "ready", "updated": now}
        for resource_type, codes in sorted(fingerprints.items()) for code, fingerprint in sorted(codes.items())])


def downgrade() -> None:
    op.drop_table("reindex_job")
    op.drop_table("search_index")
