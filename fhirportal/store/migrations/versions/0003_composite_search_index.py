"""Composite search parameters: the ``ix_composite`` index table.

Observation's ``code-value-quantity``, ``component-code-value-quantity``, ``combo-…`` and the other
two-component composites of FHIR R4 are indexed from now on (``store/indexing/composite.py``). Rows of
resources stored before are built by ``fhirportal reindex``: until it has run, those parameters are
pending (not advertised, searches refused), as for any new parameter.

Locks (PostgreSQL): creates a new, empty table and its indexes; nothing existing is touched (the
foreign key to ``resource`` takes a SHARE ROW EXCLUSIVE lock on ``resource`` for the instant of the
CREATE TABLE, which queues behind running writes but does not scan it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ix_composite",
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("v_system", sa.String(length=255), nullable=True),
        sa.Column("v_code", sa.String(length=255), nullable=True),
        sa.Column("v_text", sa.String(length=255).with_variant(sa.String(length=255, collation="C"), "postgresql"),
                  nullable=True),
        sa.Column("v_number", sa.Float(), nullable=True),
        sa.Column("v_low", sa.BigInteger(), nullable=True),
        sa.Column("v_high", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["pid"], ["resource.pid"]),
    )
    op.create_index("ix_ix_composite_0", "ix_composite", ["resource_type", "param", "code", "system"])
    op.create_index("ix_ix_composite_pid", "ix_composite", ["pid"])


def downgrade() -> None:
    op.drop_table("ix_composite")
