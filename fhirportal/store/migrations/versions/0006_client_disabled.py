"""An operator can disable a registered app: ``oauth_client.disabled_at`` (null: enabled).

A disabled app is not found by the authorization server (no authorization, no token, no refresh), and
disabling it revokes every token it holds (``fhirportal clients disable``).

Locks (PostgreSQL): adds a nullable column without a default to ``oauth_client`` (a small table: one row
per registered app): an ACCESS EXCLUSIVE lock for the instant of the catalog change, no rewrite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch_op:
        batch_op.drop_column("disabled_at")
