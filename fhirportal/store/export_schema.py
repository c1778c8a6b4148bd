"""The Bulk Data ``$export`` jobs: one row per kick-off, the state the worker and the status endpoint share."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from .schema import metadata

# status: accepted -> in-progress -> completed | failed; cancelled (DELETE on the status url) at any time.
# A running job whose heartbeat is older than a minute lost its worker (server restarted): the next status
# poll or kick-off claims it (a new ``worker``) and runs it again from scratch; the row holds all it needs.
export_job = Table(
    "export_job",
    metadata,
    Column("id", String(64), primary_key=True),  # random, unguessable: it is in the status and file urls
    Column("status", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # system | patient | group
    Column("request", Text, nullable=False),  # the kick-off url (absolute)
    Column("types", Text, nullable=False),  # JSON list of the exported types, in export order
    Column("since", DateTime(timezone=True), nullable=True),
    Column("group_id", String(64), nullable=True),
    Column("transaction_time", DateTime(timezone=True), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("progress", Text, nullable=True),  # X-Progress while running
    Column("output", Text, nullable=True),  # JSON list of {type, count} once completed
    Column("error", Text, nullable=True),  # JSON OperationOutcome once failed
    Column("client_id", String(128), nullable=False),  # only this client polls, cancels and downloads
    Column("members", Text, nullable=True),  # Group export: JSON list of the member patients' ids at kick-off
    Column("type_filter", Text, nullable=True),  # JSON {type: [_typeFilter query, …]}
    # The token's rights, to rebuild its Visibility on a restart: scope NULL = unrestricted.
    Column("scope", Text, nullable=True),
    Column("patient", String(64), nullable=True),
    Column("organization", String(64), nullable=True),
    # Who asked (with client_id), for the access-log entries of the patients the export covers.
    Column("account_id", Integer, nullable=True),
    Column("fhir_user", String(200), nullable=True),
    Column("worker", String(64), nullable=True),  # the run that owns the job; only it may update the job
    Column("heartbeat", DateTime(timezone=True), nullable=True),  # the worker's last sign of life (every page)
    Index("ix_export_job_status", "status"),
)
