"""The access log: who (user, app) did what to which patient's data, and with what outcome.

Every authorized FHIR request is journalled as one narrow ``access_log`` row. Rows are queued in
the worker and written by a background thread in multi-row batches every ``FLUSH_INTERVAL``
(and at exit), so a read does not wait for an audit write: a synchronous insert per request cost
more than a third of a read. The price is a window of at most ``FLUSH_INTERVAL`` in which a worker
killed outright (SIGKILL) loses its queued rows; a normal stop flushes them.

Nothing is converted: AuditEvents are rendered from the rows when read (``audit_view``), so an
access costs one narrow row. A row says whose record the access was about (``patient_id``: the patient
of the Patient read, the patient a search names, the patient of the record an instance-level
interaction touched — looked up by the writer thread, off the request) and, when the acting token's
patient is another one, that one too (``actor_patient``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import parse_qsl

from fhirportal.observability import request_id as request_ids
from fhirportal.store import clock, journal
from fhirportal.store.database import Database, unavailable

BATCH = 500
FLUSH_INTERVAL = 0.2  # seconds a journalled access may wait in the worker before it is written
log = logging.getLogger(__name__)
@dataclass(frozen=True)
class Access:
    """One request, as the access log keeps it."""

    action: str  # read vread search history create update patch delete transaction batch operation
    resource_type: str | None
    query: str | None  # "Observation/123", or the search string
    outcome: int  # the HTTP status answered
    client_id: str | None
    account_id: int | None = None
    fhir_user: str | None = None
    patient_id: str | None = None
    recorded: datetime = field(default_factory=clock.now)
    actor_patient: str | None = None  # the acting token's patient, when it is not ``patient_id``
    record: tuple[str, str] | None = None  # (type, id) an instance-level access touched: its patient is looked up
    request_id: str | None = field(default_factory=request_ids.current)  # the HTTP request's (X-Request-ID)


INSTANCE_ACTIONS = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
TYPE_ACTIONS = {"GET": "search", "POST": "create", "PUT": "update", "DELETE": "delete"}


def _action(endpoint: str, method: str, view_args: dict) -> str:
    if any(str(v).startswith("$") for v in view_args.values()):
        return "operation"
    if endpoint.endswith("history"):
        return "history"
    match endpoint:
        case "fhir.instance":
            return INSTANCE_ACTIONS.get(method, method.lower())
        case "fhir.version_read":
            return "vread"
        case "fhir.type_level":
            return TYPE_ACTIONS.get(method, method.lower())
        case "fhir.system_level":
            return "search" if method == "GET" else "transaction"
        case _:
            return "search"


def _patient_of(view_args: dict, args) -> str | None:
    """The patient whose data the request is about, as far as the request itself tells."""
    if view_args.get("resource_type") == "Patient" and view_args.get("fhir_id"):
        return str(view_args["fhir_id"])
    for name in ("patient", "subject"):
        value = args.get(name)
        if value and "," not in value:
            return value.removeprefix("Patient/").rsplit("/Patient/", 1)[-1] or None
    return None


@dataclass(frozen=True)
class RequestSeen:
    """What the router hands over per request: cheap to take, turned into an ``Access`` later (in
    the writer thread), so the request does not pay for parsing it."""

    endpoint: str
    method: str
    view_args: dict
    query_string: bytes
    status: int
    access: object  # the AccessContext
    recorded: datetime = field(default_factory=clock.now)
    request_id: str | None = field(default_factory=request_ids.current)


def access_of(seen: RequestSeen) -> Access:
    """The access-log entry of an authorized FHIR request."""
    view_args, access = seen.view_args, seen.access
    resource_type = view_args.get("resource_type")
    if resource_type and view_args.get("fhir_id") and not str(view_args["fhir_id"]).startswith("$"):
        query = f"{resource_type}/{view_args['fhir_id']}"
    else:
        query = resource_type or ""
        if seen.query_string:
            query += "?" + seen.query_string.decode("latin-1")
    args = dict(parse_qsl(seen.query_string.decode("latin-1"))) if seen.query_string else {}
    fhir_id = view_args.get("fhir_id")
    record = (resource_type, str(fhir_id)) if resource_type and fhir_id and resource_type != "Patient" \
        and not str(fhir_id).startswith("$") else None
    return Access(  # clipped to the columns: a client may send a 500-character type name
        action=_action(seen.endpoint, seen.method, view_args), resource_type=_clip(resource_type, 64),
        query=query, outcome=seen.status, client_id=_clip(access.client_id, 128), account_id=access.account_id,
        fhir_user=_clip(access.fhir_user, 200), patient_id=_clip(_patient_of(view_args, args), 64),
        recorded=seen.recorded, actor_patient=_clip(access.patient, 64), record=record,
        request_id=_clip(seen.request_id, 64))


def _references_in(body: dict) -> list[dict]:
    """The agents' ``who`` and the entities' ``what`` of an AuditEvent."""
    found = [a.get("who") for a in body.get("agent", []) if isinstance(a, dict)]
    found += [e.get("what") for e in body.get("entity", []) if isinstance(e, dict)]
    return [ref for ref in found if isinstance(ref, dict) and isinstance(ref.get("reference"), str)]


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else value


class AccessLog:
    def __init__(self, database: Database, base_url: str, compartment: dict[str, tuple[str, ...]]):
        self.database = database
        self.base_url = base_url
        self.compartment = compartment  # the Patient compartment: whose record an instance access touched
        self._pending: list[Access | RequestSeen] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid: int | None = None
        self._flushing = threading.Lock()  # one flush at a time: a batch is written before the next is taken
        self.on_flush: Callable[[int, int], None] = lambda written, pending: None  # metrics (observability)
        self.on_failure: Callable[[], None] = lambda: None
        marker = "?" if database.dialect == "sqlite" else "%s"
        self._insert_sql = (
            "INSERT INTO access_log (recorded, account_id, fhir_user, client_id, patient_id, actor_patient, action, "
            f"resource_type, query, outcome, request_id) VALUES ({', '.join([marker] * 11)})")
        atexit.register(self._flush_at_exit)

    def record(self, access: Access | RequestSeen) -> None:
        """Queue one access; the background writer stores it within ``FLUSH_INTERVAL``."""
        with self._lock:
            self._pending.append(access)
            if self._writer is None or self._writer_pid != os.getpid() or not self._writer.is_alive():
                self._writer_pid = os.getpid()  # a forked worker starts its own writer
                self._writer = threading.Thread(target=self._write_forever, name="access-log", daemon=True)
                self._writer.start()
            if len(self._pending) >= BATCH:
                self._wake.set()

    def _write_forever(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # the database is away (the rows stay queued): try again
                if unavailable(exc):
                    log.warning("access log: the database is unavailable (%s); retrying", type(exc).__name__)
                    self._wake.wait(1.0)  # do not hammer a database that is down
                else:
                    log.exception("access log: writing the journal failed; retrying")

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception:  # the database may be gone already (a removed temporary file, a stopped server)
            log.warning("access log: %d accesses could not be written at exit", len(self._pending))

    def flush(self) -> int:
        """Write every queued access now; returns how many. If the database is unreachable the rows
        stay queued (and the error is raised); a row the database refuses is logged and dropped,
        so that one bad row cannot hold back the journal."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                accesses = self._about(self._accesses(batch))
                rows = self._rows(accesses)
                self._insert(rows)
            except Exception as exc:
                if unavailable(exc):
                    self._requeue(batch)
                    self.on_failure()
                    raise
                log.exception("access log: a batch was refused; writing its rows one by one")
                self._one_by_one(batch)
            self.on_flush(len(batch), len(self._pending))
            return len(batch)

    @staticmethod
    def _accesses(batch: list) -> list[Access]:
        return [access_of(a) if isinstance(a, RequestSeen) else a for a in batch]

    def _one_by_one(self, batch: list) -> None:
        for number, item in enumerate(batch):
            try:
                self._insert(self._rows(self._accesses([item])))
            except Exception as row_exc:
                if unavailable(row_exc):  # the database went away meanwhile: keep what is not written
                    self._requeue(batch[number:])
                    raise
                log.exception("access log: dropped an access the database refused: %r", item)

    def _about(self, accesses: list[Access]) -> list[Access]:
        """Whose record each access was about: for an instance-level access to a compartment resource,
        that resource's patient (one lookup for the batch); otherwise what the request named, else the
        acting token's patient. ``actor_patient`` is kept only when it is another patient."""
        records = {a.record for a in accesses if a.record and a.record[0] in self.compartment}
        owners: dict[tuple[str, str], str] = {}
        if records:
            with self.database.read() as conn:
                owners = journal.record_patients(conn, records, self.compartment)
        about = []
        for access in accesses:
            patient = owners.get(access.record) or access.patient_id or access.actor_patient
            actor = access.actor_patient if access.actor_patient != patient else None
            about.append(replace(access, patient_id=patient, actor_patient=actor))
        return about

    def _requeue(self, accesses: list) -> None:
        with self._lock:
            self._pending[:0] = accesses

    def write(self, accesses: list[Access]) -> None:
        """Store these accesses now, in one statement (a bulk export's entries, a page at a time)."""
        if accesses:
            self._insert(self._rows(accesses))

    def _rows(self, accesses: list[Access]) -> list[tuple]:
        return [(self._instant(a.recorded), a.account_id, _clip(a.fhir_user, 200), _clip(a.client_id, 128),
                 _clip(a.patient_id, 64), _clip(a.actor_patient, 64), a.action[:32], _clip(a.resource_type, 64),
                 (a.query or "")[:2000] or None, a.outcome, _clip(a.request_id, 64)) for a in accesses]

    def _insert(self, rows: list[tuple]) -> None:
        with self.database.write(durable=False) as conn:
            conn.exec_driver_sql(self._insert_sql, rows)  # one executemany, no per-row SQL building

    def _instant(self, moment: datetime):
        """As SQLAlchemy stores a DateTime: SQLite gets its naive UTC text, PostgreSQL the datetime."""
        if self.database.dialect == "sqlite":
            return clock.ensure_utc(moment).replace(tzinfo=None).isoformat(" ", timespec="microseconds")
        return moment

    def index_stored(self, conn, record) -> None:
        """Index an AuditEvent another system sent (just stored in ``conn``'s transaction) in the log."""
        body = record.body
        try:
            recorded = datetime.fromisoformat(str(body.get("recorded", "")).replace("Z", "+00:00"))
        except ValueError:
            recorded = record.last_updated
        patient = next((ref.get("reference", "").split("/", 1)[1] for ref in _references_in(body)
                        if ref.get("reference", "").startswith("Patient/")), None)
        journal.index_stored(conn, "AuditEvent", record.fhir_id, clock.ensure_utc(recorded), _clip(patient, 64))

    def for_patients(self, patient_ids, account_id: int | None = None, limit: int = 200) -> list:
        """The log about these patients' records, and of the account's own actions, newest first (what
        the patient's access-log page lists)."""
        mine = list(patient_ids)
        alternatives = [(journal.Term("patient_id", "in", mine),), (journal.Term("actor_patient", "in", mine),)]
        if account_id is not None:
            alternatives.append((journal.Term("account_id", "=", account_id),))
        clauses = [tuple(alternatives)]
        self.written()
        with self.database.read() as conn:
            return journal.select_rows(conn, clauses, None, count=limit)

    def written(self) -> None:
        """This worker's queued accesses written now (before reading the log), unless the database is
        away (then they stay queued; the reader sees what is there)."""
        try:
            self.flush()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("access log: could not write the queued accesses before reading the log: %s", exc)
