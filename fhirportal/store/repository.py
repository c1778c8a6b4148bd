"""The resource repository: create, read, vread, update, patch, delete, history and search.

Every method takes the ``Connection`` of an open transaction (``Database.write()`` or ``read()``),
so one HTTP interaction is one transaction and a transaction Bundle can compose many of them.
Writes keep every version, assign ``meta.versionId``/``meta.lastUpdated`` and re-index the current
version; concurrent updates of one resource are serialised by optimistic locking on the version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, exists, false, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fhirportal.errors import Conflict, Gone, NotFound, PreconditionFailed

from . import clock, contained, write_buffer
from .database import Database
from .indexing import IndexExtractor
from .marks import Marker
from .records import HistoryPage, SearchPage, StoredResource
from .schema import INDEX_TABLES, resource, resource_version
from .search import Criterion, build_where
from .search.aliases import alias
from .search.includes import IncludeSpec, group_by_type, included_rows
from .search.sorting import SortKey, after, decode_values, encode_values, order_by, sort_columns
from .search.visibility import Visibility, rule_clause, shared_rule, visible_clause

_MAX_RETRIES = 5
_MAX_CACHED_STATEMENTS = 1024


def _dumps(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _content_hash(body: dict) -> str:
    """Hash of the resource without the server-owned meta fields (no-op update detection)."""
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    comparable = {k: v for k, v in body.items() if k not in ("meta", "id")}
    if meta:
        comparable["meta"] = meta
    return hashlib.sha256(json.dumps(comparable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())


def _record(row, method: str = "PUT") -> StoredResource:
    """A current-version row (``resource``) as a StoredResource."""
    return StoredResource(
        resource_type=row.resource_type,
        fhir_id=row.fhir_id,
        version_id=row.version_id,
        last_updated=clock.ensure_utc(row.last_updated),
        deleted=bool(row.deleted),
        content=row.content,
        method=method,
    )


def _version_record(row) -> StoredResource:
    """A ``resource_version`` row, which also says how the version was written."""
    return _record(row, row.method)


# Built once; executed with bind parameters (no statement construction per read).
_CURRENT_ROW = select(resource).where(resource.c.resource_type == bindparam("resource_type"),
                                      resource.c.fhir_id == bindparam("fhir_id"))
# Which of a type's ids have a row (any, or not deleted): built once, the ids an expanding parameter.
_EXISTING = select(resource.c.resource_type, resource.c.fhir_id).where(
    resource.c.resource_type == bindparam("resource_type"), resource.c.fhir_id.in_(bindparam("ids", expanding=True)))
_EXISTING_LIVE = _EXISTING.where(resource.c.deleted.is_(False))


def encode_cursor(*values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed paging cursor") from exc
    if not isinstance(values, list) or any(isinstance(v, int) and abs(v) >= 2**62 for v in values):
        raise ValueError("malformed paging cursor")
    return values


class ResourceRepository:
    def __init__(self, database: Database, extractor: IndexExtractor, marker: Marker | None = None):
        self.database = database
        self.extractor = extractor
        self.marker = marker or Marker()
        self._visible_row_statements: dict = {}  # (type, shared rule) -> statement (``_row_with_visibility``)
        dialect_insert = postgresql_insert if database.dialect == "postgresql" else sqlite_insert
        # Built once: INSERT ... ON CONFLICT (type, id) DO NOTHING RETURNING pid
        self._insert_if_absent = (dialect_insert(resource)
                                  .on_conflict_do_nothing(index_elements=["resource_type", "fhir_id"])
                                  .returning(resource.c.pid))

    # ------------------------------------------------------------------ reads
    def _current_row(self, conn: Connection, resource_type: str, fhir_id: str):
        write_buffer.flush_resources(conn)
        return conn.execute(_CURRENT_ROW, {"resource_type": resource_type, "fhir_id": fhir_id}).first()

    def _row_with_visibility(self, conn: Connection, resource_type: str, fhir_id: str, visibility: Visibility):
        """The current row with a ``visible`` column saying whether ``visibility`` shows it: one query,
        whose statement is built once per kind of rule and serves every patient (``shared_rule``)."""
        write_buffer.flush(conn)
        rule, params = shared_rule(visibility, resource_type)
        key = (resource_type, rule)
        statement = self._visible_row_statements.get(key)
        if statement is None:
            visible = false() if rule is None else rule_clause(rule, resource_type, resource, self.extractor.base_url)
            statement = select(resource, visible.label("visible")).where(
                resource.c.resource_type == bindparam("resource_type"), resource.c.fhir_id == bindparam("fhir_id"))
            if len(self._visible_row_statements) >= _MAX_CACHED_STATEMENTS:
                self._visible_row_statements.clear()
            self._visible_row_statements[key] = statement
        return conn.execute(statement, {"resource_type": resource_type, "fhir_id": fhir_id, **params}).first()

    def _visible_current_row(self, conn: Connection, resource_type: str, fhir_id: str,
                             visibility: Visibility | None):
        """The current row, or None if there is none or ``visibility`` hides it."""
        if visibility is None or visibility.sees_every(resource_type):
            return self._current_row(conn, resource_type, fhir_id)
        row = self._row_with_visibility(conn, resource_type, fhir_id, visibility)
        return row if row is not None and row.visible else None

    def visible(self, conn: Connection, resource_type: str, fhir_id: str, visibility: Visibility | None) -> bool | None:
        """Whether ``visibility`` shows the current resource (deleted or not); None if it has no row."""
        if visibility is None or visibility.sees_every(resource_type):
            return None if self._current_row(conn, resource_type, fhir_id) is None else True
        row = self._row_with_visibility(conn, resource_type, fhir_id, visibility)
        return None if row is None else bool(row.visible)

    def read(self, conn: Connection, resource_type: str, fhir_id: str, *,
             visibility: Visibility | None = None) -> StoredResource:
        """The current version; NotFound also when ``visibility`` hides it (nothing tells the two apart)."""
        row = self._visible_current_row(conn, resource_type, fhir_id, visibility)
        if row is None:
            raise NotFound(f"{resource_type}/{fhir_id} is not known", expression=resource_type)
        if row.deleted:
            raise Gone(f"{resource_type}/{fhir_id} was deleted", expression=resource_type,
                       headers={"ETag": f'W/"{row.version_id}"'})
        return _record(row)

    def vread(self, conn: Connection, resource_type: str, fhir_id: str, version_id: int, *,
              visibility: Visibility | None = None) -> StoredResource:
        write_buffer.flush(conn)
        if visibility is not None and self._visible_current_row(conn, resource_type, fhir_id, visibility) is None:
            raise NotFound(f"{resource_type}/{fhir_id} is not known")
        row = conn.execute(
            select(resource_version).where(
                resource_version.c.resource_type == resource_type,
                resource_version.c.fhir_id == fhir_id,
                resource_version.c.version_id == version_id,
            )
        ).first()
        if row is None:
            if self._current_row(conn, resource_type, fhir_id) is None:
                raise NotFound(f"{resource_type}/{fhir_id} is not known")
            raise NotFound(f"{resource_type}/{fhir_id} has no version {version_id}")
        if row.deleted:
            raise Gone(f"{resource_type}/{fhir_id} version {version_id} is a deletion")
        return _version_record(row)

    def exists(self, conn: Connection, resource_type: str, fhir_id: str) -> bool:
        write_buffer.flush_resources(conn)
        return conn.execute(
            select(resource.c.pid).where(
                resource.c.resource_type == resource_type,
                resource.c.fhir_id == fhir_id,
                resource.c.deleted.is_(False),
            )
        ).first() is not None

    def existing(self, conn: Connection, pairs, *, include_deleted: bool = False) -> set[tuple[str, str]]:
        """Which of the (type, id) pairs exist (and are not deleted, unless ``include_deleted``): a query
        per type."""
        write_buffer.flush_resources(conn)
        query = _EXISTING if include_deleted else _EXISTING_LIVE
        return {(row.resource_type, row.fhir_id) for resource_type, ids in group_by_type(pairs).items()
                for row in conn.execute(query, {"resource_type": resource_type, "ids": list(ids)})}

    # ------------------------------------------------------------------ writes
    def _stamp(self, body: dict, fhir_id: str, version_id: int, moment: datetime) -> dict:
        stamped = dict(body)
        stamped["id"] = fhir_id
        meta = dict(stamped.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = clock.as_instant(moment)
        stamped["meta"] = meta
        # resourceType first, then id and meta, as the spec's examples read.
        ordered = {"resourceType": stamped.pop("resourceType"), "id": stamped.pop("id"), "meta": stamped.pop("meta")}
        ordered.update(stamped)
        return ordered

    def _index(self, body: dict) -> tuple[dict[str, list[dict]], int]:
        """The stamped resource's index rows by kind (its contained resources' under ``contained``, by
        table), and its marks."""
        rows = self.extractor.extract(body)
        marks = self.marker.marks_of(body["resourceType"], rows)
        if "contained" in body:
            rows = {**rows, "contained": contained.extract(self.extractor, self.marker, body)}
        return rows, marks

    def _write_indexes(self, conn: Connection, pid: int, resource_type: str, rows: dict[str, list[dict]] | None, *,
                       replace: bool, replaced: str | None = None) -> None:
        """Buffer the resource's index rows; ``replaced``: the content of the version they replace (None:
        unknown), whose contained rows go only if it had contained resources."""
        inner = None
        if rows is not None:
            rows = dict(rows)
            inner = contained.with_pid(rows.pop("contained", {}), pid)
            rows = {kind: [{**row, "pid": pid, "resource_type": resource_type} for row in kind_rows]
                    for kind, kind_rows in rows.items()}
        had_contained = replaced is None or '"contained"' in replaced
        write_buffer.buffer_for(conn).replace(pid, rows, existing=replace, contained=inner, had_contained=had_contained)

    def _insert_version(self, conn, pid, record: StoredResource, method: str) -> None:
        write_buffer.buffer_for(conn).add_version(dict(
            pid=pid, version_id=record.version_id, resource_type=record.resource_type,
            fhir_id=record.fhir_id, last_updated=record.last_updated, method=method,
            deleted=record.deleted, content=record.content,
        ))

    def _insert_new(self, conn: Connection, body: dict, fhir_id: str, method: str, *,
                    buffered: bool = False) -> StoredResource | None:
        """Insert version 1; None if the id is taken (also by a concurrent transaction), in one statement.

        ``buffered`` (ids believed new, in bulk writes): the row joins the connection's write buffer
        under a reserved pid and is inserted with the others at the next flush; an id taken
        meanwhile then fails the transaction with 409.
        """
        moment = clock.now()
        stamped = self._stamp(body, fhir_id, 1, moment)
        content = _dumps(stamped)
        index_rows, marks = self._index(stamped)
        values = dict(resource_type=body["resourceType"], fhir_id=fhir_id, version_id=1, last_updated=moment,
                      deleted=False, content=content, content_hash=_content_hash(stamped), marks=marks)
        buffer = write_buffer.buffer_for(conn)
        if buffered:
            pid = buffer.reserve_pid(conn)
            buffer.add_resource({**values, "pid": pid})
        else:
            write_buffer.flush(conn)  # pending rows first, so pids and unique ids stay consistent
            pid = conn.execute(self._insert_if_absent, values).scalar_one_or_none()
            if pid is None:
                return None
        record = StoredResource(body["resourceType"], fhir_id, 1, moment, False, content, method)
        self._insert_version(conn, pid, record, method)
        self._write_indexes(conn, pid, body["resourceType"], index_rows, replace=False)
        return record

    def create(self, conn: Connection, body: dict, *, fhir_id: str | None = None) -> StoredResource:
        """Create with a server-assigned id (or ``fhir_id`` for update-as-create)."""
        fhir_id = fhir_id or new_id()
        record = self._insert_new(conn, body, fhir_id, "POST")
        if record is None:
            raise Conflict(f"{body['resourceType']}/{fhir_id} already exists")
        return record

    def update(self, conn: Connection, resource_type: str, fhir_id: str, body: dict, *,
               expected_version: int | None = None, allow_create: bool = True,
               method: str = "PUT", probably_new: bool = False) -> tuple[StoredResource, bool]:
        """Write a new current version. Returns (record, created).

        ``probably_new``: the caller looked (``existing(..., include_deleted=True)``) and the id has no
        row at all; the insert joins the write buffer (see ``_insert_new``).
        """
        if probably_new and allow_create and expected_version is None:
            return self._insert_new(conn, body, fhir_id, method, buffered=True), True
        for _attempt in range(_MAX_RETRIES):
            row = self._current_row(conn, resource_type, fhir_id)
            if row is None:
                if expected_version is not None:
                    raise PreconditionFailed(
                        f"If-Match W/\"{expected_version}\" given, but {resource_type}/{fhir_id} does not exist")
                if not allow_create:
                    raise NotFound(f"{resource_type}/{fhir_id} is not known")
                record = self._insert_new(conn, body, fhir_id, method)
                if record is not None:
                    return record, True
                continue  # created concurrently: update it instead
            if expected_version is not None and row.version_id != expected_version:
                raise PreconditionFailed(
                    f"Version conflict: If-Match W/\"{expected_version}\" but {resource_type}/{fhir_id} "
                    f"is at version {row.version_id}")
            new_hash = _content_hash(body)
            if not row.deleted and row.content_hash == new_hash:
                return _record(row), False  # no-op update: nothing changed, no new version
            version = row.version_id + 1
            moment = max(clock.now(), clock.ensure_utc(row.last_updated))
            stamped = self._stamp(body, fhir_id, version, moment)
            content = _dumps(stamped)
            index_rows, marks = self._index(stamped)
            changed = conn.execute(
                update(resource)
                .where(resource.c.pid == row.pid, resource.c.version_id == row.version_id)
                .values(version_id=version, last_updated=moment, deleted=False, content=content,
                        content_hash=new_hash, marks=marks)
            ).rowcount
            if changed != 1:
                if expected_version is not None:
                    raise PreconditionFailed(f"{resource_type}/{fhir_id} was changed concurrently")
                continue  # lost the race: re-read and write on top of the winner
            record = StoredResource(resource_type, fhir_id, version, moment, False, content, method)
            self._insert_version(conn, row.pid, record, method)
            self._write_indexes(conn, row.pid, resource_type, index_rows, replace=True, replaced=row.content or "")
            return record, row.deleted
        raise Conflict(f"{resource_type}/{fhir_id} is being changed by others; try again")

    def patch(self, conn: Connection, resource_type: str, fhir_id: str, apply: Callable[[dict], dict], *,
              expected_version: int | None = None) -> StoredResource:
        """Read the current version, apply ``apply`` to its body, write the result; one transaction."""
        current = self.read(conn, resource_type, fhir_id)
        if expected_version is not None and current.version_id != expected_version:
            raise PreconditionFailed(
                f"Version conflict: If-Match W/\"{expected_version}\" but {resource_type}/{fhir_id} "
                f"is at version {current.version_id}")
        patched = apply(current.body)
        record, _ = self.update(conn, resource_type, fhir_id, patched, expected_version=current.version_id,
                                allow_create=False, method="PATCH")
        return record

    def referrers(self, conn: Connection, resource_type: str, fhir_id: str, limit: int = 5) -> list[str]:
        """Current resources whose indexed references point at this one (``Type/id``)."""
        write_buffer.flush(conn)
        ref = INDEX_TABLES["reference"]
        rows = conn.execute(
            select(resource.c.resource_type, resource.c.fhir_id).distinct()
            .join(ref, ref.c.pid == resource.c.pid)
            .where(ref.c.target_type == resource_type, ref.c.target_id == fhir_id,
                   ~and_(resource.c.resource_type == resource_type, resource.c.fhir_id == fhir_id))
            .limit(limit)
        ).all()
        return [f"{r.resource_type}/{r.fhir_id}" for r in rows]

    def delete(self, conn: Connection, resource_type: str, fhir_id: str, *,
               expected_version: int | None = None, check_referrers: bool = True) -> StoredResource | None:
        """Soft delete: a deletion version is recorded, the index rows go. None if nothing to delete.

        A resource that others still reference is not deleted (409), so references stay resolvable.
        """
        row = self._current_row(conn, resource_type, fhir_id)
        if row is None or row.deleted:
            if expected_version is not None:
                raise PreconditionFailed(f"{resource_type}/{fhir_id} does not exist")
            return None
        if check_referrers:
            referrers = self.referrers(conn, resource_type, fhir_id)
            if referrers:
                raise Conflict(f"{resource_type}/{fhir_id} is referenced by {', '.join(referrers)}; "
                               "delete or update those first")
        if expected_version is not None and row.version_id != expected_version:
            raise PreconditionFailed(
                f"Version conflict: If-Match W/\"{expected_version}\" but {resource_type}/{fhir_id} "
                f"is at version {row.version_id}")
        version = row.version_id + 1
        moment = max(clock.now(), clock.ensure_utc(row.last_updated))
        changed = conn.execute(
            update(resource)
            .where(resource.c.pid == row.pid, resource.c.version_id == row.version_id)
            .values(version_id=version, last_updated=moment, deleted=True, content=None, content_hash=None)
        ).rowcount
        if changed != 1:
            raise Conflict(f"{resource_type}/{fhir_id} was changed concurrently; try again")
        record = StoredResource(resource_type, fhir_id, version, moment, True, None, "DELETE")
        self._insert_version(conn, row.pid, record, "DELETE")
        self._write_indexes(conn, row.pid, resource_type, None, replace=True, replaced=row.content or "")
        return record

    # ------------------------------------------------------------------ history
    def history(self, conn: Connection, *, resource_type: str | None = None, fhir_id: str | None = None,
                since: datetime | None = None, before: datetime | None = None, count: int = 50,
                cursor: str | None = None, visibility: Visibility | None = None) -> HistoryPage:
        """Versions newest first, paged by keyset on (last_updated, pid, version_id); with a
        ``visibility``, only versions of resources whose current version it shows."""
        write_buffer.flush(conn)
        v = resource_version
        query = select(v)
        conditions = []
        if resource_type:
            conditions.append(v.c.resource_type == resource_type)
        if fhir_id:
            conditions.append(v.c.fhir_id == fhir_id)
            if self._visible_current_row(conn, resource_type, fhir_id, visibility) is None:
                raise NotFound(f"{resource_type}/{fhir_id} is not known")
        elif visibility is not None:
            current = alias(resource)
            types = [resource_type] if resource_type else None
            conditions.append(exists(select(1).where(
                current.c.pid == v.c.pid, visible_clause(visibility, current, types, self.extractor.base_url))))
        if since is not None:
            conditions.append(v.c.last_updated >= since)
        if before is not None:
            conditions.append(v.c.last_updated < before)
        total = None
        if fhir_id:
            total = conn.execute(select(func.count()).select_from(v).where(*conditions)).scalar_one()
        if cursor:
            try:
                stamp, pid, version = decode_cursor(cursor)
                stamp = clock.ensure_utc(datetime.fromisoformat(stamp))
                pid, version = int(pid), int(version)
            except (ValueError, TypeError) as exc:
                raise ValueError("malformed paging cursor") from exc
            conditions.append(or_(
                v.c.last_updated < stamp,
                and_(v.c.last_updated == stamp, v.c.pid < pid),
                and_(v.c.last_updated == stamp, v.c.pid == pid, v.c.version_id < version),
            ))
        query = query.where(*conditions).order_by(
            v.c.last_updated.desc(), v.c.pid.desc(), v.c.version_id.desc()).limit(count + 1)
        rows = conn.execute(query).all()
        next_cursor = None
        if len(rows) > count:
            last = rows[count - 1]
            next_cursor = encode_cursor(clock.ensure_utc(last.last_updated).isoformat(), last.pid, last.version_id)
            rows = rows[:count]
        return HistoryPage([_version_record(r) for r in rows], next_cursor, total)

    # ------------------------------------------------------------------ search
    def matching(self, resource_type: str, criteria: Sequence[Criterion], *, visibility: Visibility | None = None):
        """A subquery of the pids of the ``resource_type`` resources meeting ``criteria`` (for a caller
        that pages them in another table's order: the access log's stored AuditEvents)."""
        return select(resource.c.pid).where(build_where(resource_type, criteria, self.extractor.base_url, visibility))

    def search_ids(self, conn: Connection, resource_type: str, criteria: Sequence[Criterion],
                   limit: int | None = None, *, visibility: Visibility | None = None) -> list[str]:
        return self.ids(conn, self.ids_query(resource_type, criteria, limit, visibility=visibility))

    def ids_query(self, resource_type: str, criteria: Sequence[Criterion], limit: int | None = None, *,
                  visibility: Visibility | None = None):
        """The statement of ``search_ids``, built without a connection (so before a write's turn)."""
        query = select(resource.c.fhir_id).where(
            build_where(resource_type, criteria, self.extractor.base_url, visibility))
        return query if limit is None else query.limit(limit)

    def ids(self, conn: Connection, query) -> list[str]:
        """The ids an ``ids_query`` statement finds, this transaction's writes included."""
        write_buffer.flush(conn)
        return list(conn.execute(query).scalars())

    def search(self, conn: Connection, resource_types: str | Sequence[str], criteria: Sequence[Criterion], *,
               sort: Sequence[SortKey] = (), count: int = 50, cursor: str | None = None,
               include: Sequence[IncludeSpec] = (), visibility: Visibility | None = None,
               include_visibility: Visibility | None = None, include_iterations: int = 2) -> SearchPage:
        """One page of matches in ``sort`` order (then insertion order), keyset-paged, plus includes.

        ``visibility`` restricts the matches, ``include_visibility`` the included resources (a token
        may search one type and only read another). ``:iterate`` includes go at most
        ``include_iterations`` rounds beyond the first."""
        write_buffer.flush(conn)
        columns = sort_columns(list(sort))
        labels = [column.label(f"k{n}") for n, (column, _) in enumerate(columns)]
        values = decode_values(decode_cursor(cursor)) if cursor else None
        if values is not None and len(values) != len(columns):
            raise ValueError("the paging cursor belongs to another search")
        page = None
        if not sort and (values is None or type(values[0]) is int):  # pid order: the page can be pushed down
            page = (values[0] if values else None, count + 1)
        where = build_where(resource_types, criteria, self.extractor.base_url, visibility, page=page)
        if values is not None:
            where = and_(where, after(columns, values))
        # pid order: find the page's pids first, then load only those rows (not with chains or _has:
        # the extra nesting takes their 200-value ORs past SQLite's expression depth limit)
        if page is not None and not any(c.chain is not None or c.has is not None for c in criteria):
            pids = select(resource.c.pid).where(where).order_by(resource.c.pid).limit(count + 1)
            query = select(resource, *labels).where(resource.c.pid.in_(pids))
        else:
            query = select(resource, *labels).where(where)
        rows = conn.execute(query.order_by(*order_by(columns)).limit(count + 1)).all()
        next_cursor = None
        if len(rows) > count:
            last = rows[count - 1]
            next_cursor = encode_cursor(*encode_values([getattr(last, f"k{n}") for n in range(len(columns))]))
            rows = rows[:count]
        included = included_rows(conn, rows, include, max_rounds=1 + max(include_iterations, 0),
                                 visibility=include_visibility,
                                 base_url=self.extractor.base_url) if include and rows else []
        return SearchPage([_record(r) for r in rows], next_cursor, [_record(r) for r in included])

    def compartment(self, conn: Connection, compartment_type: str, compartment_id: str,
                    params_by_type: dict[str, Sequence[str]], *, since: datetime | None = None, count: int = 50,
                    cursor: str | None = None, include_referenced: bool = True,
                    visibility: Visibility | None = None) -> SearchPage:
        """The compartment's owner and every resource that refers to it through the compartment's
        parameters (``params_by_type``), in insertion order, keyset-paged; plus what a page refers to."""
        write_buffer.flush(conn)
        ref = INDEX_TABLES["reference"]
        members = [and_(resource.c.resource_type == compartment_type, resource.c.fhir_id == compartment_id)]
        for resource_type, params in params_by_type.items():
            members.append(and_(resource.c.resource_type == resource_type, exists(select(1).where(
                ref.c.pid == resource.c.pid, ref.c.param.in_(list(params)),
                ref.c.target_type == compartment_type, ref.c.target_id == compartment_id))))
        query = select(resource).where(resource.c.deleted.is_(False), or_(*members),
                                       visible_clause(visibility, resource, None, self.extractor.base_url))
        if since is not None:
            query = query.where(resource.c.last_updated >= since)
        if cursor:
            (after_pid,) = decode_cursor(cursor)
            query = query.where(resource.c.pid > int(after_pid))
        rows = conn.execute(query.order_by(resource.c.pid).limit(count + 1)).all()
        next_cursor = encode_cursor(rows[count - 1].pid) if len(rows) > count else None
        rows = rows[:count]
        included = included_rows(conn, rows, [IncludeSpec("*", None)], max_rounds=1, visibility=visibility,
                                 base_url=self.extractor.base_url) if include_referenced and rows else []
        return SearchPage([_record(r) for r in rows], next_cursor, [_record(r) for r in included])

    def count(self, conn: Connection, resource_types: str | Sequence[str], criteria: Sequence[Criterion], *,
              visibility: Visibility | None = None) -> int:
        write_buffer.flush(conn)
        where = build_where(resource_types, criteria, self.extractor.base_url, visibility)
        return conn.execute(select(func.count()).select_from(resource).where(where)).scalar_one()

    def estimate(self, conn: Connection, resource_types: str | Sequence[str], criteria: Sequence[Criterion], *,
                 visibility: Visibility | None = None) -> int:
        """About how many resources match (``_total=estimate``): PostgreSQL's planner estimate, which
        counts nothing, so it costs the same for ten matches or ten million; SQLite has no estimate
        to give and counts."""
        if self.database.dialect != "postgresql":
            return self.count(conn, resource_types, criteria, visibility=visibility)
        write_buffer.flush(conn)
        where = build_where(resource_types, criteria, self.extractor.base_url, visibility)
        compiled = select(resource.c.pid).where(where).compile(dialect=conn.dialect)
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return max(0, round(plan[0]["Plan"]["Plan Rows"]))

    # ------------------------------------------------------------------ conditional writes
    def lock_criteria(self, conn: Connection, resource_type: str, criteria: Sequence[Criterion]) -> None:
        """Serialise conditional writes on the same criteria (no duplicate conditional creates)."""
        key = resource_type + "?" + "&".join(sorted(c.canonical for c in criteria))
        self.database.lock(conn, key)
