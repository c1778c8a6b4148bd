"""Searching contained resources (``_contained=true|both``): ``contained_resource`` and the ``cx_*``
index tables (``store/contained_schema.py``).

Rows of resources stored before are built by ``fhirportal reindex``: until it has run, the ``_contained``
index of every type that has resources is pending (``store/index_state.CONTAINED``), and a search with
``_contained=true|both`` is refused (400) rather than answered from partial rows.

Locks (PostgreSQL): creates nine new, empty tables and their indexes; nothing existing is touched (each
foreign key to ``resource`` takes a SHARE ROW EXCLUSIVE lock on ``resource`` for the instant of its
CREATE TABLE, which queues behind running writes but does not scan it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _collated(length: int):
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


# kind -> (value columns, value indexes), as the ix_* table of the kind has them.
_KINDS = {
    "token": ([("system", sa.String(255), True), ("code", sa.String(255), True), ("text", sa.String(255), True)],
              [("resource_type", "param", "code", "system")]),
    "string": ([("norm", _collated(255), False), ("exact", sa.String(255), False)],
               [("resource_type", "param", "norm")]),
    "date": ([("low", sa.BigInteger(), False), ("high", sa.BigInteger(), False)],
             [("resource_type", "param", "low"), ("resource_type", "param", "high")]),
    "reference": ([("target_type", sa.String(64), True), ("target_id", sa.String(64), True),
                   ("url", sa.String(1024), True)],
                  [("target_type", "target_id", "param"), ("resource_type", "param", "target_id")]),
    "quantity": ([("value", sa.Float(), False), ("system", sa.String(255), True), ("code", sa.String(255), True),
                  ("unit", sa.String(255), True)],
                 [("resource_type", "param", "code", "value")]),
    "number": ([("value", sa.Float(), False)], [("resource_type", "param", "value")]),
    "uri": ([("uri", sa.String(1024), False)], [("resource_type", "param", "uri")]),
    "composite": ([("system", sa.String(255), True), ("code", sa.String(255), True), ("v_system", sa.String(255), True),
                   ("v_code", sa.String(255), True), ("v_text", _collated(255), True), ("v_number", sa.Float(), True),
                   ("v_low", sa.BigInteger(), True), ("v_high", sa.BigInteger(), True)],
                  [("resource_type", "param", "code", "system")]),
}


def upgrade() -> None:
    op.create_table(
        "contained_resource",
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("contained_id", sa.String(length=64), nullable=False),
        sa.Column("marks", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["pid"], ["resource.pid"]),
    )
    op.create_index("ix_contained_resource_pid", "contained_resource", ["pid"])
    op.create_index("ix_contained_resource_type", "contained_resource", ["resource_type"])
    for kind, (columns, indexes) in _KINDS.items():
        name = f"cx_{kind}"
        op.create_table(
            name,
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("contained_id", sa.String(length=64), nullable=False),
            sa.Column("resource_type", sa.String(length=64), nullable=False),
            sa.Column("param", sa.String(length=64), nullable=False),
            *(sa.Column(column, kind_type, nullable=nullable) for column, kind_type, nullable in columns),
            sa.ForeignKeyConstraint(["pid"], ["resource.pid"]),
        )
        for position, index_columns in enumerate(indexes):
            op.create_index(f"ix_{name}_{position}", name, list(index_columns))
        op.create_index(f"ix_{name}_pid", name, ["pid"])


def downgrade() -> None:
    for kind in reversed(list(_KINDS)):
        op.drop_table(f"cx_{kind}")
    op.drop_table("contained_resource")
