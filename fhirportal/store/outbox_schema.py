"""The notification outbox, on the same metadata as the resources.

One row per email or SMS the portal tried to send (``fhirportal.portal.notify``). Without an SMTP
host or SMS gateway configured (development) the row *is* the message: ``delivered`` stays false
and ``error`` null, and a developer reads the message here. With one configured, the row records
the attempt: ``delivered`` true, or false with the ``error``. The body is kept in both cases, since
it may be needed to look at a failed message again; it may hold a registration link, so the table
is not for display to anyone but practice staff.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from .schema import metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(8), nullable=False),  # email | sms
    Column("recipient", String(320), nullable=False),
    Column("subject", Text, nullable=True),  # email only
    Column("body", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("delivered", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),  # why the attempt failed; null when delivered or only queued
    Index("ix_outbox_recipient", "recipient", "id"),
)
