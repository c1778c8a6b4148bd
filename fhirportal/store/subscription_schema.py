"""Subscriptions (rest-hook): who owns each Subscription and what it watches, and the notifications
waiting to be delivered, on the same metadata as the resources.

``subscription_rule``: one row per Subscription resource (kept with it by the write interactions,
``fhirportal.subscriptions.rules``): its parsed ``criteria`` (the type it watches and the query), whether
it is on (``status`` not ``off``), its ``end``, and the rights of the token that last wrote it (scope NULL:
unrestricted, an operator's load), which every match is evaluated with.

``subscription_delivery``: one row per notification owed (``fhirportal.subscriptions.queue``): the
Subscription, the version of the resource that matched, when it is next due and how many attempts
failed. A worker claims a row (``claimed_by``/``claimed_until``: a lease) before it POSTs, so that no two
workers deliver it at once; a delivered row is deleted; one that failed every attempt keeps its
``last_error`` with ``due_at`` NULL (not due any more).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from .schema import metadata

subscription_rule = Table(
    "subscription_rule",
    metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("resource_type", String(64), nullable=False),  # the type the criteria search
    Column("criteria", Text, nullable=False),  # the query after the '?', as written
    Column("enabled", Boolean, nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("scope", Text, nullable=True),
    Column("patient", String(64), nullable=True),
    Column("organization", String(64), nullable=True),
    Column("client_id", String(128), nullable=True),
    Column("account_id", Integer, nullable=True),
    Column("updated", DateTime(timezone=True), nullable=False),
    Index("ix_subscription_rule_type", "resource_type", "enabled"),
)

subscription_delivery = Table(
    "subscription_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("fhir_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True),  # NULL: given up
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_subscription_delivery_due", "due_at"),
    Index("ix_subscription_delivery_subscription", "subscription_id"),
)
