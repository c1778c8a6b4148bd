"""Index rows of contained resources (``_contained=true|both``): their own tables, apart from the
``ix_*`` tables, so that no query written for top-level resources (searches, compartments, visibility,
referential checks) can ever see them.

``contained_resource`` lists every contained resource of every current resource: the container's
``pid``, the contained resource's type and local id (``contained_id``, without ``#``) and its marks
(``store/marks.py``, decided from its own token rows). ``cx_token``, ``cx_string``, … mirror the
``ix_*`` tables column for column, plus ``contained_id``: the rows of one contained resource are those
of its container's pid and its id. They are written and removed with the container's own rows
(``write_buffer``), and built for resources stored before them by ``fhirportal reindex``.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, SmallInteger, String, Table

from .schema import INDEX_TABLES, metadata

CONTAINED_ID_LENGTH = 64

contained_resource = Table(
    "contained_resource",
    metadata,
    Column("pid", Integer, nullable=False),  # no foreign key: derived rows (migration 0011)
    Column("resource_type", String(64), nullable=False),
    Column("contained_id", String(CONTAINED_ID_LENGTH), nullable=False),
    Column("marks", SmallInteger, nullable=False, default=0, server_default="0"),
    Index("ix_contained_resource_pid", "pid"),
    Index("ix_contained_resource_type", "resource_type"),
)

_KEY_COLUMNS = ("pid", "resource_type", "param")


def _mirror(kind: str, source: Table) -> Table:
    """``cx_<kind>``: the columns of ``ix_<kind>`` and ``contained_id``, its pid and value indexes."""
    name = f"cx_{kind}"
    table = Table(
        name,
        metadata,
        Column("pid", Integer, nullable=False),
        Column("contained_id", String(CONTAINED_ID_LENGTH), nullable=False),
        Column("resource_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *(Column(column.name, column.type, nullable=column.nullable)
          for column in source.columns if column.name not in _KEY_COLUMNS),
        Index(f"ix_{name}_pid", "pid"),
    )
    values = sorted((index for index in source.indexes if not index.name.endswith("_pid")), key=lambda i: i.name)
    for position, index in enumerate(values):
        Index(f"ix_{name}_{position}", *(table.c[column.name] for column in index.columns))
    return table


CONTAINED_TABLES = {kind: _mirror(kind, table) for kind, table in INDEX_TABLES.items()}
