"""Rebuilding index rows and marks of resources already stored (``fhirportal reindex``).

It runs while the server serves: resources are taken in pid order, a batch per transaction, each
batch's rows locked only for that transaction (PostgreSQL: ``FOR UPDATE`` of the batch, so a
concurrent update of one of them waits and then re-indexes it itself; SQLite serialises writers).
The job row keeps how far it got: a reindex that stops (killed, a lost connection) continues from
there when run again, and a second process refuses to run the same job while the first is alive.
When a job finishes, its parameters become ready (``IndexState.mark_ready``).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from . import clock, contained, write_buffer
from .database import Database
from .index_schema import reindex_job
from .index_state import CONTAINED, MARKS, IndexState
from .indexing import IndexExtractor
from .indexing.token import OF_TYPE_SUFFIX
from .marks import Marker
from .schema import INDEX_TABLES, resource

RUNNING, COMPLETED = "running", "completed"
STALE_AFTER = timedelta(seconds=60)  # a job whose process has not been heard of this long is taken over


def _gone(worker: str | None) -> bool:
    """Whether the process a job names (``host:pid:…``) is known to have ended: it ran on this host and
    no process has its pid (killed, crashed). Elsewhere only its heartbeat can tell (``STALE_AFTER``)."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
_SET_MARKS = update(resource).where(resource.c.pid == bindparam("b_pid")).values(marks=bindparam("b_marks"))


class ReindexRefused(RuntimeError):
    """Another reindex is running, or an unfinished one of other parameters must finish first."""


@dataclass
class Job:
    id: int
    targets: dict[str, list[str] | None]  # type -> codes (None: every parameter and the marks)
    last_pid: int
    total: int
    done: int
    counts: Counter = field(default_factory=Counter)
    resumed: bool = False

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return {(t, code) for t, codes in self.targets.items() for code in (codes or ())}


def _normalise(targets: dict[str, Iterable[str] | None]) -> dict[str, list[str] | None]:
    return {t: (sorted(set(codes)) if codes is not None else None) for t, codes in sorted(targets.items())}


class Reindexer:
    def __init__(self, database: Database, extractor: IndexExtractor, marker: Marker, state: IndexState, *,
                 batch: int = 500):
        self.database = database
        self.extractor = extractor
        self.registry = extractor.registry
        self.marker = marker
        self.state = state
        self.batch = batch
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------------ what to do
    def targets(self, types: Iterable[str] = (), codes: Iterable[str] = ()) -> dict[str, list[str] | None]:
        """Nothing named: every pending parameter. Types only: all of those types. Codes: those
        parameters, of the types named or of every type that has them. Unknown names raise ValueError."""
        types, codes = list(types), list(codes)
        unknown = [t for t in types if t not in self.registry.resource_types]
        if unknown:
            raise ValueError(f"unknown resource type {', '.join(unknown)}")
        if not types and not codes:
            pending: dict[str, set[str]] = {}
            for resource_type, code in self.state.pending(force=True):
                pending.setdefault(resource_type, set()).add(code)
            return _normalise(pending)
        if not codes:
            return _normalise(dict.fromkeys(types))
        chosen: dict[str, set[str]] = {}
        for resource_type in types or self.registry.resource_types:
            parameters = self.registry.for_type(resource_type)
            for code in codes:
                if code in (MARKS, CONTAINED) or (code in parameters and parameters[code].indexed):
                    chosen.setdefault(resource_type, set()).add(code)
        missing = [c for c in codes if c not in (MARKS, CONTAINED) and not any(c in found for found in chosen.values())]
        if missing:
            raise ValueError(f"no indexed search parameter {', '.join(missing)} on "
                             f"{', '.join(types) if types else 'any type'}")
        return _normalise(chosen)

    # ------------------------------------------------------------------ the job row
    def start(self, targets: dict[str, list[str] | None], *, named: bool) -> Job | None:
        """The unfinished job, resumed (if ``targets`` were not ``named`` or are its own), or a new one
        for ``targets``; None when there is nothing to do."""
        now = clock.now()
        with self.database.write() as conn:
            self.database.lock(conn, "reindex_job")
            row = conn.execute(select(reindex_job).where(reindex_job.c.status == RUNNING)
                               .order_by(reindex_job.c.id).limit(1)).first()
            if row is not None:
                job_targets = json.loads(row.targets)
                if named and _normalise(targets) != job_targets:
                    raise ReindexRefused(f"an unfinished reindex (job {row.id}, {_describe(job_targets)}) must finish "
                                         f"first: run `fhirportal reindex` without arguments")
                if row.heartbeat is not None and row.worker != self.worker and not _gone(row.worker) \
                        and now - clock.ensure_utc(row.heartbeat) < STALE_AFTER:
                    raise ReindexRefused(f"reindex job {row.id} is running in another process ({row.worker}); "
                                         f"it was last heard of at {clock.as_instant(row.heartbeat)}")
                conn.execute(update(reindex_job).where(reindex_job.c.id == row.id)
                             .values(worker=self.worker, heartbeat=now))
                return Job(row.id, job_targets, row.last_pid, row.total, row.done, Counter(json.loads(row.counts)),
                           resumed=True)
            if not targets:
                return None
            total = conn.execute(select(func.count()).select_from(resource).where(
                resource.c.resource_type.in_(list(targets)), resource.c.deleted.is_(False))).scalar_one()
            job_id = conn.execute(insert(reindex_job).values(
                status=RUNNING, targets=json.dumps(_normalise(targets), sort_keys=True), last_pid=0, total=total,
                done=0, counts="{}", created=now, worker=self.worker, heartbeat=now,
            ).returning(reindex_job.c.id)).scalar_one()
            return Job(job_id, _normalise(targets), 0, total, 0)

    # ------------------------------------------------------------------ the work
    def run(self, job: Job, progress: Callable[[int], None] = lambda n: None) -> Job:
        """Reindex the job's resources from where it stands to the end, then mark its parameters ready."""
        while done := self._batch(job):
            progress(done)
        expected = self.state.expected()
        with self.database.write() as conn:
            conn.execute(update(reindex_job).where(reindex_job.c.id == job.id, reindex_job.c.worker == self.worker)
                         .values(status=COMPLETED, finished=clock.now(), heartbeat=clock.now()))
            ready = set(job.pairs)
            for resource_type, codes in job.targets.items():
                if codes is None:  # the whole type: every parameter, the marks and the contained rows
                    ready |= {(resource_type, code)
                              for code in (*self.registry.for_type(resource_type), MARKS, CONTAINED)}
            self.state.mark_ready(conn, sorted(ready), expected)
        self.state.pending(force=True)
        return job

    def _batch(self, job: Job) -> int:
        """Reindex the next batch in one transaction; how many resources it held (0: the end)."""
        types = list(job.targets)
        with self.database.write() as conn:
            owned = conn.execute(update(reindex_job).where(reindex_job.c.id == job.id,
                                                           reindex_job.c.worker == self.worker)
                                 .values(heartbeat=clock.now())).rowcount
            if not owned:
                raise ReindexRefused(f"reindex job {job.id} was taken over by another process")
            query = (select(resource.c.pid, resource.c.resource_type, resource.c.content, resource.c.marks)
                     .where(resource.c.resource_type.in_(types), resource.c.pid > job.last_pid,
                            resource.c.deleted.is_(False))
                     .order_by(resource.c.pid).limit(self.batch))
            if self.database.dialect == "postgresql":
                query = query.with_for_update(of=resource)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            self._rebuild(conn, job, rows)
            job.last_pid = rows[-1].pid
            job.done += len(rows)
            job.counts.update(row.resource_type for row in rows)
            conn.execute(update(reindex_job).where(reindex_job.c.id == job.id).values(
                last_pid=job.last_pid, done=job.done, counts=json.dumps(dict(job.counts), sort_keys=True)))
        return len(rows)

    def _rebuild(self, conn: Connection, job: Job, rows) -> None:
        new_rows: dict[str, list[dict]] = {kind: [] for kind in INDEX_TABLES}
        marks: list[dict] = []
        by_type: dict[str, list[int]] = {}
        containers: list[tuple[int, dict]] = []
        for row in rows:
            codes = job.targets[row.resource_type]
            if codes is None or CONTAINED in codes:
                containers.append((row.pid, json.loads(row.content)))
            if codes is not None and not set(codes) - {CONTAINED}:
                continue  # only the contained rows
            with_marks = codes is None or MARKS in codes
            only = None if codes is None else frozenset(codes) | (self.marker.params(row.resource_type)
                                                                  if with_marks else frozenset())
            extracted = self.extractor.extract(json.loads(row.content), only)
            wanted = None if codes is None else _param_names(c for c in codes if c not in (MARKS, CONTAINED))
            for kind, kind_rows in extracted.items():
                for index_row in kind_rows:
                    if wanted is None or index_row["param"] in wanted:
                        new_rows[kind].append({"pid": row.pid, "resource_type": row.resource_type, **index_row})
            if with_marks:
                bits = self.marker.marks_of(row.resource_type, extracted)
                if bits != row.marks:
                    marks.append({"b_pid": row.pid, "b_marks": bits})
            by_type.setdefault(row.resource_type, []).append(row.pid)
        for resource_type, pids in by_type.items():
            codes = job.targets[resource_type]
            wanted = None if codes is None else sorted(_param_names(c for c in codes if c not in (MARKS, CONTAINED)))
            if wanted == []:
                continue  # only the marks (or the contained rows)
            for table in INDEX_TABLES.values():
                condition = table.c.pid.in_(pids)
                if wanted is not None:
                    condition = and_(condition, table.c.param.in_(wanted))
                conn.execute(delete(table).where(condition))
        for kind, kind_rows in new_rows.items():
            if kind_rows:
                write_buffer.append_rows(conn, INDEX_TABLES[kind], kind_rows)
        if marks:
            conn.execute(_SET_MARKS, marks)
        if containers:
            contained.rebuild(conn, self.extractor, self.marker, containers)


def _param_names(codes: Iterable[str]) -> set[str]:
    """The ``param`` values of index rows of these parameters (token codes also have ``:of-type`` rows)."""
    return {name for code in codes for name in (code, code + OF_TYPE_SUFFIX)}


def _describe(targets: dict) -> str:
    return "; ".join(f"{t}: {', '.join(codes) if codes else 'all'}" for t, codes in targets.items())
