"""The access log: who (user, app) did what to which patient's data, and with what outcome.

Every authorized FHIR request is journalled as one narrow ``access_log`` row. Rows are queued in
the worker and written by a background thread in multi-row batches every ``FLUSH_INTERVAL``
(and at exit), so a read does not wait for an audit write: a synchronous insert per request cost
more than a third of a read. The price is a window of at most ``FLUSH_INTERVAL`` in which a worker
killed outright (SIGKILL) loses its queued rows; a normal stop flushes them.

The journal becomes FHIR ``AuditEvent`` resources (``id`` ``access-{row id}``) before anything
reads AuditEvents: ``materialize`` turns the rows not yet converted into resources in batches,
under a lock, idempotently, so several workers may run it at once.
"""

from __future__ import annotations

import atexit
import base64
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy import select, update

from fhirportal.store import clock
from fhirportal.store.auth_schema import access_log
from fhirportal.store.database import Database, unavailable
from fhirportal.store.repository import ResourceRepository

BATCH = 500
READ_BUDGET = 2.0  # seconds a request reading AuditEvents spends converting the journal before it reads
FLUSH_INTERVAL = 0.2  # seconds a journalled access may wait in the worker before it is written
log = logging.getLogger(__name__)
EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ACTION_CODES = {"read": "R", "vread": "R", "search": "E", "history": "R", "create": "C", "update": "U",
                "patch": "U", "delete": "D", "transaction": "E", "batch": "E", "operation": "E", "export": "R"}
INTERACTION_CODES = {"search": "search-type", "history": "history-instance", "operation": "operation",
                     "export": "operation"}
PATIENT_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
DOMAIN_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"}
QUERY_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"}
APPLICATION = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}
HUMAN_USER = {"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser",
              "display": "human user"}


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


def _patient_of(view_args: dict, args, access) -> str | None:
    """The patient whose data the request is about, as far as the request itself tells."""
    if access is not None and access.patient:
        return access.patient
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
    patient_id = _patient_of(view_args, args, access)
    return Access(  # clipped to the columns: a client may send a 500-character type name
        action=_action(seen.endpoint, seen.method, view_args), resource_type=_clip(resource_type, 64),
        query=query, outcome=seen.status, client_id=_clip(access.client_id, 128), account_id=access.account_id,
        fhir_user=_clip(access.fhir_user, 200), patient_id=_clip(patient_id, 64), recorded=seen.recorded)


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else value


def touches_audit_events(request) -> bool:
    view_args = request.view_args or {}
    if "resource_type" in view_args:
        return view_args["resource_type"] == "AuditEvent"
    if b"AuditEvent" in request.query_string:  # _type=…
        return True
    return request.method == "POST" and b"AuditEvent" in request.get_data(cache=True)  # a Bundle reading them


def _outcome_code(status: int) -> str:
    return "0" if status < 400 else "4" if status < 500 else "8"


def audit_event(row, base_url: str) -> dict:
    """The AuditEvent (R4) of one access-log row."""
    agents = [{
        "type": {"coding": [HUMAN_USER]} if row.fhir_user else {"coding": [APPLICATION]},
        "who": {"reference": row.fhir_user} if row.fhir_user else {"display": f"app {row.client_id}"},
        "requestor": True,
    }]
    if row.fhir_user and row.client_id:
        agents.append({"type": {"coding": [APPLICATION]}, "who": {"display": f"app {row.client_id}"},
                       "requestor": False})
    entities = []
    if row.patient_id:
        entities.append({"what": {"reference": f"Patient/{row.patient_id}"}, "role": PATIENT_ROLE})
    if row.query and "?" not in row.query and "/" in row.query and "$" not in row.query:  # Type/id
        entities.append({"what": {"reference": row.query}, "role": DOMAIN_ROLE})
    elif row.query:
        entities.append({"role": QUERY_ROLE, "description": row.query[:1024],
                         "query": base64.b64encode(row.query.encode()).decode()})
    return {
        "resourceType": "AuditEvent",
        "id": f"access-{row.id}",
        "type": EVENT_TYPE,
        "subtype": [{"system": INTERACTION_SYSTEM, "code": INTERACTION_CODES.get(row.action, row.action)}],
        "action": ACTION_CODES.get(row.action, "E"),
        "recorded": clock.as_instant(clock.ensure_utc(row.recorded)),
        "outcome": _outcome_code(row.outcome),
        "outcomeDesc": f"HTTP {row.outcome}",
        "agent": agents,
        "source": {"observer": {"display": f"fhirportal {base_url}"}},
        "entity": entities,
    }


class AccessLog:
    def __init__(self, database: Database, repository: ResourceRepository, base_url: str, *,
                 background_after: int = 0):
        self.database = database
        # The writer thread converts the journal into AuditEvents itself (a batch per wake-up) once it
        # has written this many accesses since the last conversion; 0: never (only ``materialize``,
        # i.e. AuditEvent reads, which convert for at most ``READ_BUDGET`` seconds).
        self.background_after = background_after
        self._written_since_materialized = 0
        self.repository = repository
        self.base_url = base_url
        self._pending: list[Access] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid: int | None = None
        self._flushing = threading.Lock()  # one flush at a time: a batch is written before the next is taken
        marker = "?" if database.dialect == "sqlite" else "%s"
        self._insert_sql = (
            "INSERT INTO access_log (recorded, account_id, fhir_user, client_id, patient_id, action, resource_type, "
            f"query, outcome, materialized) VALUES ({', '.join([marker] * 9)}, {'0' if marker == '?' else 'false'})")
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
                self._written_since_materialized += self.flush()
                if self._converting_now() and self._materialize_batch() < BATCH:  # caught up: count afresh
                    self._written_since_materialized = 0
            except Exception as exc:  # the database is away (the rows stay queued): try again
                if unavailable(exc):
                    log.warning("access log: the database is unavailable (%s); retrying", type(exc).__name__)
                    self._wake.wait(1.0)  # do not hammer a database that is down
                else:
                    log.exception("access log: writing the journal failed; retrying")

    def _converting_now(self) -> bool:
        """Whether the writer thread should convert a batch of the journal now: it is far behind."""
        return bool(self.background_after) and self._written_since_materialized >= self.background_after

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
            batch = [access_of(a) if isinstance(a, RequestSeen) else a for a in batch]
            rows = self._rows(batch)
            try:
                self._insert(rows)
            except Exception as exc:
                if unavailable(exc):
                    self._requeue(batch)
                    raise
                log.exception("access log: a batch was refused; writing its rows one by one")
                for number, row in enumerate(rows):
                    try:
                        self._insert([row])
                    except Exception as row_exc:
                        if unavailable(row_exc):  # the database went away meanwhile: keep what is not written
                            self._requeue(batch[number:])
                            raise
                        log.exception("access log: dropped a row the database refused: %r", row)
            return len(batch)

    def _requeue(self, accesses: list[Access]) -> None:
        with self._lock:
            self._pending[:0] = accesses

    def write(self, accesses: list[Access]) -> None:
        """Store these accesses now, in one statement (a bulk export's entries, a page at a time)."""
        if accesses:
            self._insert(self._rows(accesses))

    def _rows(self, accesses: list[Access]) -> list[tuple]:
        return [(self._instant(a.recorded), a.account_id, _clip(a.fhir_user, 200), _clip(a.client_id, 128),
                 _clip(a.patient_id, 64), a.action[:32], _clip(a.resource_type, 64), (a.query or "")[:2000] or None,
                 a.outcome) for a in accesses]

    def _insert(self, rows: list[tuple]) -> None:
        with self.database.write(durable=False) as conn:
            conn.exec_driver_sql(self._insert_sql, rows)  # one executemany, no per-row SQL building

    def for_patients(self, patient_ids, limit: int = 200) -> list:
        """The journal about these patients, newest first (what the patient's access-log page lists)."""
        if not patient_ids:
            return []
        try:
            self.flush()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("access log: could not write the queued accesses before listing them: %s", exc)
        with self.database.read() as conn:
            return conn.execute(select(access_log).where(access_log.c.patient_id.in_(list(patient_ids)))
                                .order_by(access_log.c.recorded.desc(), access_log.c.id.desc()).limit(limit)).all()

    def _instant(self, moment: datetime):
        """As SQLAlchemy stores a DateTime: SQLite gets its naive UTC text, PostgreSQL the datetime."""
        if self.database.dialect == "sqlite":
            return clock.ensure_utc(moment).replace(tzinfo=None).isoformat(" ", timespec="microseconds")
        return moment

    def materialize(self, budget: float | None = None) -> int:
        """Turn journal rows not yet converted into AuditEvent resources; returns how many.

        This worker's queue is written first; other workers' queues reach the journal within
        ``FLUSH_INTERVAL``. ``budget``: stop starting batches after that many seconds (a request
        reading AuditEvents does not wait for an unbounded backlog; the writer threads convert the
        rest in the background, see ``background_after``)."""
        try:
            self.flush()
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("access log: could not write the queued accesses before reading AuditEvents: %s", exc)
        done, deadline = 0, None if budget is None else time.monotonic() + budget
        while (deadline is None or time.monotonic() < deadline) and (converted := self._materialize_batch()):
            done += converted
        return done

    def _materialize_batch(self) -> int:
        """Convert up to ``BATCH`` journal rows not yet converted (oldest first); how many."""
        with self.database.write() as conn:
            self.database.lock(conn, "access-log-materialize")  # one worker at a time converts a batch
            rows = conn.execute(select(access_log).where(access_log.c.materialized.is_(False))
                                .order_by(access_log.c.id).limit(BATCH)).all()
            for row in rows:
                self.repository.update(conn, "AuditEvent", f"access-{row.id}", audit_event(row, self.base_url),
                                       probably_new=True)
            if rows:
                conn.execute(update(access_log).where(access_log.c.id.in_([r.id for r in rows]))
                             .values(materialized=True))
        return len(rows)
