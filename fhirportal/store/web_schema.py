"""The patient portal web app's own browser sessions (``fhirportal.web``), on the same metadata.

The cookie holds only a random id; the row is found by its SHA-256 digest. What the session knows
(the OAuth state and PKCE verifier while signing in, then the access, refresh and id tokens) is
``sealed``: encrypted with a key derived from the cookie's id itself, so neither a copy of the
database nor the server's secret key opens it without the browser's cookie.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from .schema import metadata

web_session = Table(
    "web_session",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("refreshing_until", DateTime(timezone=True), nullable=True),  # one request refreshes the tokens
    Index("ix_web_session_expires", "expires_at"),
)
