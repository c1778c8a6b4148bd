"""Reading and keeping the access log (``journal_schema.access_log``): the queries the FHIR layer's
AuditEvent view runs, the index rows of stored AuditEvents, and the partitions and pruning of the
table. The store knows nothing of AuditEvents: the FHIR layer says which rows it wants as ``Clause``s
over the table's columns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, false, func, or_, select, text, true

from . import clock, write_buffer
from .database import Database
from .journal_schema import access_log
from .schema import INDEX_TABLES, resource

log = logging.getLogger(__name__)
STORED = "stored"  # the action of a row that indexes a stored AuditEvent
_OPERATORS = {"=": "__eq__", "!=": "__ne__", ">=": "__ge__", "<=": "__le__", ">": "__gt__", "<": "__lt__"}


@dataclass(frozen=True)
class Term:
    """``column op value`` on an access-log column: op is one of = != >= <= > <, ``in`` / ``not in``
    (a sequence), ``null`` / ``not null``, ``managed by`` (a Patient id column: the patient's
    managingOrganization is the value)."""

    column: str
    op: str
    value: object = None

    def sql(self):
        column = access_log.c[self.column]
        if self.op == "in":
            return column.in_(list(self.value)) if self.value else false()
        if self.op == "not in":
            return or_(column.is_(None), column.not_in(list(self.value))) if self.value else true()
        if self.op == "null":
            return column.is_(None)
        if self.op == "not null":
            return column.is_not(None)
        if self.op == "managed by":  # a Patient whose managingOrganization is the value
            patient = resource.alias()
            ref = INDEX_TABLES["reference"].alias()
            return column.in_(select(patient.c.fhir_id).select_from(patient).join(ref, ref.c.pid == patient.c.pid)
                              .where(patient.c.resource_type == "Patient", ref.c.param == "organization",
                                     ref.c.target_type == "Organization", ref.c.target_id == self.value))
        return getattr(column, _OPERATORS[self.op])(self.value)


# A condition: every clause holds; a clause holds when one of its alternatives does, an alternative
# when all of its terms do.
Clause = tuple[tuple[Term, ...], ...]


def condition(clauses: Iterable[Clause]):
    return and_(true(), *(or_(*(and_(true(), *(t.sql() for t in alternative)) for alternative in clause))
                          for clause in clauses))


@dataclass(frozen=True)
class Position:
    """Where a page in time order ended: the last row's (recorded, id)."""

    recorded: datetime
    id: int


def _kinds(access: Sequence[Clause] | None, stored) -> list:
    """The row conditions a page or a count takes: access rows meeting ``access``, stored AuditEvents'."""
    kinds = []
    if access is not None:
        kinds.append(and_(access_log.c.stored_pid.is_(None), condition(access)))
    if stored is not None:
        kinds.append(access_log.c.stored_pid.in_(stored))
    return kinds


def select_rows(conn: Connection, access: Sequence[Clause] | None, stored=None, *, descending: bool = True,
                after: Position | None = None, count: int = 50):
    """A page of access-log rows in time order (newest first if ``descending``) after ``after``: access
    rows meeting ``access`` (None: none of them), and rows of stored AuditEvents whose pid ``stored``
    (a subquery of resource pids) yields, each with the stored resource's content (``content``)."""
    write_buffer.flush(conn)
    kinds = _kinds(access, stored)
    if not kinds:
        return []
    where = or_(*kinds)
    if after is not None:
        order = (access_log.c.recorded < after.recorded) if descending else (access_log.c.recorded > after.recorded)
        same = and_(access_log.c.recorded == after.recorded,
                    access_log.c.id < after.id if descending else access_log.c.id > after.id)
        where = and_(where, or_(order, same))
    columns = (access_log.c.recorded.desc(), access_log.c.id.desc()) if descending else \
        (access_log.c.recorded.asc(), access_log.c.id.asc())
    query = (select(access_log, resource.c.fhir_id, resource.c.version_id, resource.c.last_updated,
                    resource.c.content)
             .select_from(access_log.outerjoin(resource, resource.c.pid == access_log.c.stored_pid))
             .where(where).order_by(*columns).limit(count))
    return conn.execute(query).all()


def count_rows(conn: Connection, access: Sequence[Clause] | None, stored=None) -> int:
    write_buffer.flush(conn)
    kinds = _kinds(access, stored)
    if not kinds:
        return 0
    return conn.execute(select(func.count()).select_from(access_log).where(or_(*kinds))).scalar_one()


def row_meets(conn: Connection, row_id: int, clauses: Sequence[Clause]) -> bool:
    return conn.execute(select(access_log.c.id).where(access_log.c.id == row_id, condition(clauses))).first() \
        is not None


def row_by_id(conn: Connection, row_id: int):
    return conn.execute(select(access_log).where(access_log.c.id == row_id,
                                                 access_log.c.stored_pid.is_(None))).first()


def record_patients(conn: Connection, records: Iterable[tuple[str, str]],
                    compartment: dict[str, Sequence[str]]) -> dict[tuple[str, str], str]:
    """The patient each (type, id) record belongs to (by the type's compartment reference parameters);
    records of no patient, or not there, are left out."""
    ref = INDEX_TABLES["reference"]
    wanted = list(records)
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(wanted), 200):
        chunk = wanted[start:start + 200]
        by_type: dict[str, list[str]] = {}
        for resource_type, fhir_id in chunk:
            by_type.setdefault(resource_type, []).append(fhir_id)
        alternatives = [and_(resource.c.resource_type == t, resource.c.fhir_id.in_(ids),
                             ref.c.param.in_(list(compartment[t]))) for t, ids in by_type.items()]
        rows = conn.execute(select(resource.c.resource_type, resource.c.fhir_id, ref.c.target_id)
                            .select_from(resource.join(ref, ref.c.pid == resource.c.pid))
                            .where(or_(*alternatives), ref.c.target_type == "Patient")).all()
        for row in rows:
            found.setdefault((row.resource_type, row.fhir_id), row.target_id)
    return found


def index_stored(conn: Connection, resource_type: str, fhir_id: str, recorded: datetime,
                 patient_id: str | None) -> None:
    """Index a stored AuditEvent (just written in this transaction) in the access log's time order."""
    write_buffer.flush(conn)
    pid = conn.execute(select(resource.c.pid).where(resource.c.resource_type == resource_type,
                                                    resource.c.fhir_id == fhir_id)).scalar_one()
    conn.execute(access_log.insert().values(recorded=recorded, patient_id=patient_id, action=STORED, outcome=0,
                                            resource_type=resource_type, stored_pid=pid))


# ---------------------------------------------------------------------------- partitions (PostgreSQL)

def _month(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"access_log_{month.year:04d}_{month.month:02d}"


def partitions(conn: Connection) -> dict[str, tuple[datetime, datetime] | None]:
    """The access log's partitions and their [from, to) months (None: the default partition)."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'access_log'::regclass")).all()
    found = {}
    for name, bound in rows:
        if "DEFAULT" in bound:
            found[name] = None
            continue
        low, high = (part.split("'")[1] for part in bound.split(" TO "))
        found[name] = (datetime.fromisoformat(low).astimezone(UTC), datetime.fromisoformat(high).astimezone(UTC))
    return found


def ensure_partitions(database: Database, months_ahead: int = 3, since: datetime | None = None) -> list[str]:
    """PostgreSQL: create the monthly partitions from ``since`` (default: this month) to ``months_ahead``
    months ahead that are missing; which were created. Nothing on SQLite."""
    if database.dialect != "postgresql":
        return []
    created = []
    with database.write() as conn:
        database.lock(conn, "access_log partitions")
        existing = partitions(conn)
        month = _month(since or clock.now())
        last = _month(clock.now())
        for _ in range(months_ahead):
            last = _next_month(last)
        while month <= last:
            name = partition_name(month)
            if name not in existing:
                conn.exec_driver_sql(
                    f"CREATE TABLE {name} PARTITION OF access_log FOR VALUES FROM "
                    f"('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')")
                created.append(name)
            month = _next_month(month)
    return created


def prune(database: Database, before: datetime) -> tuple[list[str], int]:
    """Remove the access log before ``before`` (a month's first instant on PostgreSQL): whole monthly
    partitions dropped on PostgreSQL, never row by row; SQLite deletes the range. Stored AuditEvents'
    index rows are kept. Returns (partitions dropped, rows deleted)."""
    if database.dialect == "postgresql":
        if before != _month(before):
            raise ValueError("on PostgreSQL the access log is pruned by whole months: give the first day of a month")
        dropped = []
        with database.write() as conn:
            for name, bounds in sorted(partitions(conn).items()):
                if bounds is not None and bounds[1] <= before:
                    conn.exec_driver_sql(f"ALTER TABLE access_log DETACH PARTITION {name}")
                    # the stored AuditEvents' rows of that month stay (in the default partition)
                    columns = ", ".join(c.name for c in access_log.columns)
                    conn.exec_driver_sql(f"INSERT INTO access_log ({columns}) SELECT {columns} FROM {name} "
                                         f"WHERE stored_pid IS NOT NULL")
                    conn.exec_driver_sql(f"DROP TABLE {name}")
                    dropped.append(name)
        return dropped, 0
    with database.write() as conn:
        deleted = conn.execute(access_log.delete().where(access_log.c.recorded < before,
                                                         access_log.c.stored_pid.is_(None))).rowcount
    return [], deleted
