"""The patient portal web app: its browser sessions, password reset links, the browser of a login session.

``web_session`` holds the portal web app's sessions (``fhirportal.web``: the cookie's id as a digest,
its tokens sealed); ``password_reset`` the "forgot password" requests (counted for the rate limit) and
their single-use links; ``login_session.user_agent`` names the browser of a sign-in on the account
page, and ``ix_login_session_account`` finds an account's sessions (to list them, or end them all).

Locks (PostgreSQL): creates two new, empty tables and their indexes. On ``login_session`` (a small
table: sessions of the last 8 hours) adds a nullable column without a default (an ACCESS EXCLUSIVE lock
for the instant of the catalog change, no rewrite) and builds an index with a SHARE lock, which holds
back sign-ins for the few milliseconds it takes to index that table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("link_hash", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_hash"),
    )
    op.create_index("ix_password_reset_account", "password_reset", ["account_id"])
    op.create_index("ix_password_reset_address", "password_reset", ["address_hash", "created"])
    op.create_index("ix_password_reset_client", "password_reset", ["client_hash", "created"])
    op.create_table(
        "web_session",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshing_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_hash"),
    )
    op.create_index("ix_web_session_expires", "web_session", ["expires_at"])
    with op.batch_alter_table("login_session") as batch_op:
        batch_op.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
    op.create_index("ix_login_session_account", "login_session", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_login_session_account", table_name="login_session")
    with op.batch_alter_table("login_session") as batch_op:
        batch_op.drop_column("user_agent")
    op.drop_table("web_session")
    op.drop_table("password_reset")
