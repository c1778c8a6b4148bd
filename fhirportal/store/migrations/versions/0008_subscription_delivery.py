"""Subscriptions (rest-hook): ``subscription_rule`` (what each Subscription watches, with its owner's
rights) and ``subscription_delivery`` (the notifications waiting to be delivered, claimed by one worker
at a time, retried with backoff). See store/subscription_schema.py.

Locks (PostgreSQL): creates two new, empty tables and their indexes; no existing table is touched, so
nothing waits on it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_rule",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("patient", sa.String(length=64), nullable=True),
        sa.Column("organization", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id"),
    )
    op.create_index("ix_subscription_rule_type", "subscription_rule", ["resource_type", "enabled"])
    op.create_table(
        "subscription_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subscription_delivery_due", "subscription_delivery", ["due_at"])
    op.create_index("ix_subscription_delivery_subscription", "subscription_delivery", ["subscription_id"])


def downgrade() -> None:
    op.drop_index("ix_subscription_delivery_subscription", table_name="subscription_delivery")
    op.drop_index("ix_subscription_delivery_due", table_name="subscription_delivery")
    op.drop_table("subscription_delivery")
    op.drop_index("ix_subscription_rule_type", table_name="subscription_rule")
    op.drop_table("subscription_rule")
