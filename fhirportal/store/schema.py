"""The relational schema: resources, their versions, and one index table per search-parameter kind.

It runs unchanged on SQLite and PostgreSQL: JSON bodies are stored as text, instants as
timezone-aware datetimes for display and as integer epoch microseconds where they are compared
(index ranges), so no dialect-specific date arithmetic is needed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# One row per logical resource: its current version (or its deletion).
resource = Table(
    "resource",
    metadata,
    Column("pid", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("fhir_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),
    Column("content_hash", String(64), nullable=True),
    # Bits of facts decided at write time (store/marks.py), tested by reads instead of index subqueries.
    Column("marks", SmallInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("resource_type", "fhir_id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "resource_type", "last_updated"),
)

# Every version ever written, append-only, written in the same transaction as ``resource``.
resource_version = Table(
    "resource_version",
    metadata,
    Column("pid", Integer, ForeignKey("resource.pid"), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("fhir_id", String(64), nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),
    Index("ix_version_updated", "last_updated"),
    Index("ix_version_type_updated", "resource_type", "last_updated"),
)


def _index_table(name: str, *columns: Column, indexes: tuple[tuple[str, ...], ...]) -> Table:
    """An index table: rows of (pid, param) plus kind-specific value columns."""
    table = Table(
        name,
        metadata,
        Column("pid", Integer, nullable=False),  # no foreign key: derived rows (migration 0011)
        Column("resource_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
        Index(f"ix_{name}_pid", "pid"),
    )
    for position, cols in enumerate(indexes):
        Index(f"ix_{name}_{position}", *(table.c[c] for c in cols))
    return table


# system|code of codes, Codings, CodeableConcepts, Identifiers, ContactPoints and booleans;
# ``text`` holds the folded display/text for :text searches.
ix_token = _index_table(
    "ix_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("text", String(255), nullable=True),
    indexes=(("resource_type", "param", "code", "system"),),
)

# Strings: ``norm`` is lower-cased and accent-stripped (starts-with / contains), ``exact`` as written.
# ``norm`` compares byte-wise on both databases ("C" collation on PostgreSQL, SQLite's default), so a
# starts-with search is an index range scan.
ix_string = _index_table(
    "ix_string",
    Column("norm", String(255).with_variant(String(255, collation="C"), "postgresql"), nullable=False),
    Column("exact", String(255), nullable=False),
    indexes=(("resource_type", "param", "norm"),),
)

# Dates, dateTimes, instants and Periods as [low, high] in UTC epoch microseconds (high inclusive).
ix_date = _index_table(
    "ix_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    indexes=(("resource_type", "param", "low"), ("resource_type", "param", "high")),
)

# References: local targets by type and id; anything else by its url. The first index ends with the
# referring type: a compartment's check (``Condition`` whose ``patient`` is Patient/p1) then reads that
# type's rows only, not every row of every type that names the patient by a parameter of that name
# (migration 0012).
ix_reference = _index_table(
    "ix_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(1024), nullable=True),
    indexes=(("target_type", "target_id", "param", "resource_type"), ("resource_type", "param", "target_id")),
)

ix_quantity = _index_table(
    "ix_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("unit", String(255), nullable=True),
    indexes=(("resource_type", "param", "code", "value"),),
)

ix_number = _index_table(
    "ix_number",
    Column("value", Float, nullable=False),
    indexes=(("resource_type", "param", "value"),),
)

ix_uri = _index_table(
    "ix_uri",
    Column("uri", String(1024), nullable=False),
    indexes=(("resource_type", "param", "uri"),),
)

# Composite parameters (``code-value-quantity=…|8480-6$gt100``): per item, a token (system, code) and
# the second component's value by its kind: token (v_system, v_code), quantity (v_number, v_system,
# v_code, v_text = unit), date (v_low, v_high), string (v_text, folded), reference (v_system = type,
# v_code = id, v_text = url). See ``indexing/composite.py``.
ix_composite = _index_table(
    "ix_composite",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("v_system", String(255), nullable=True),
    Column("v_code", String(255), nullable=True),
    Column("v_text", String(255).with_variant(String(255, collation="C"), "postgresql"), nullable=True),
    Column("v_number", Float, nullable=True),
    Column("v_low", BigInteger, nullable=True),
    Column("v_high", BigInteger, nullable=True),
    indexes=(("resource_type", "param", "code", "system"),),
)

INDEX_TABLES = {
    "token": ix_token,
    "string": ix_string,
    "date": ix_date,
    "reference": ix_reference,
    "quantity": ix_quantity,
    "number": ix_number,
    "uri": ix_uri,
    "composite": ix_composite,
}
