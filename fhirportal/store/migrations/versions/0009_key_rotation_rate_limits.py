"""Signing-key and client-secret rotation, and rate limits kept in the database.

``signing_key.activates_at`` (null: since ``created``): a rotated-in key is published first and signs
from then on; ``signing_key.retires_at`` (null: published for good): when a superseded key leaves the
JWKS, once every id_token it signed has expired. ``oauth_client.previous_secret_hash`` (with
``previous_secret_expires_at``): after ``fhirportal clients rotate-secret`` the old secret keeps working
until then. ``rate_limit`` counts requests per bucket (an endpoint
and a client or a source address) and fixed window, shared by every worker and node.

Locks (PostgreSQL): on ``signing_key`` (a handful of rows) and ``oauth_client`` (one row per app) adds
nullable columns without defaults (an ACCESS EXCLUSIVE lock for the instant of the catalog change, no
rewrite); creates one new, empty table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_key") as batch_op:
        batch_op.add_column(sa.Column("activates_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rate_limit",
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start"),
    )
    op.create_index("ix_rate_limit_window", "rate_limit", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_window", table_name="rate_limit")
    op.drop_table("rate_limit")
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_hash")
    with op.batch_alter_table("signing_key") as batch_op:
        batch_op.drop_column("retires_at")
        batch_op.drop_column("activates_at")
