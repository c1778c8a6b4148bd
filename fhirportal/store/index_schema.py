"""Which search-parameter definitions the index rows were built with, and the reindex jobs that
bring them up to date (``store.index_state``, ``store.reindex``)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text

from .schema import metadata

# One row per (resource type, indexed search parameter), and one per type for its marks (code
# ``_marks``): the fingerprint of the definition the type's rows were built with, and whether every
# row of the type is built with it (``ready``) or some are not yet (``pending``: not advertised,
# searches using it refused, until ``fhirportal reindex`` finishes).
search_index = Table(
    "search_index",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("fingerprint", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # ready | pending
    Column("updated", DateTime(timezone=True), nullable=False),
)

# A reindex: which parameters of which types (``targets``: JSON {type: [code, ...] | null for all}),
# how far it got (``last_pid``: every resource up to it is done) and its counts; a restarted reindex
# continues from ``last_pid``. ``worker``/``heartbeat``: the process running it (a second one waits).
reindex_job = Table(
    "reindex_job",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),  # running | completed
    Column("targets", Text, nullable=False),
    Column("last_pid", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("done", Integer, nullable=False, default=0),
    Column("counts", Text, nullable=False, default="{}"),  # JSON {type: resources reindexed}
    Column("created", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True), nullable=True),
    Column("worker", String(64), nullable=True),
    Column("heartbeat", DateTime(timezone=True), nullable=True),
)
