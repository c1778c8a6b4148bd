"""REST throughput and latency of fhirportal under gunicorn, against its own physical ceiling.

For each backend (SQLite file, PostgreSQL database ``fhirportal_bench``) this script loads
synthetic data with ``fhirportal load``, starts ``gunicorn wsgi:app`` on 127.0.0.1 with the
benchmark routes enabled, and measures, with a multi-process keep-alive load generator:

  (a) FHIR reads        GET  /fhir/Patient/{id}, /fhir/Observation/{id} with a system/*.cruds token
  (b) authorized reads  the same reads, each with a patient/*.rs token of the patient whose
                        compartment holds the resource (token lookup, scope check, compartment SQL)
  (c) unauthorized      GET  /_bench/open/Patient/{id}, …: the same FHIR read with no token check,
                        no compartment SQL and no access log (prices authorization + audit)
  (d) the ceiling       GET  /_bench/raw/Patient/{id}, /_bench/raw/Observation/{id}  (same ids, no
                        FHIR logic and no authorization)
  (e) creates           POST /fhir/Observation  (valid bodies referencing existing patients)

and prints requests/s and p50/p95/p99 latency per operation, the ratio read / ceiling and the
authorized read's ratio to the ceiling and to the system-token read.

    .venv/bin/python benchmarks/rest_benchmark.py [--backend sqlite|postgresql|both]
        [--patients N] [--duration S] [--concurrency C] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import queue as queue_module
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository, for the shared benchmark helpers
    sys.path.insert(0, str(REPO))

from benchmarks.processes import descendants, serving, ticks  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BENCH_DB = "fhirportal_bench"
LOCK_KEY = 0x66687062656E6368  # pg advisory lock held by a run while it owns BENCH_DB
LOCK_TIMEOUT_S = 900.0
ADMIN_USERS = ("postgres", "root")
TARGET_RATIO = 0.6
AUTHORIZATION_OVERHEAD_TARGET = 0.2
AUTHORIZED_PATIENTS = 400  # patients that get a token (and whose resources the authorized reads read)
PATIENT_SCOPE = "launch/patient patient/*.rs"
SYSTEM_SCOPE = "system/*.cruds"
NOISY_CORES = 0.2  # CPU used by other processes during a measurement above which it is flagged
WARMUP_S = 2.0
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
STARTUP_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------------- data
def _fallback_iter_large(patients: int, obs_per_patient: int):
    """Minimal synthetic data when ``fixtures.generate`` is not available: Patients, then
    Observations (vital signs) referencing them."""
    rng = random.Random(42)
    families = ["Smith", "Jones", "Garcia", "Müller", "Nguyen", "Okafor", "Rossi", "Kowalski"]
    givens = ["Ana", "Ben", "Chloé", "Dev", "Eli", "Fatima", "Goran", "Hana"]
    for i in range(patients):
        yield {
            "resourceType": "Patient",
            "id": f"bench-pat-{i}",
            "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{i:07d}"}],
            "name": [{"family": rng.choice(families), "given": [rng.choice(givens)]}],
            "gender": rng.choice(["male", "female", "other", "unknown"]),
            "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
    for i in range(patients):
        for j in range(obs_per_patient):
            yield _observation(f"bench-pat-{i}", rng, fhir_id=f"bench-obs-{i}-{j}")


def _observation(patient_id: str, rng: random.Random, fhir_id: str | None = None) -> dict:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
                 "text": "Heart rate"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                             f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        "valueQuantity": {"value": rng.randint(45, 140), "unit": "beats/minute",
                          "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    if fhir_id:
        body["id"] = fhir_id
    return body


def _iter_large():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        from fixtures.generate import iter_large
    except ImportError:
        return _fallback_iter_large, "built-in fallback generator"
    return iter_large, "fixtures.generate.iter_large"


def write_ndjson(directory: Path, patients: int, obs_per_patient: int) -> tuple[dict[str, int], str]:
    """One ndjson file per resource type, prefixed by order of first appearance (dependency order)."""
    generator, source = _iter_large()
    handles: dict[str, object] = {}
    counts: dict[str, int] = {}
    with ExitStack() as stack:
        for item in generator(patients, obs_per_patient):
            kind = item["resourceType"]
            if kind not in handles:
                path = directory / f"{len(handles):02d}-{kind}.ndjson"
                handles[kind] = stack.enter_context(path.open("w", encoding="utf-8"))
                counts[kind] = 0
            handles[kind].write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            counts[kind] += 1
    return counts, source


# ------------------------------------------------------------------------------------------ backends
class Backend:
    name = ""
    url = ""

    def prepare(self) -> None: ...

    def settle(self) -> None:
        """After the load: leave no pending maintenance to run during the measurements."""

    def cleanup(self) -> None: ...


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, workdir: Path):
        self.path = workdir / "bench.db"
        self.url = f"sqlite:///{self.path}"

    def prepare(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def settle(self) -> None:
        import sqlite3

        with sqlite3.connect(self.path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def cleanup(self) -> None:
        self.prepare()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self):
        self.user: str | None = None
        self.admin = None  # held for the whole run: it owns the advisory lock

    def _connect_admin(self):
        import psycopg

        errors = []
        for user in ADMIN_USERS:
            try:
                conn = psycopg.connect(f"postgresql://{user}@{HOST}:5432/postgres", autocommit=True,
                                       connect_timeout=10)
            except psycopg.Error as exc:
                errors.append(f"{user}: {exc}")
                continue
            self.user = user
            return conn
        raise RuntimeError("cannot connect to PostgreSQL on 127.0.0.1:5432: " + "; ".join(errors))

    def prepare(self) -> None:
        # Two runs at once would drop each other's database: serialise them on a session lock.
        self.admin = self._connect_admin()
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        announced = False
        while not self.admin.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"another rest_benchmark run held {BENCH_DB} for {LOCK_TIMEOUT_S:g} s")
            if not announced:
                print(f"waiting for another rest_benchmark run to release {BENCH_DB} ...", flush=True)
                announced = True
            time.sleep(2)
        self.admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
        self.url = f"postgresql://{self.user}@{HOST}:5432/{BENCH_DB}"

    def settle(self) -> None:
        import psycopg

        # VACUUM ANALYZE now, so autovacuum does not wake up in the middle of a measurement.
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("VACUUM (ANALYZE)")
            with suppress(psycopg.Error):  # needs superuser (or pg_checkpoint); harmless to skip
                conn.execute("CHECKPOINT")

    def cleanup(self) -> None:
        if self.admin is None:
            return
        try:
            if self.url:  # only once the lock was ours
                self.admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        finally:
            self.admin.close()  # ends the session, which releases the advisory lock
            self.admin = None


# ------------------------------------------------------------------------------------------ commands
def _command(script: str, module_code: str) -> list[str]:
    path = BIN / script
    return [str(path)] if path.exists() else [sys.executable, "-c", module_code]


def load_data(url: str, directory: Path, expected: int) -> dict:
    cmd = _command("fhirportal", "from fhirportal.cli import main; main()")
    cmd += ["--database-url", url, "load", str(directory), "--quiet"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=600 + expected * 0.05)
    elapsed = time.perf_counter() - started
    match = re.search(r"loaded (\d+) resources", proc.stderr)
    loaded = int(match.group(1)) if match else 0
    if proc.returncode != 0 or loaded == 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        if loaded == 0:
            raise RuntimeError(f"fhirportal load failed (exit {proc.returncode})")
        print(f"WARNING: load exited {proc.returncode}; continuing with {loaded} resources", file=sys.stderr)
    return {"resources": loaded, "seconds": round(elapsed, 2), "per_second": round(loaded / elapsed, 1)}


def existing_ids(url: str, resource_type: str) -> list[str]:
    from sqlalchemy import select

    from fhirportal.store.database import Database
    from fhirportal.store.schema import resource

    database = Database(url)
    try:
        with database.read() as conn:
            return list(conn.execute(
                select(resource.c.fhir_id).where(resource.c.resource_type == resource_type,
                                                 resource.c.deleted.is_(False))
                .order_by(resource.c.pid)
            ).scalars())
    finally:
        database.dispose()


def compartment_subjects(url: str, observation_ids: list[str]) -> dict[str, str]:
    """Observation id -> the id of the Patient its ``subject`` points at, for the Observations that
    patient may see (the portal shows lab results only once tagged shared-with-patient)."""
    from sqlalchemy import and_, exists, select

    from fhirportal.store.database import Database
    from fhirportal.store.schema import INDEX_TABLES, resource

    ref, token = INDEX_TABLES["reference"], INDEX_TABLES["token"]

    def has_token(param: str, system: str, code: str):
        return exists(select(1).where(token.c.pid == resource.c.pid, token.c.param == param,
                                      token.c.system == system, token.c.code == code))

    lab = has_token("category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")
    shared = has_token("_tag", "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "shared-with-patient")
    wanted = set(observation_ids)
    database = Database(url)
    try:
        with database.read() as conn:
            rows = conn.execute(
                select(resource.c.fhir_id, ref.c.target_id).join(ref, ref.c.pid == resource.c.pid).where(
                    resource.c.resource_type == "Observation", ref.c.param == "subject",
                    ref.c.target_type == "Patient", ~and_(lab, ~shared))).all()
    finally:
        database.dispose()
    return {fhir_id: target for fhir_id, target in rows if fhir_id in wanted}


def mint_tokens(url: str, patient_ids: list[str]) -> tuple[str, dict[str, str]]:
    """A system token, and a patient token per patient, stored in the benchmark database."""
    from fhirportal.fhir.resource_types import SUPPORTED_TYPES
    from fhirportal.smart.tokens import TokenStore
    from fhirportal.store.database import Database

    database = Database(url)
    try:
        tokens = TokenStore(database, SUPPORTED_TYPES)
        system = tokens.mint(client_id="rest-benchmark", scope=SYSTEM_SCOPE, expires_in=24 * 3600)
        with database.write() as conn:
            patients = {pid: tokens.issue(conn, client_id="rest-benchmark-app", scope=PATIENT_SCOPE, account_id=None,
                                          context={"patient": pid, "fhirUser": f"Patient/{pid}"},
                                          expires_in=24 * 3600)["access_token"]
                        for pid in patient_ids}
    finally:
        database.dispose()
    return system, patients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """``gunicorn wsgi:app`` (or another WSGI ``app``) on a free local port, 2 gthread workers x 4 threads,
    run from the repository root (its ``gunicorn.conf.py``); stopped (and waited for) by ``stop()``."""

    def __init__(self, url: str, workdir: Path, app: str = "wsgi:app", ready_path: str = "/fhir/metadata"):
        self.port = free_port()
        self.ready_path = ready_path
        self.log = workdir / f"gunicorn-{self.port}.log"
        env = dict(os.environ, FHIRPORTAL_DATABASE_URL=url,
                   FHIRPORTAL_BASE_URL=f"http://{HOST}:{self.port}/fhir", FHIRPORTAL_BENCHMARK_ROUTES="1")
        cmd = _command("gunicorn", "from gunicorn.app.wsgiapp import run; run()") + [
            app, "--bind", f"{HOST}:{self.port}", "--workers", str(GUNICORN_WORKERS),
            "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
            "--error-logfile", str(self.log), "--log-level", "warning",
        ]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self) -> None:
        if not serving(HOST, self.port, self.proc, STARTUP_TIMEOUT_S, self.ready_path):
            raise RuntimeError(f"gunicorn did not become ready; log:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of master and workers
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)


# ------------------------------------------------------------------------------------ CPU accounting
def _bench_backends() -> list[int]:
    """PostgreSQL backend processes serving the bench database (their cmdline names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read(200)
            except OSError:
                continue
            if (cmdline.startswith(b"postgres:") and BENCH_DB.encode() in cmdline
                    and b"autovacuum" not in cmdline):
                pids.append(int(entry))
    return pids


class CpuWindow:
    """CPU over a measurement window: per gunicorn worker, the bench database's PostgreSQL backends,
    and "other" = machine-wide busy time not spent by the benchmark's own processes (gunicorn, the
    clients, those backends). Other load, including autovacuum, skews the figures."""

    def __init__(self, workers: list[int], own: list[int]):
        self.workers = workers
        self.own = own
        self.start = self._sample()

    def _sample(self):
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                values = [int(v) for v in handle.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = sum(values) - values[3] - values[4]  # minus idle and iowait
        backends = _bench_backends()
        pids = set(self.workers) | set(self.own) | set(backends)
        return time.monotonic(), busy, {pid: ticks(pid) for pid in pids}, set(backends)

    def finish(self) -> dict:
        end = self._sample()
        if end is None or self.start is None:
            return {"other_cpu_cores": None, "server_cpu_cores": None, "db_cpu_cores": None}
        (t0, busy0, ticks0, _), (t1, busy1, ticks1, backends) = self.start, end
        scale = os.sysconf("SC_CLK_TCK") * (t1 - t0)

        def cores(pids) -> float:
            return sum(ticks1.get(pid, 0) - ticks0.get(pid, 0) for pid in pids if pid in ticks1) / scale

        return {
            "other_cpu_cores": round(max(0.0, (busy1 - busy0) / scale - cores(ticks1)), 2),
            "server_cpu_cores": [round(cores([pid]), 2) for pid in self.workers],
            "db_cpu_cores": round(cores(backends), 2),
        }


# ------------------------------------------------------------------------------------ load generator
@dataclass
class Phase:
    label: str
    method: str
    paths: list[str]
    bodies: list[bytes] | None = None
    tokens: list[str | None] | str | None = None  # one per path, or one for all; None: no Authorization


def _client(index: int, port: int, phase: Phase, warmup: float, duration: float, reconnect: float,
            barrier, queue) -> None:
    """One client process: a persistent keep-alive connection looping over its shuffled requests.

    Every ``reconnect`` seconds (0: never) it opens a new connection, so that connections do not stay
    stuck unevenly on the gunicorn workers for the whole window (whichever worker wins the accept()
    race keeps the connection; the less busy worker tends to win the next one).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    rng = random.Random(1000 + index)
    base = {"Host": f"{HOST}:{port}", "Accept": "application/fhir+json"}
    if phase.bodies is not None:
        base["Content-Type"] = "application/fhir+json"
    bodies = phase.bodies if phase.bodies is not None else [None] * len(phase.paths)
    tokens = phase.tokens if isinstance(phase.tokens, list) else [phase.tokens] * len(phase.paths)
    requests = [(path, body, {**base, "Authorization": f"Bearer {token}"} if token else base)
                for path, body, token in zip(phase.paths, bodies, tokens, strict=True)]
    rng.shuffle(requests)
    method = phase.method
    latencies = array("d")
    errors: dict[str, int] = {}
    ok = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
    clock = time.perf_counter
    barrier.wait(timeout=60)
    cpu_start = time.process_time()
    start = clock()
    measure_from = start + warmup
    end = measure_from + duration
    n = len(requests)
    i = index * 7919 % n
    measuring = False
    next_reconnect = start + reconnect * rng.uniform(0.5, 1.5) if reconnect > 0 else float("inf")
    while True:
        t0 = clock()
        if t0 >= end:
            break
        if t0 >= next_reconnect:
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
            next_reconnect = t0 + reconnect * rng.uniform(0.5, 1.5)
        if not measuring and t0 >= measure_from:
            measuring = True
            cpu_start = time.process_time()
        path, body, headers = requests[i]
        i = i + 1 if i + 1 < n else 0
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
            if measuring:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
            continue
        if not measuring:
            continue
        if 200 <= status < 300:
            ok += 1
            latencies.append((clock() - t0) * 1000.0)
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1
    conn.close()
    queue.put((index, ok, errors, latencies.tobytes(), time.process_time() - cpu_start))


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = math.ceil(fraction * len(sorted_values) - 1e-9) - 1  # nearest-rank method
    rank = max(0, min(len(sorted_values) - 1, rank))
    return sorted_values[rank]


def run_phase(port: int, phase: Phase, concurrency: int, warmup: float, duration: float,
              server_pid: int, reconnect: float) -> dict:
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(concurrency + 1)  # the clients and this process start together
    queue = mp.Queue()
    procs = [mp.Process(target=_client, args=(i, port, phase, warmup, duration, reconnect, barrier, queue), daemon=True)
             for i in range(concurrency)]
    results = []
    try:
        for proc in procs:
            proc.start()
        barrier.wait(timeout=60)
        time.sleep(warmup)
        window = CpuWindow(descendants(server_pid), [server_pid, *(p.pid for p in procs)])
        time.sleep(duration)
        window_cpu = window.finish()
        deadline = time.monotonic() + 60 + warmup + duration + HTTP_TIMEOUT_S
        while len(results) < concurrency:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{phase.label}: load generator did not finish in time")
            try:
                results.append(queue.get(timeout=min(remaining, 1.0)))
            except queue_module.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"{phase.label}: a client process failed "
                                       f"(exit {dead[0].exitcode})") from None
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    ok = 0
    client_cpu = 0.0
    for _, count, errs, raw, cpu in results:
        ok += count
        values = array("d")
        values.frombytes(raw)
        latencies.extend(values)
        client_cpu += cpu
        for key, value in errs.items():
            errors[key] = errors.get(key, 0) + value
    latencies.sort()
    return {
        "operation": phase.label,
        "requests_per_s": round(ok / duration, 1),
        "ok": ok,
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p95_ms": round(_percentile(latencies, 0.95), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "errors": sum(errors.values()),
        "error_detail": errors,
        "client_cpu_share": round(client_cpu / (duration * (os.cpu_count() or 1)), 3),
        **window_cpu,
    }


# ---------------------------------------------------------------------------------------------- run
@dataclass
class BackendResult:
    backend: str
    data_source: str = ""
    load: dict = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    ratios: dict = field(default_factory=dict)
    authorized: dict = field(default_factory=dict)
    error: str | None = None


def build_phases(patient_ids: list[str], observation_ids: list[str], system_token: str | None = None,
                 patient_tokens: dict[str, str] | None = None, subjects: dict[str, str] | None = None) -> list[Phase]:
    """The measured operations. With ``patient_tokens`` (patient id -> token) also the authorized
    reads: each resource read with the token of the patient whose compartment holds it
    (``subjects``: Observation id -> patient id)."""
    rng = random.Random(7)
    create_paths = ["/fhir/Observation"] * 2000
    create_bodies = [json.dumps(_observation(rng.choice(patient_ids), rng), separators=(",", ":")).encode()
                     for _ in create_paths]
    patient_tokens = patient_tokens or {}
    subjects = subjects or {}
    own_patients = [i for i in patient_ids if i in patient_tokens]
    own_observations = [i for i in observation_ids if subjects.get(i) in patient_tokens]
    phases = [
        Phase("read Patient", "GET", [f"/fhir/Patient/{i}" for i in patient_ids], tokens=system_token),
        Phase("read Observation", "GET", [f"/fhir/Observation/{i}" for i in observation_ids], tokens=system_token),
        Phase("authorized Patient", "GET", [f"/fhir/Patient/{i}" for i in own_patients],
              tokens=[patient_tokens[i] for i in own_patients]),
        Phase("authorized Observation", "GET", [f"/fhir/Observation/{i}" for i in own_observations],
              tokens=[patient_tokens[subjects[i]] for i in own_observations]),
        Phase("unauthorized Patient", "GET", [f"/_bench/open/Patient/{i}" for i in own_patients]),
        Phase("unauthorized Observation", "GET", [f"/_bench/open/Observation/{i}" for i in own_observations]),
        Phase("ceiling Patient", "GET", [f"/_bench/raw/Patient/{i}" for i in patient_ids]),
        Phase("ceiling Observation", "GET", [f"/_bench/raw/Observation/{i}" for i in observation_ids]),
        Phase("create Observation", "POST", create_paths, create_bodies, tokens=system_token),
    ]
    return [p for p in phases if p.paths]


def _measure(server: Server, phase: Phase, args, *, quiet: bool = False) -> dict:
    figures = run_phase(server.port, phase, args.concurrency, args.warmup, args.duration, server.proc.pid,
                        args.reconnect)
    if any(key.startswith("5") for key in figures["error_detail"]):
        figures["server_log_tail"] = server.log_tail()[-2000:]
        print(f"server errors during {phase.label}; gunicorn log tail:\n"
              f"{figures['server_log_tail']}", file=sys.stderr, flush=True)
    print(f"  {'(again) ' if quiet else ''}{figures['operation']:<22} {figures['requests_per_s']:>9.1f} req/s  "
          f"p50 {figures['p50_ms']:.2f} ms  errors {figures['errors']}  "
          f"server CPU {_server_cpu(figures)}  other CPU {figures['other_cpu_cores']}", flush=True)
    return figures


def run_backend(backend: Backend, args, workdir: Path) -> BackendResult:
    result = BackendResult(backend.name)
    server: Server | None = None
    try:
        print(f"\n=== {backend.name}: preparing database", flush=True)
        backend.prepare()
        data_dir = workdir / f"data-{backend.name}"
        data_dir.mkdir()
        counts, result.data_source = write_ndjson(data_dir, args.patients, args.obs_per_patient)
        expected = sum(counts.values())
        print(f"generated {expected} resources with {result.data_source}: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        result.load = load_data(backend.url, data_dir, expected)
        print(f"loaded {result.load['resources']} resources in {result.load['seconds']} s "
              f"= {result.load['per_second']} resources/s (fhirportal load, incl. process start)", flush=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        backend.settle()
        patient_ids = existing_ids(backend.url, "Patient")
        observation_ids = existing_ids(backend.url, "Observation")
        if not patient_ids:
            raise RuntimeError("no Patient was loaded")
        system_token, patient_tokens = mint_tokens(backend.url, patient_ids[:AUTHORIZED_PATIENTS])
        subjects = compartment_subjects(backend.url, observation_ids)

        server = Server(backend.url, workdir)
        server.wait_ready()
        print(f"gunicorn wsgi:app on {HOST}:{server.port} ({GUNICORN_WORKERS} workers x "
              f"{GUNICORN_THREADS} gthreads); concurrency {args.concurrency}, "
              f"{args.warmup:g} s warm-up + {args.duration:g} s per operation, keep-alive connections "
              f"renewed every ~{args.reconnect:g} s", flush=True)
        phases = build_phases(patient_ids, observation_ids, system_token, patient_tokens, subjects)
        for phase in phases:
            result.results.append(_measure(server, phase, args))
        by_label = {r["operation"]: r["requests_per_s"] for r in result.results}
        phase_by_label = {p.label: p for p in phases}
        for kind in ("Patient", "Observation"):
            read, ceiling = by_label.get(f"read {kind}"), by_label.get(f"ceiling {kind}")
            authorized = by_label.get(f"authorized {kind}")
            unauthorized = by_label.get(f"unauthorized {kind}")
            if read is not None and ceiling:
                result.ratios[kind] = round(read / ceiling, 3)
            if authorized is not None and ceiling:
                result.authorized[kind] = {"authorized / ceiling": round(authorized / ceiling, 3),
                                           "authorized / system-token read": round(authorized / read, 3)
                                           if read else None,
                                           "overhead vs ceiling": round(ceiling / authorized - 1, 3)}
                if unauthorized:
                    overheads = [unauthorized / authorized - 1]
                    pair = (phase_by_label[f"unauthorized {kind}"], phase_by_label[f"authorized {kind}"])
                    for round_number in range(1, args.rounds):  # alternate the order: drift cancels out
                        rates = {p.label: _measure(server, p, args, quiet=True)["requests_per_s"]
                                 for p in (pair if round_number % 2 else pair[::-1])}
                        overheads.append(rates[pair[0].label] / rates[pair[1].label] - 1)
                    result.authorized[kind]["overhead vs unauthorized read"] = round(statistics.median(overheads), 3)
                    result.authorized[kind]["overhead per round"] = [round(o, 3) for o in overheads]
    except Exception as exc:  # report and go on with the next backend
        result.error = f"{type(exc).__name__}: {exc}"
        if server is not None:
            result.error += f"\ngunicorn log:\n{server.log_tail()}"
        print(f"ERROR ({backend.name}): {result.error}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
        try:
            backend.cleanup()
        except Exception as exc:
            print(f"WARNING: cleanup of {backend.name} failed: {exc}", file=sys.stderr)
    return result


def _server_cpu(figures: dict) -> str:
    """Cores used by each gunicorn worker, e.g. ``0.93+0.88``: a lopsided split means the
    keep-alive connections landed unevenly on the workers."""
    workers = figures.get("server_cpu_cores")
    return "n/a" if not workers else "+".join(f"{c:.2f}" for c in workers)


def print_table(result: BackendResult) -> None:
    print(f"\n--- {result.backend} ---")
    if result.load:
        print(f"load: {result.load['resources']} resources, {result.load['per_second']} resources/s")
    if result.error:
        print(f"FAILED: {result.error.splitlines()[0]}")
    if not result.results:
        return
    print(f"{'operation':<22} {'requests/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}"
          f" {'server CPU':>11} {'other CPU':>10}")
    noisy = []
    for r in result.results:
        detail = ""
        if r["error_detail"]:
            detail = "  (" + ", ".join(f"{k}: {v}" for k, v in sorted(r["error_detail"].items())) + ")"
        other = r.get("other_cpu_cores")
        shown = "n/a" if other is None else f"{other:.2f}"
        if other is not None and other > NOISY_CORES:
            noisy.append(r["operation"])
            shown += "!"
        print(f"{r['operation']:<22} {r['requests_per_s']:>11.1f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['errors']:>7} {_server_cpu(r):>11} {shown:>10}{detail}")
    for kind, ratio in result.ratios.items():
        verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"read / ceiling ({kind}): {ratio:.2f}  (target >= {TARGET_RATIO})  {verdict}")
    for kind, figures in result.authorized.items():
        print(f"authorized read ({kind}, patient token): {figures['authorized / ceiling']:.2f} of the "
              f"unauthenticated ceiling (overhead {figures['overhead vs ceiling']:.0%}), "
              f"{figures['authorized / system-token read'] or 0:.2f} of the system-token read")
        overhead = figures.get("overhead vs unauthorized read")
        if overhead is not None:
            verdict = "OK" if overhead <= AUTHORIZATION_OVERHEAD_TARGET else "ABOVE TARGET"
            rounds = figures["overhead per round"]
            spread = f", median of {len(rounds)} alternating rounds: " + " ".join(f"{o:.0%}" for o in rounds) \
                if len(rounds) > 1 else ""
            print(f"authorization + audit cost ({kind}): {overhead:.0%} over the same read without them"
                  f"{spread} (target <= {AUTHORIZATION_OVERHEAD_TARGET:.0%})  {verdict}")
    share = max(r["client_cpu_share"] for r in result.results)
    print(f"load generator CPU: up to {share:.0%} of the machine's {os.cpu_count()} cores; "
          f"server CPU = cores per gunicorn worker; other CPU = cores used by unrelated processes")
    if noisy:
        print(f"WARNING: other processes used > {NOISY_CORES} cores during: {', '.join(noisy)}; "
              f"those figures (and ratios built on them) are unreliable, re-run on a quiet machine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--obs-per-patient", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds of requests before each measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument("--reconnect", type=float, default=1.0,
                        help="each client reopens its keep-alive connection about every S seconds, so "
                             "connections spread over the gunicorn workers (0: never)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="measure each authorized read and its unauthorized twin this many times, "
                             "alternating, and report the median overhead (the machine's drift is ±10%%)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.patients < 1 or args.duration <= 0 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--patients, --duration, --concurrency and --rounds must be positive")

    # SIGTERM (e.g. a timeout wrapper) unwinds like Ctrl-C, so the finally blocks clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results: list[BackendResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="fhirportal-bench-"))
    try:
        for name in names:
            backend = SqliteBackend(workdir) if name == "sqlite" else PostgresBackend()
            results.append(run_backend(backend, args, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n=== fhirportal REST benchmark: {args.patients} patients x {args.obs_per_patient} observations, "
          f"concurrency {args.concurrency}, {args.duration:g} s per operation ===")
    for result in results:
        print_table(result)
    if args.json:
        payload = {
            "settings": {"patients": args.patients, "obs_per_patient": args.obs_per_patient,
                         "duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency,
                         "reconnect_s": args.reconnect,
                         "gunicorn_workers": GUNICORN_WORKERS, "gunicorn_threads": GUNICORN_THREADS,
                         "cpu_count": os.cpu_count(), "target_ratio": TARGET_RATIO},
            "backends": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"\nfigures written to {args.json}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
