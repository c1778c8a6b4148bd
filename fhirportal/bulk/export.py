"""FHIR Bulk Data Access 2.0 ``$export``: kick-off (system, ``Patient/$export``, ``Group/[id]/$export``),
a worker thread per job, the status endpoint and the file downloads.

The kick-off checks the request and the token, records the job (``export_job``) and starts a thread
that pages through each type by primary key (keyset, ``PAGE_SIZE`` rows a transaction) and appends
the stored JSON to ``{export_dir}/{job id}/{Type}.ndjson``: memory stays flat whatever the population.
Every query is restricted to the token's search visibility and to resources last updated at or before
the job's ``transactionTime``. Only the client that started a job may poll, cancel or download it.

The job row holds all the worker needs (types, ``_since``, the Group's members at kick-off, the
token's rights): the worker beats (``heartbeat``) once a page, and a running job whose heartbeat is
older than ``STALE_AFTER`` lost its worker (the server restarted). The next status poll or kick-off
claims it atomically and runs it again from scratch in its own process, with the original
``transactionTime`` as the upper bound. ``fhirportal export`` runs the same code in the foreground.

Patient and Group exports write the Patients, their compartment's resources, and the resources of
``REFERENCED_TYPES`` (Practitioner, Organization, Location, Medication …) that those point at, so that
the export's references resolve within its files. ``_typeFilter`` narrows a type (``type_filters``).

Every export is an accounting of disclosures: once its files are written, each patient whose record
it covered gets an access-log entry (action ``export``, the client and user who asked), which the
patient sees as an AuditEvent and on their access-log page.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import Blueprint, Request, Response, current_app, request, send_file
from sqlalchemy import delete, exists, false, func, or_, select, update

from fhirportal.errors import BadRequest, Forbidden, Issue, NotFound
from fhirportal.fhir.audit import Access
from fhirportal.fhir.authorization import Authorization, authenticate
from fhirportal.fhir.compartment import patient_compartment
from fhirportal.fhir.context import FhirContext
from fhirportal.fhir.interactions.history import since_instant
from fhirportal.fhir.outcome import information, operation_outcome
from fhirportal.fhir.preconditions import http_date
from fhirportal.fhir.response import FhirResponse
from fhirportal.fhir.search_params import split_or
from fhirportal.smart.scopes import parse_scopes
from fhirportal.store import clock
from fhirportal.store.database import unavailable
from fhirportal.store.export_schema import export_job
from fhirportal.store.indexing.dates import parse_range, to_datetime
from fhirportal.store.schema import INDEX_TABLES, resource
from fhirportal.store.search import build_where
from fhirportal.store.search.visibility import Visibility

from . import type_filters

log = logging.getLogger(__name__)

OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
NDJSON = "application/fhir+ndjson"
PAGE_SIZE = 1000
RETRY_AFTER_SECONDS = 2
RETENTION = timedelta(hours=24)  # a finished export's files (and its status) are kept this long
RUNNING = ("accepted", "in-progress")
STALE_AFTER = timedelta(seconds=60)  # a running job whose worker has not beaten for this long is restarted
# Patient-level exports leave out the Group (it lists every member) and the access log.
NOT_PATIENT_DATA = frozenset({"Group"})
# Outside the patient compartment, but exported with a Patient or Group export when its resources refer
# to them (a MedicationRequest's Medication, an Observation's performer, Patient.managingOrganization).
REFERENCED_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Substance")
_FILE_NAME = re.compile(r"^([A-Z][A-Za-z]+)\.ndjson$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # secrets.token_urlsafe


@dataclass(frozen=True)
class ExportPlan:
    """What the worker needs: the job row's content plus the token's visibility (on a restart, rebuilt
    from the rights kept in the row; None: unrestricted)."""

    job_id: str
    kind: str
    types: tuple[str, ...]
    since: datetime | None
    transaction_time: datetime
    members: tuple[str, ...] | None  # Group export: the member patients' ids
    visibility: Visibility | None
    worker: str = ""  # this run's claim on the job row (a restarted job gets a new one)
    type_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # _typeFilter queries per type
    # Who asked, for the access log of every patient the export covers.
    request: str = ""
    client_id: str = ""
    account_id: int | None = None
    fhir_user: str | None = None


def compartment(ctx: FhirContext) -> dict[str, tuple[str, ...]]:
    """Patient-compartment parameters of each stored type (Patient itself excluded)."""
    spec = patient_compartment()
    return {t: tuple(params) for t, params in spec.items()
            if t in ctx.resource_types and t != "Patient" and t not in NOT_PATIENT_DATA}


def referenced_types(ctx: FhirContext) -> list[str]:
    """The ``REFERENCED_TYPES`` this server stores that are not patient-compartment types."""
    inside = compartment(ctx)
    return [t for t in REFERENCED_TYPES if t in ctx.resource_types and t not in inside]


def allowed_types(ctx: FhirContext, kind: str) -> list[str]:
    """The types an export of this kind covers, in export order."""
    if kind == "system":
        return sorted(ctx.resource_types)
    return ["Patient", *compartment(ctx), *referenced_types(ctx)]


def group_members(ctx: FhirContext, group_id: str, visibility: Visibility | None) -> tuple[str, ...]:
    """The active Patient members of a Group (404 if the Group is not visible)."""
    with ctx.database.read() as conn:
        group = json.loads(ctx.repository.read(conn, "Group", group_id, visibility=visibility).content)
    members = []
    for member in group.get("member", []):
        parts = ((member.get("entity") or {}).get("reference") or "").split("/")
        if len(parts) >= 2 and parts[-2] == "Patient" and not member.get("inactive"):
            members.append(parts[-1])
    return tuple(dict.fromkeys(members))


def operator_plan(ctx: FhirContext, types: Iterable[str] = (), since: str | None = None, group_id: str | None = None,
                  patient_level: bool = False, type_filter: Iterable[str] = ()) -> ExportPlan:
    """An operator's export (``fhirportal export``): unrestricted visibility, no job row. ValueError if a
    type is unknown or not patient data at the patient level, or ``since`` is not an instant; BadRequest
    for a bad ``type_filter``."""
    kind = "group" if group_id else "patient" if patient_level else "system"
    allowed = allowed_types(ctx, kind)
    requested = list(dict.fromkeys(t.strip() for v in types for t in v.split(",") if t.strip()))
    unknown = [t for t in requested if t not in ctx.resource_types]
    if unknown:
        raise ValueError(f"this server stores no {', '.join(unknown)}")
    outside = [t for t in requested if t not in allowed]
    if outside:
        raise ValueError(f"{', '.join(outside)} is not patient data (leave out --patient-level/--group)")
    moment = None
    if since is not None:
        try:
            moment = to_datetime(parse_range(since)[0])
        except ValueError as exc:
            raise ValueError(f"--since must be a FHIR instant, e.g. 2024-01-01T00:00:00Z: {exc}") from exc
    members = group_members(ctx, group_id, None) if group_id else None
    chosen = tuple(requested or allowed)
    filters = type_filters.parse_type_filters(ctx.search_parameters, type_filter, chosen, ctx.base_url)
    return ExportPlan("operator", kind, chosen, moment, clock.now(), members, None, type_filters=filters,
                      request="fhirportal export", client_id="fhirportal-cli")


class Exporter:
    """Runs export jobs in background threads; one per application."""

    def __init__(self, ctx: FhirContext):
        self.ctx = ctx
        self.directory = Path(ctx.settings.export_dir)
        self.page_size = PAGE_SIZE
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ jobs
    def start(self, plan: ExportPlan) -> None:
        thread = threading.Thread(target=self._run, args=(plan,), name=f"export-{plan.job_id[:8]}", daemon=True)
        with self._lock:
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            self._threads[plan.job_id] = thread
        thread.start()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for every running job's thread (tests, shutdown); False if some still run."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def job(self, job_id: str):
        with self.ctx.database.read() as conn:
            return conn.execute(select(export_job).where(export_job.c.id == job_id)).first()

    def cancel(self, job_id: str) -> None:
        """Marks the job cancelled (the worker stops at its next page) and removes its files."""
        with self.ctx.database.write() as conn:
            conn.execute(update(export_job).where(export_job.c.id == job_id).values(status="cancelled"))
        shutil.rmtree(self.job_directory(job_id), ignore_errors=True)

    def purge_expired(self) -> int:
        """Remove the jobs (and files) that ended more than ``RETENTION`` ago; how many."""
        cutoff = clock.now() - RETENTION
        with self.ctx.database.write() as conn:
            expired = list(conn.execute(select(export_job.c.id).where(
                export_job.c.status.not_in(RUNNING), export_job.c.created < cutoff)).scalars())
            if expired:
                conn.execute(delete(export_job).where(export_job.c.id.in_(expired)))
        for job_id in expired:
            shutil.rmtree(self.job_directory(job_id), ignore_errors=True)
        return len(expired)

    def job_directory(self, job_id: str) -> Path:
        return self.directory / job_id

    def _status(self, job_id: str) -> str | None:
        with self.ctx.database.read() as conn:
            return conn.execute(select(export_job.c.status).where(export_job.c.id == job_id)).scalar_one_or_none()

    def _set(self, plan: ExportPlan, **values) -> bool:
        """Update the job while it runs and this run owns it (not cancelled, ended or claimed by
        another worker); whether it was updated. Every update is also a heartbeat."""
        with self.ctx.database.write() as conn:
            return conn.execute(update(export_job).where(
                export_job.c.id == plan.job_id, export_job.c.status.in_(RUNNING), export_job.c.worker == plan.worker,
            ).values(heartbeat=clock.now(), **values)).rowcount == 1

    # ------------------------------------------------------------------ restart after a worker died
    def plan_of(self, job, worker: str) -> ExportPlan:
        """The plan of a job row, its Visibility rebuilt from the token's rights kept in the row."""
        visibility = None
        if job.scope is not None:
            policy = self.ctx.access_policy
            visibility = policy.visibility(parse_scopes(job.scope, self.ctx.resource_types), job.patient,
                                           job.organization, "search-type", policy.labs_shared())
        members = tuple(json.loads(job.members)) if job.members is not None else None
        since = clock.ensure_utc(job.since) if job.since is not None else None
        filters = {t: tuple(q) for t, q in json.loads(job.type_filter or "{}").items()}
        return ExportPlan(job.id, job.kind, tuple(json.loads(job.types)), since, clock.ensure_utc(job.transaction_time),
                          members, visibility, worker, filters, self._relative(job.request), job.client_id,
                          job.account_id, job.fhir_user)

    def _relative(self, url: str) -> str:
        return url.removeprefix(self.ctx.base_url).lstrip("/")

    @staticmethod
    def is_stale(job) -> bool:
        return job.status in RUNNING and (
            job.heartbeat is None or clock.ensure_utc(job.heartbeat) < clock.now() - STALE_AFTER)

    def resume_stale(self, job_id: str | None = None) -> list[str]:
        """Claim the running jobs (or this one) whose worker stopped beating, and run each again from
        scratch here (its partial files removed); the ids restarted. A claim is one UPDATE on the old
        worker id and heartbeat, so of several servers polling at once only one restarts a job."""
        cutoff = clock.now() - STALE_AFTER
        stale = or_(export_job.c.heartbeat.is_(None), export_job.c.heartbeat < cutoff)
        query = select(export_job).where(export_job.c.status.in_(RUNNING), stale)
        if job_id is not None:
            query = query.where(export_job.c.id == job_id)
        with self.ctx.database.read() as conn:
            jobs = conn.execute(query).all()
        restarted = []
        for job in jobs:
            worker = secrets.token_urlsafe(16)
            with self.ctx.database.write() as conn:
                claimed = conn.execute(update(export_job).where(
                    export_job.c.id == job.id, export_job.c.status.in_(RUNNING),
                    export_job.c.worker.is_not_distinct_from(job.worker), stale,
                ).values(worker=worker, heartbeat=clock.now(), status="accepted", progress="restarted")).rowcount == 1
            if not claimed:
                continue
            log.warning("export %s: its worker stopped (last heartbeat %s); restarting it", job.id, job.heartbeat)
            shutil.rmtree(self.job_directory(job.id), ignore_errors=True)
            try:
                plan = self.plan_of(job, worker)
            except Exception as exc:  # noqa: BLE001  (a job that cannot be rebuilt fails, it does not hang)
                log.exception("export %s cannot be restarted", job.id)
                self._fail(ExportPlan(job.id, job.kind, (), None, clock.now(), None, None, worker), exc)
                continue
            self.start(plan)
            restarted.append(job.id)
        return restarted

    # ------------------------------------------------------------------ the worker
    def _fail(self, plan: ExportPlan, exc: Exception) -> None:
        outcome = operation_outcome([Issue(f"The export failed: {type(exc).__name__}", code="exception")])
        self._set(plan, status="failed", progress="failed", error=json.dumps(outcome))

    def _run(self, plan: ExportPlan) -> None:
        """The job's thread. The database going away mid-run does not fail the job: the thread waits
        for it (up to half ``STALE_AFTER``) and runs the job again from scratch; if it stays away longer,
        the job's heartbeat goes stale and a status poll restarts it once the database is back."""
        folder = self.job_directory(plan.job_id)
        try:
            while True:
                try:
                    self._attempt(plan, folder)
                    break
                except Exception as exc:  # noqa: BLE001  (any failure ends the job, reported on the status url)
                    if not unavailable(exc):
                        log.exception("export %s failed", plan.job_id)
                        self._fail(plan, exc)
                        break
                    if not self._database_returns():  # the job stays running, its heartbeat goes stale
                        log.warning("export %s: the database stayed away; a status poll restarts the job once "
                                    "it is back", plan.job_id)
                        break
                    log.warning("export %s: the database went away mid-run; running it again", plan.job_id)
                    shutil.rmtree(folder, ignore_errors=True)
        except Exception:  # noqa: BLE001  (the failure could not be recorded either: the database is away)
            log.exception("export %s: stopped; a status poll restarts it once the database is back", plan.job_id)
        finally:
            try:
                if self._status(plan.job_id) in ("cancelled", "failed", None):
                    shutil.rmtree(folder, ignore_errors=True)
            except Exception:  # noqa: BLE001
                log.warning("export %s: could not read its status to tidy its files", plan.job_id)

    def _attempt(self, plan: ExportPlan, folder: Path) -> None:
        if not self._set(plan, status="in-progress", progress="started"):
            return

        def type_done(number: int, resource_type: str, count: int) -> bool:
            progress = f"{number} of {len(plan.types)} types exported ({resource_type}: {count})"
            return self._set(plan, progress=progress)

        output = self.export_files(plan, folder, alive=lambda: self._set(plan), on_type=type_done)
        if output is not None and self._set(plan, progress="recording the disclosures"):
            self.record_disclosures(plan)
            self._set(plan, status="completed", progress="completed", output=json.dumps(output))

    def _database_returns(self, seconds: float = STALE_AFTER.total_seconds() / 2) -> bool:
        """Wait (polling once a second) until the database answers again; False after ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                with self.ctx.database.read() as conn:
                    conn.exec_driver_sql("SELECT 1")
                return True
            except Exception as exc:  # noqa: BLE001
                if not unavailable(exc):
                    return False
        return False

    def export_files(self, plan: ExportPlan, folder: Path, *, alive: Callable[[], bool] = lambda: True,
                     on_page: Callable[[int], object] | None = None,
                     on_type: Callable[[int, str, int], bool] | None = None) -> list[dict] | None:
        """Writes ``{folder}/{Type}.ndjson`` for each of the plan's types that has resources; their
        ``{type, count}``, or None as soon as ``alive()`` (asked before every page) or ``on_type``
        (after every type) says False. ``on_page(rows)`` after every page."""
        folder.mkdir(parents=True, exist_ok=True)
        output = []
        for number, resource_type in enumerate(plan.types, start=1):
            path = folder / f"{resource_type}.ndjson"
            count = self._write_type(plan, resource_type, path, alive, on_page)
            if count is None:
                return None
            if count:
                output.append({"type": resource_type, "count": count})
            else:
                path.unlink(missing_ok=True)
            if on_type is not None and not on_type(number, resource_type, count):
                return None
        return output

    def count(self, plan: ExportPlan) -> dict[str, int]:
        """How many resources of each of the plan's types the export will write."""
        counts = {}
        with self.ctx.database.read() as conn:
            for resource_type in plan.types:
                query = self._query(plan, resource_type).with_only_columns(func.count()).order_by(None)
                counts[resource_type] = conn.execute(query).scalar_one()
        return counts

    def _query(self, plan: ExportPlan, resource_type: str):
        where = [build_where(resource_type, [], self.ctx.base_url, plan.visibility),
                 resource.c.last_updated <= plan.transaction_time]
        if plan.since is not None:
            where.append(resource.c.last_updated >= plan.since)
        if resource_type in plan.type_filters:
            where.append(type_filters.clause(self.ctx.search_parameters, resource_type,
                                             plan.type_filters[resource_type], self.ctx.base_url))
        if plan.kind != "system":
            inside = compartment(self.ctx)
            if resource_type == "Patient":
                if plan.members is not None:
                    where.append(resource.c.fhir_id.in_(plan.members))
            elif resource_type in inside:
                ref = INDEX_TABLES["reference"]
                refers = [ref.c.pid == resource.c.pid, ref.c.param.in_(inside[resource_type]),
                          ref.c.target_type == "Patient"]
                if plan.members is not None:
                    refers.append(ref.c.target_id.in_(plan.members))
                where.append(exists(select(1).where(*refers)))
            else:
                where.append(self._referenced_from_the_patients(plan, resource_type))
        return select(resource.c.pid, resource.c.content).where(*where).order_by(resource.c.pid)

    def _referenced_from_the_patients(self, plan: ExportPlan, resource_type: str):
        """A resource of a ``REFERENCED_TYPES`` type that the export's Patients, or their compartment's
        resources, refer to."""
        ref = INDEX_TABLES["reference"]
        to_patient, pointer, patient = ref.alias("to_patient"), ref.alias("pointer"), resource.alias("patient")
        parameters = sorted({p for params in compartment(self.ctx).values() for p in params})
        in_compartment = [to_patient.c.target_type == "Patient", to_patient.c.param.in_(parameters)]
        patients = [patient.c.resource_type == "Patient", patient.c.deleted == false()]
        if plan.members is not None:
            in_compartment.append(to_patient.c.target_id.in_(plan.members))
            patients.append(patient.c.fhir_id.in_(plan.members))
        sources = select(to_patient.c.pid).where(*in_compartment).union(select(patient.c.pid).where(*patients))
        return resource.c.fhir_id.in_(select(pointer.c.target_id).where(
            pointer.c.target_type == resource_type, pointer.c.pid.in_(sources)))

    def record_disclosures(self, plan: ExportPlan) -> int:
        """One access-log entry (action ``export``) per patient whose record the export covered: the
        Group's members, or every Patient the token may see; how many. Written a page at a time."""
        if not any(t == "Patient" or t in compartment(self.ctx) for t in plan.types):
            return 0
        query = select(resource.c.pid, resource.c.fhir_id).where(
            build_where("Patient", [], self.ctx.base_url, plan.visibility),
            resource.c.last_updated <= plan.transaction_time).order_by(resource.c.pid)
        if plan.members is not None:
            query = query.where(resource.c.fhir_id.in_(plan.members))
        count, after = 0, 0
        while True:
            with self.ctx.database.read() as conn:
                rows = conn.execute(query.where(resource.c.pid > after).limit(self.page_size)).all()
            self.ctx.audit.write([
                Access(action="export", resource_type=None, query=plan.request, outcome=200, client_id=plan.client_id,
                       account_id=plan.account_id, fhir_user=plan.fhir_user, patient_id=row.fhir_id) for row in rows])
            count += len(rows)
            if len(rows) < self.page_size:
                return count
            after = rows[-1].pid

    def _write_type(self, plan: ExportPlan, resource_type: str, path: Path, alive: Callable[[], bool],
                    on_page: Callable[[int], object] | None) -> int | None:
        """Writes one type's file page by page; its line count, or None once ``alive()`` says False."""
        query = self._query(plan, resource_type)
        count, after = 0, 0
        with path.open("w", encoding="utf-8") as out:
            while True:
                if not alive():
                    return None
                with self.ctx.database.read() as conn:
                    rows = conn.execute(query.where(resource.c.pid > after).limit(self.page_size)).all()
                for row in rows:
                    out.write(row.content)
                    out.write("\n")
                count += len(rows)
                if on_page is not None and rows:
                    on_page(len(rows))
                if len(rows) < self.page_size:
                    return count
                after = rows[-1].pid


def exporter(ctx: FhirContext | None = None) -> Exporter:
    extensions = current_app.extensions
    if "bulk_export" not in extensions:
        extensions["bulk_export"] = Exporter(ctx or extensions["fhirportal"])
    return extensions["bulk_export"]


# ---------------------------------------------------------------------- kick-off
def require_export_rights(auth: Authorization) -> None:
    """system/ tokens, or user/ tokens with read and search on every type; never patient/ tokens."""
    access = auth.access
    if access is None:
        return
    scopes = access.scopes.resource_scopes
    if access.context == "system" and any(s.context == "system" for s in scopes):
        return
    if access.context == "user" and any(s.context == "user" and s.resource_type == "*" and "r" in s.permissions
                                        and "s" in s.permissions for s in scopes):
        return
    raise Forbidden("Bulk Data $export needs a system/ scope (backend services) or a user/ scope with read and "
                    "search on every type (e.g. user/*.rs)")


def _prefers_async(req: Request) -> bool:
    values = ",".join(req.headers.getlist("Prefer"))
    return any(part.strip().lower() == "respond-async" for chunk in values.split(",") for part in chunk.split(";"))


def _types(ctx: FhirContext, req: Request, auth: Authorization, kind: str) -> tuple[str, ...]:
    requested = [t for v in req.args.getlist("_type") for t in split_or(v) if t.strip()]
    unknown = [t for t in requested if t not in ctx.resource_types]
    if unknown:
        raise BadRequest(f"_type names types this server does not store: {', '.join(unknown)}", expression="_type")
    allowed = allowed_types(ctx, kind)
    if requested:
        for resource_type in requested:
            auth.require(resource_type, "search-type")
        return tuple(t for t in dict.fromkeys(requested) if t in allowed)
    access = auth.access
    return tuple(t for t in allowed if access is None or access.permits(t, "search-type"))


def _members(ctx: FhirContext, auth: Authorization, group_id: str) -> tuple[str, ...]:
    auth.require("Group", "read")
    return group_members(ctx, group_id, auth.visibility("read"))


def kick_off(ctx: FhirContext, req: Request, auth: Authorization, kind: str, group_id: str | None = None
             ) -> FhirResponse:
    require_export_rights(auth)
    if not _prefers_async(req):
        raise BadRequest("Bulk Data $export is asynchronous: send 'Prefer: respond-async'")
    output_format = req.args.get("_outputFormat", NDJSON)
    if output_format not in OUTPUT_FORMATS:
        raise BadRequest(f"_outputFormat {output_format!r} is not supported: use application/fhir+ndjson",
                         expression="_outputFormat")
    types = _types(ctx, req, auth, kind)
    filters = type_filters.parse_type_filters(ctx.search_parameters, req.args.getlist(type_filters.PARAMETER),
                                              types, ctx.base_url)
    since = since_instant(req)
    members = _members(ctx, auth, group_id) if kind == "group" else None
    access = auth.access
    query = req.query_string.decode("utf-8", "replace")
    path = req.path[len(ctx.settings.base_path):]
    plan = ExportPlan(secrets.token_urlsafe(24), kind, types, since, clock.now(), members,
                      auth.visibility("search-type"), secrets.token_urlsafe(16), filters,
                      path.lstrip("/") + (f"?{query}" if query else ""),
                      access.client_id if access is not None else "", access.account_id if access is not None else None,
                      access.fhir_user if access is not None else None)
    with ctx.database.write() as conn:
        conn.execute(export_job.insert().values(
            id=plan.job_id, status="accepted", kind=kind, request=f"{ctx.base_url}/{plan.request}",
            types=json.dumps(types), since=since, group_id=group_id, transaction_time=plan.transaction_time,
            created=clock.now(), progress="accepted", client_id=plan.client_id,
            members=json.dumps(members) if members is not None else None, type_filter=json.dumps(filters),
            scope=access.scopes.text if access is not None else None,
            patient=access.patient if access is not None else None,
            organization=access.organization if access is not None else None,
            account_id=plan.account_id, fhir_user=plan.fhir_user,
            worker=plan.worker, heartbeat=clock.now()))
    exporter(ctx).purge_expired()
    exporter(ctx).resume_stale()
    exporter(ctx).start(plan)
    return FhirResponse(202, information(f"Export {plan.job_id} accepted"),
                        {"Content-Location": f"{ctx.base_url}/$export-status/{plan.job_id}"})


def system_export(ctx: FhirContext, req: Request, auth: Authorization, resource_type: str | None,
                  fhir_id: str | None) -> FhirResponse:
    return kick_off(ctx, req, auth, "system")


def patient_export(ctx: FhirContext, req: Request, auth: Authorization, resource_type: str | None,
                   fhir_id: str | None) -> FhirResponse:
    return kick_off(ctx, req, auth, "patient")


def group_export(ctx: FhirContext, req: Request, auth: Authorization, resource_type: str | None,
                 fhir_id: str | None) -> FhirResponse:
    return kick_off(ctx, req, auth, "group", fhir_id)


# ---------------------------------------------------------------------- status and files
def _owned_job(job_id: str):
    """The caller's job (bearer token required), or 404 (unknown, cancelled, or another client's)."""
    ctx = current_app.extensions["fhirportal"]
    access = authenticate(ctx.tokens, ctx.access_policy, request).access
    job = exporter(ctx).job(job_id) if _JOB_ID.match(job_id) else None  # (PostgreSQL refuses a NUL in a compare)
    if job is None or job.status == "cancelled" or job.client_id != access.client_id:
        raise NotFound(f"No export {job_id} (unknown, cancelled or deleted)")
    return ctx, job


def _json(status: int, body: dict, headers: dict | None = None, media_type: str = "application/json") -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, mimetype=media_type)


def build_blueprint(base_path: str) -> Blueprint:
    bp = Blueprint("bulk_export", __name__, url_prefix=base_path)

    @bp.route("/$export-status/<job_id>", methods=["GET", "DELETE"])
    def export_status(job_id: str):
        ctx, job = _owned_job(job_id)
        if request.method == "DELETE":
            exporter(ctx).cancel(job_id)
            return _json(202, information(f"Export {job_id} cancelled"), media_type="application/fhir+json")
        if Exporter.is_stale(job) and exporter(ctx).resume_stale(job_id):
            job = exporter(ctx).job(job_id)
        if job.status in RUNNING:
            return Response(status=202, headers={"X-Progress": job.progress or job.status,
                                                 "Retry-After": str(RETRY_AFTER_SECONDS)})
        if job.status == "failed":
            return _json(500, json.loads(job.error), media_type="application/fhir+json")
        base = ctx.base_url
        manifest = {
            "transactionTime": clock.as_instant(job.transaction_time),
            "request": job.request,
            "requiresAccessToken": True,
            "output": [{"type": o["type"], "url": f"{base}/$export-file/{job_id}/{o['type']}.ndjson",
                        "count": o["count"]} for o in json.loads(job.output or "[]")],
            "error": [],
        }
        expires = http_date(clock.ensure_utc(job.created) + RETENTION)
        return _json(200, manifest, {"Expires": expires})

    @bp.route("/$export-file/<job_id>/<file_name>", methods=["GET"])
    def export_file(job_id: str, file_name: str):
        ctx, job = _owned_job(job_id)
        match = _FILE_NAME.match(file_name)
        exported = {o["type"] for o in json.loads(job.output or "[]")} if job.status == "completed" else set()
        if match is None or match.group(1) not in exported:
            raise NotFound(f"Export {job_id} has no file {file_name}")
        path = exporter(ctx).job_directory(job_id) / file_name
        if not path.is_file():
            raise NotFound(f"Export {job_id} has no file {file_name} (any more)")
        return send_file(path.resolve(), mimetype=NDJSON, conditional=False)

    return bp
