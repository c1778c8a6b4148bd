"""Index rows of a resource's contained resources (``contained_schema``): built when the container is
written (``ResourceRepository``) or reindexed (``fhirportal reindex``), removed with its own rows.

A contained resource is indexed like a top-level one of its type (the same ``IndexExtractor``, the
same marks), its rows keyed by the container's pid and its local id. Items that are not resources of
a known type with a valid id are left out (validation refuses them on write anyway).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete

from . import write_buffer
from .contained_schema import CONTAINED_TABLES, contained_resource
from .indexing import IndexExtractor
from .marks import Marker

_LOCAL_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TABLES = write_buffer.CONTAINED
CATALOGUE = contained_resource.name


def contained_items(body: dict) -> list[dict]:
    """The contained resources of ``body`` that can be indexed: a type and a valid local id."""
    items = body.get("contained")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("resourceType"), str)
            and isinstance(item.get("id"), str) and _LOCAL_ID.fullmatch(item["id"])]


def extract(extractor: IndexExtractor, marker: Marker, body: dict) -> dict[str, list[dict]]:
    """Rows by table name (``contained_resource``, ``cx_token``, …) of ``body``'s contained resources,
    without ``pid``; empty when it contains none."""
    rows: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for item in contained_items(body):
        if item["id"] in seen or item["resourceType"] not in extractor.registry.resource_types:
            continue  # a duplicate local id is invalid; its first holder keeps it
        seen.add(item["id"])
        resource_type, contained_id = item["resourceType"], item["id"]
        by_kind = extractor.extract(item)
        rows.setdefault(CATALOGUE, []).append({"resource_type": resource_type, "contained_id": contained_id,
                                               "marks": marker.marks_of(resource_type, by_kind)})
        for kind, kind_rows in by_kind.items():
            rows.setdefault(CONTAINED_TABLES[kind].name, []).extend(
                {**row, "resource_type": resource_type, "contained_id": contained_id} for row in kind_rows)
    return rows


def with_pid(rows: dict[str, list[dict]], pid: int) -> dict[str, list[dict]]:
    return {name: [{**row, "pid": pid} for row in table_rows] for name, table_rows in rows.items()}


def delete_rows(conn: Connection, pids: Sequence[int], chunk: int = 500) -> None:
    """Remove every contained row of these containers."""
    for table in TABLES.values():
        for start in range(0, len(pids), chunk):
            conn.execute(delete(table).where(table.c.pid.in_(list(pids[start:start + chunk]))))


def rebuild(conn: Connection, extractor: IndexExtractor, marker: Marker, rows: Iterable) -> None:
    """Reindex: the contained rows of these stored resources (``pid``, parsed ``body``) built anew."""
    rows = list(rows)
    delete_rows(conn, [pid for pid, _ in rows])
    new: dict[str, list[dict]] = {}
    for pid, body in rows:
        for name, table_rows in with_pid(extract(extractor, marker, body), pid).items():
            new.setdefault(name, []).extend(table_rows)
    for name, table_rows in new.items():
        if table_rows:
            write_buffer.append_rows(conn, TABLES[name], table_rows)
