"""A load test of fhirportal as a practice uses it: patient apps, the EHR and portal staff at once.

It prepares a fresh database (a temporary SQLite file, or with ``--backend postgresql`` a scratch
database ``fhirportal_loadtest`` on 127.0.0.1:5432 that it creates and drops; never ``test``),
loads the demo practice (``fhirportal load fixtures/demo`` and ``fhirportal accounts load
fixtures/demo-accounts.json``), mints tokens in that database as the token endpoint would, starts
``gunicorn wsgi:app`` on 127.0.0.1 (2 gthread workers by default) and runs locust headless against
it for ``--duration`` seconds (users in ``benchmarks/load_test_locustfile.py``):

- patient apps (most users): ``GET Patient/{id}`` and the compartment searches
  ``Observation?patient=…&category=laboratory``, ``Condition``, ``MedicationStatement``,
  ``AllergyIntolerance``, ``Immunization``, ``Appointment`` with a ``patient/*.rs`` token;
- the EHR: transaction Bundles with a conditional create and a conditional update of lab
  Observations (by identifier, subject by MRN) with a backend-services ``system/`` token;
- the demo nurse: ``$portal-status`` of demo patients, now and then ``$portal-invite`` and
  ``$portal-cancel`` of a patient of her own, with a user token.

Users are weighted 8 : 1 : 1 (patient app : EHR : nurse); each waits ``--think`` seconds on average
(uniformly 0.5-1.5 times that) between requests, so the offered load grows with ``--users``;
``--think 0`` drives the server flat out (its saturation throughput).

It prints one table — per request kind and in total: requests, requests/s, p50/p95/p99 latency,
errors and error rate — the CPU used (gunicorn, the database's PostgreSQL backends, locust, the
rest of the machine) and PASS/FAIL for the targets: no errors, p95 under 100 ms overall and for
every kind at the throughput sustained. Exit code 0 when it measured (even on FAIL), 1 when it
could not run. Everything is on loopback, bounded in time (``--duration``) and in requests
(``--max-requests``), and gunicorn, locust, the database and the temporary files are cleaned up on
exit, on error and on Ctrl-C.

    .venv/bin/python benchmarks/load_test.py [--backend sqlite|postgresql] [--duration 60] [--users 40]
        [--think 0.25] [--workers 2] [--threads 4] [--max-requests 200000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository, for the shared benchmark helpers
    sys.path.insert(0, str(REPO))

from benchmarks import storage  # noqa: E402
from benchmarks.processes import descendants, serving, ticks  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
LOCUSTFILE = Path(__file__).resolve().parent / "load_test_locustfile.py"
DEMO = REPO / "fixtures" / "demo"
DEMO_ACCOUNTS = REPO / "fixtures" / "demo-accounts.json"
MRN_SYSTEM = "https://fhirportal.dev/fhir/sid/mrn"
PG_DATABASE = "fhirportal_loadtest"
PG_ADMIN_URL = f"postgresql://postgres@{HOST}:5432/postgres"
PG_LOCK_KEY = 0x666C6F64  # advisory lock (with the database name's hash) a run holds while it owns its database
PATIENT_SCOPE = "launch/patient patient/*.rs"
EHR_SCOPE = "system/Observation.crus system/Patient.rs"
STAFF_SCOPE = "openid fhirUser user/*.rs"
STAFF_USER = "nurse"
TARGET_P95_MS = 100.0
NOISY_CORES = 0.25  # CPU used by other processes during the run above which the figures are flagged
STARTUP_TIMEOUT_S = 60.0
TOKEN_LIFETIME_S = 6 * 3600
KIND_ORDER = ["read Patient/{id}", "search Observation?patient&category=laboratory", "search Condition?patient",
              "search MedicationStatement?patient", "search AllergyIntolerance?patient", "search Immunization?patient",
              "search Appointment?patient", "transaction (EHR push)", "$portal-status", "$portal-invite",
              "$portal-cancel"]


class Interrupted(Exception):
    """SIGTERM: stop like Ctrl-C, cleaning up on the way out."""


def _on_sigterm(_signum, _frame):
    raise Interrupted("terminated")


# ------------------------------------------------------------------------------------------ database
class Sqlite:
    name = "sqlite"

    def __init__(self, workdir: Path):
        self.path = workdir / "loadtest.db"
        self.url = f"sqlite:///{self.path}"
        self.db_name = None

    def prepare(self) -> None:
        pass

    def settle(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def cleanup(self) -> None:
        pass  # the file is in the work directory, removed with it


class Postgres:
    name = "postgresql"

    def __init__(self, admin_url: str, db_name: str):
        from sqlalchemy.engine import make_url

        self.admin_url = make_url(admin_url).set(drivername="postgresql")  # as libpq (psycopg) spells it
        self.db_name = db_name
        self.url = ""
        self.admin = None  # held for the whole run: its session owns the advisory lock

    def prepare(self) -> None:
        import psycopg

        self.admin = psycopg.connect(self.admin_url.render_as_string(hide_password=False), autocommit=True,
                                     connect_timeout=10)
        # Two runs on one scratch database would drop it under each other: the second waits.
        deadline = time.monotonic() + 600
        lock = "SELECT pg_try_advisory_lock(%s, hashtext(%s))"
        if not self.admin.execute(lock, (PG_LOCK_KEY, self.db_name)).fetchone()[0]:
            print(f"waiting for another load test run to release {self.db_name} ...", flush=True)
            while not self.admin.execute(lock, (PG_LOCK_KEY, self.db_name)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another load test held {self.db_name} for 10 minutes")
                time.sleep(2)
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{self.db_name}"')
        self.url = self.admin_url.set(database=self.db_name).render_as_string(hide_password=False)

    def settle(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("VACUUM (ANALYZE)")

    def cleanup(self) -> None:
        if self.admin is None:
            return
        try:
            if self.url:
                self.admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            self.admin.close()  # releases the advisory lock
            self.admin = None


# ------------------------------------------------------------------------------------------ the demo
def _command(script: str, module_code: str) -> list[str]:
    path = BIN / script
    return [str(path)] if path.exists() else [sys.executable, "-c", module_code]


def _fhirportal(url: str, *args: str) -> str:
    cmd = _command("fhirportal", "from fhirportal.cli import main; main()") + ["--database-url", url, *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stderr + done.stdout


def demo_patients() -> tuple[dict[str, str], list[str]]:
    """The demo patients (id -> MRN), and those staff may invite in the test: with an email address and
    a date of birth on file, and no portal account in the demo accounts."""
    with_account = set()
    for account in json.loads(DEMO_ACCOUNTS.read_text(encoding="utf-8"))["accounts"]:
        with_account.update(account.get("patients", []))
    mrns, invitable = {}, []
    for path in sorted(DEMO.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        for entry in bundle.get("entry", []):
            patient = entry["resource"]
            if patient["resourceType"] != "Patient":
                continue
            mrn = next((i["value"] for i in patient.get("identifier", []) if i.get("system") == MRN_SYSTEM), None)
            if mrn:
                mrns[patient["id"]] = mrn
            has_email = any(t.get("system") == "email" for t in patient.get("telecom", []))
            if has_email and patient.get("birthDate") and patient["id"] not in with_account:
                invitable.append(patient["id"])
    return mrns, invitable


def mint_tokens(url: str, patients: list[str]) -> dict:
    """Tokens stored in the server's database, as the token endpoint issues them: one per patient app
    (``launch/patient patient/*.rs``), the EHR's (backend services) and the nurse's (user token)."""
    from fhirportal.fhir.resource_types import SUPPORTED_TYPES
    from fhirportal.smart.accounts import AccountStore
    from fhirportal.smart.tokens import TokenStore
    from fhirportal.store.database import Database

    database = Database(url)
    try:
        tokens = TokenStore(database, SUPPORTED_TYPES)
        nurse = AccountStore(database).by_username(STAFF_USER)
        if nurse is None:
            raise RuntimeError(f"the demo account {STAFF_USER!r} was not loaded")
        return {
            "patient_tokens": {p: tokens.mint(client_id="demo-public-app", scope=PATIENT_SCOPE,
                                              context={"patient": p, "fhirUser": f"Patient/{p}"},
                                              expires_in=TOKEN_LIFETIME_S) for p in patients},
            "system_token": tokens.mint(client_id="demo-ehr-backend", scope=EHR_SCOPE, expires_in=TOKEN_LIFETIME_S),
            "staff_token": tokens.mint(client_id="demo-ehr-backend", scope=STAFF_SCOPE, account_id=nurse.id,
                                       context={"fhirUser": nurse.fhir_user, "organization": nurse.organization},
                                       expires_in=TOKEN_LIFETIME_S),
        }
    finally:
        database.dispose()


# ------------------------------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, grace: float = 20) -> None:
    """SIGTERM to the process's own group (started with start_new_session), SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Server:
    """``gunicorn wsgi:app`` on a free loopback port, over the load test's database."""

    def __init__(self, url: str, workdir: Path, workers: int, threads: int):
        self.port = free_port()
        self.log = workdir / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRPORTAL_")}  # no SMTP/SMS from here
        env.update(FHIRPORTAL_DATABASE_URL=url, FHIRPORTAL_BASE_URL=f"http://{HOST}:{self.port}/fhir",
                   FHIRPORTAL_EXPORT_DIR=str(workdir / "exports"))
        cmd = _command("gunicorn", "from gunicorn.app.wsgiapp import run; run()") + [
            "wsgi:app", "--bind", f"{HOST}:{self.port}", "--workers", str(workers), "--worker-class", "gthread",
            "--threads", str(threads), "--error-logfile", str(self.log), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        if not serving(HOST, self.port, self.proc, STARTUP_TIMEOUT_S):
            raise RuntimeError(f"gunicorn did not become ready; log:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc)


# ------------------------------------------------------------------------------------------ CPU
def _pg_backends(db_name: str | None) -> list[int]:
    """PostgreSQL backend processes serving the scratch database (their command line names it)."""
    if not db_name:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read(300)
            except OSError:
                continue
            if cmdline.startswith(b"postgres:") and f" {db_name} ".encode() in cmdline:
                pids.append(int(entry))
    return pids


class CpuMeter:
    """Cores used between start() and stop(): gunicorn (master and workers), the scratch database's
    PostgreSQL backends and the whole machine (``busy``). locust reports its own CPU time (it may have
    exited by the time stop() runs); ``finish`` adds it and "other": anything else running."""

    def __init__(self, db_name: str | None):
        self.db_name = db_name
        self.groups: dict[str, list[int]] = {}
        self.begin = None
        self.figures: dict[str, float] | None = None

    def _machine_busy(self) -> int | None:
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                values = [int(v) for v in handle.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        return sum(values) - values[3] - values[4]

    def _sample(self, server_pid: int):
        self.groups["gunicorn"] = sorted(set(self.groups.get("gunicorn", [])) | {server_pid, *descendants(server_pid)})
        self.groups["postgresql"] = sorted(set(self.groups.get("postgresql", [])) | set(_pg_backends(self.db_name)))
        pids = {pid for group in self.groups.values() for pid in group}
        return time.monotonic(), self._machine_busy(), {pid: ticks(pid) for pid in pids}

    def start(self, server_pid: int) -> None:
        self.begin = self._sample(server_pid)

    def sample_backends(self, server_pid: int) -> None:
        """New PostgreSQL backends appear as the server opens connections: note them while running."""
        if self.begin is not None:
            t0, busy0, ticks0 = self.begin
            _, _, ticks = self._sample(server_pid)
            self.begin = (t0, busy0, {**{pid: 0 for pid in ticks}, **ticks0})

    def stop(self, server_pid: int) -> None:
        if self.begin is None:
            return
        t0, busy0, ticks0 = self.begin
        t1, busy1, ticks1 = self._sample(server_pid)
        scale = os.sysconf("SC_CLK_TCK") * max(t1 - t0, 1e-6)
        figures = {name: sum(max(0, ticks1.get(pid, 0) - ticks0.get(pid, 0)) for pid in pids) / scale
                   for name, pids in self.groups.items()}
        if busy0 is not None and busy1 is not None:
            figures["busy"] = (busy1 - busy0) / scale
        figures["cores"] = float(os.cpu_count() or 1)
        self.figures = figures

    def finish(self, results: dict) -> dict | None:
        """The figures with locust's own CPU (from its results) and "other" = busy minus everything ours."""
        if self.figures is None:
            return None
        figures = dict(self.figures)
        started, stopped, cpu = results.get("started"), results.get("stopped"), results.get("locust_cpu_s")
        if started and stopped and cpu is not None and stopped > started:
            figures["locust"] = cpu / (stopped - started)
        if "busy" in figures:
            ours = figures.get("gunicorn", 0) + figures.get("postgresql", 0) + figures.get("locust", 0)
            figures["other"] = max(0.0, figures["busy"] - ours)
        return figures


# ------------------------------------------------------------------------------------------ locust
def run_locust(args, port: int, config: dict, workdir: Path, meter: CpuMeter, server: Server) -> dict:
    config_path = workdir / "locust-config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    spawn_rate = args.spawn_rate or max(1.0, args.users / 2)
    cmd = _command("locust", "from locust.main import main; main()") + [
        "-f", str(LOCUSTFILE), "--headless", "--host", f"http://{HOST}:{port}", "-u", str(args.users),
        "-r", f"{spawn_rate:g}", "-t", f"{args.duration:g}s", "--stop-timeout", "2", "--only-summary",
        "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if args.csv:
        cmd += ["--csv", str(Path(args.csv).resolve())]
    log_path = workdir / "locust.log"
    env = dict(os.environ, FHIRPORTAL_LOADTEST_CONFIG=str(config_path))
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        results_path = Path(config["results_path"])
        started_path = Path(f"{results_path}.started")
        try:
            # CPU is measured over locust's test window: from its test_start (the ".started" file) to its
            # test_stop (the results file), while every process is still alive.
            deadline = time.monotonic() + args.duration + 90
            while proc.poll() is None and not results_path.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("locust did not stop in time")
                if meter.begin is None and started_path.exists():
                    meter.start(server.proc.pid)
                elif meter.begin is not None:
                    meter.sample_backends(server.proc.pid)
                time.sleep(0.2)
            if results_path.exists():
                meter.stop(server.proc.pid)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass  # it wrote its results; stop_process ends it
        finally:
            stop_process(proc, grace=10)
    if not results_path.exists():
        raise RuntimeError(f"locust wrote no results (exit {proc.returncode}); its log:\n"
                           f"{log_path.read_text(errors='replace')[-3000:]}")
    return json.loads(results_path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ figures
def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values) - 1e-9) - 1))  # nearest rank
    return sorted_values[rank]


def summarize(results: dict) -> dict:
    records = results["records"]
    if not records:
        raise RuntimeError("locust made no requests")
    first = min(r[4] for r in records)
    last = max(r[4] + r[1] / 1000.0 for r in records)
    elapsed = max(last - first, 1e-6)
    kinds: dict[str, list] = {}
    for record in records:
        kinds.setdefault(record[0], []).append(record)
    order = [k for k in KIND_ORDER if k in kinds] + sorted(k for k in kinds if k not in KIND_ORDER)

    def row(name: str, rows: list) -> dict:
        latencies = sorted(r[1] for r in rows)
        errors = sum(1 for r in rows if not r[3])
        statuses: dict[str, int] = {}
        for r in rows:
            if not r[3]:
                statuses[str(r[2] or "no answer")] = statuses.get(str(r[2] or "no answer"), 0) + 1
        return {"kind": name, "requests": len(rows), "per_s": len(rows) / elapsed,
                "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95),
                "p99_ms": percentile(latencies, 0.99), "errors": errors, "error_rate": errors / len(rows),
                "error_statuses": statuses}

    per_minute: list[int] = [0] * max(1, math.ceil(elapsed / 60 - 1e-9))
    for record in records:
        per_minute[min(len(per_minute) - 1, int((record[4] - first) // 60))] += 1
    last_seconds = elapsed - 60 * (len(per_minute) - 1)  # the last minute may be partial
    if len(per_minute) > 1 and last_seconds < 10:  # a sliver past the last whole minute: counted with it
        per_minute[-2] += per_minute.pop()
        last_seconds += 60
    minutes = [count / 60 for count in per_minute[:-1]] + [per_minute[-1] / max(last_seconds, 1e-6)]

    def p50_by_minute(rows: list) -> list[float]:  # which kind slows down as the run goes on
        buckets: list[list[float]] = [[] for _ in minutes]
        for r in rows:
            buckets[min(len(minutes) - 1, int((r[4] - first) // 60))].append(r[1])
        return [percentile(sorted(bucket), 0.50) for bucket in buckets]

    return {"elapsed_s": elapsed, "rows": [row(k, kinds[k]) for k in order], "total": row("total", records),
            "error_samples": results.get("errors", {}), "per_minute": minutes,
            "p50_by_minute": {k: p50_by_minute(kinds[k]) for k in order}}


def print_report(summary: dict, cpu: dict | None, args, backend: str) -> list[tuple[str, bool, str]]:
    header = f"{'request kind':<48} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} " \
             f"{'errors':>7} {'err %':>7}"
    rule = "-" * len(header)
    print(f"\nfhirportal load test: {backend}, {args.users} users, {args.duration:g} s "
          f"({summary['elapsed_s']:.1f} s measured), gunicorn {args.workers} workers x {args.threads} threads, "
          f"think time ~{args.think:g} s")
    print(header)
    print(rule)

    def line(row: dict) -> str:
        return (f"{row['kind']:<48} {row['requests']:>9} {row['per_s']:>8.1f} {row['p50_ms']:>8.1f} "
                f"{row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>7} {100 * row['error_rate']:>6.2f}%")

    for row in summary["rows"]:
        print(line(row))
    print(rule)
    print(line(summary["total"]))
    total = summary["total"]
    minutes = summary["per_minute"]
    if len(minutes) > 1:
        print(f"requests/s minute by minute: {' '.join(f'{m:.0f}' for m in minutes)}; last/first "
              f"{minutes[-1] / max(minutes[0], 1e-9):.2f}")
        print("p50 ms minute by minute:")
        for kind, values in summary["p50_by_minute"].items():
            print(f"  {kind:<46} {' '.join(f'{v:6.1f}' for v in values)}")
    if "growth" in summary:
        print(f"database growth: +{summary['growth'].database / 1e6:.1f} MB = "
              f"{storage.per_request(summary['growth'], total['requests'])}")
    if cpu:
        print(f"CPU, cores of {cpu['cores']:g}: server (gunicorn) {cpu.get('gunicorn', 0):.2f}, "
              f"PostgreSQL backends {cpu.get('postgresql', 0):.2f}, locust {cpu.get('locust', float('nan')):.2f}, "
              f"other processes {cpu.get('other', float('nan')):.2f}")
        per_request = (cpu.get("gunicorn", 0) + cpu.get("postgresql", 0)) / max(total["per_s"], 1e-9) * 1000
        print(f"server CPU per request (gunicorn + PostgreSQL): {per_request:.1f} ms; at that cost the "
              f"{cpu['cores']:g} cores would serve ~{cpu['cores'] * 1000 / max(per_request, 1e-9):.0f} req/s "
              "of this mix with the machine to itself")
        if cpu.get("other", 0) > NOISY_CORES:
            print(f"WARNING: other processes used {cpu['other']:.2f} cores during the run: the latencies are "
                  "inflated by them; rerun on a quiet machine for clean figures")
    for row in summary["rows"]:
        if row["errors"]:
            detail = ", ".join(f"{status} x{count}" for status, count in sorted(row["error_statuses"].items()))
            print(f"errors in {row['kind']}: {detail}")
    for key, sample in list(summary["error_samples"].items())[:5]:
        print(f"  first answer for {key}: {sample[:300]}")
    slow = [r for r in summary["rows"] if not r["p95_ms"] < TARGET_P95_MS]
    targets = [
        ("no errors", total["errors"] == 0, f"{total['errors']} errors in {total['requests']} requests"),
        (f"p95 < {TARGET_P95_MS:g} ms overall", total["p95_ms"] < TARGET_P95_MS,
         f"p95 {total['p95_ms']:.1f} ms at {total['per_s']:.1f} req/s"),
        (f"p95 < {TARGET_P95_MS:g} ms for every kind", not slow,
         "all kinds" if not slow else ", ".join(f"{r['kind']} {r['p95_ms']:.1f} ms" for r in slow)),
    ]
    for name, ok, detail in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return targets


# ------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    parser.add_argument("--spawn-rate", type=float, default=0.0, help="users started per second (default users/2)")
    parser.add_argument("--think", type=float, default=0.25,
                        help="mean think time of a user between requests, in seconds (default 0.25)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker (default 4)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests")
    parser.add_argument("--database-name", default=PG_DATABASE, help=f"PostgreSQL scratch database ({PG_DATABASE})")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL,
                        help="PostgreSQL connection used to create and drop the scratch database")
    parser.add_argument("--csv", help="also let locust write its CSV statistics with this prefix")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.users <= 0 or args.max_requests <= 0 or args.think < 0:
        parser.error("--duration, --users and --max-requests must be positive, --think not negative")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database_name):
        parser.error("--database-name: lower-case letters, digits and underscores")
    if args.database_name in ("test", "postgres", "template0", "template1"):
        parser.error(f"--database-name: refusing {args.database_name!r}, it is dropped and re-created: "
                     "name a scratch database")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="fhirportal-loadtest-"))
    backend = Sqlite(workdir) if args.backend == "sqlite" else Postgres(args.pg_admin_url, args.database_name)
    server = None
    try:
        print(f"preparing the {backend.name} database ...", flush=True)
        backend.prepare()
        started = time.perf_counter()
        loaded = _fhirportal(backend.url, "load", "--quiet", str(DEMO))
        _fhirportal(backend.url, "accounts", "load", str(DEMO_ACCOUNTS))
        match = re.search(r"loaded (\d+) resources", loaded)
        print(f"loaded the demo practice ({match.group(1) if match else '?'} resources) and its accounts in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        mrns, invitable = demo_patients()
        config = {**mint_tokens(backend.url, sorted(mrns)), "mrns": sorted(mrns.values()), "invitable": invitable,
                  "think_seconds": args.think, "max_requests": args.max_requests,
                  "weights": {"patient": 8, "ehr": 1, "staff": 1}, "run_id": uuid.uuid4().hex[:8],
                  "results_path": str(workdir / "results.json")}
        backend.settle()
        server = Server(backend.url, workdir, args.workers, args.threads)
        server.wait_ready()
        print(f"gunicorn on {HOST}:{server.port}; locust: {args.users} users for {args.duration:g} s ...", flush=True)
        meter = CpuMeter(backend.db_name)
        before = storage.footprint(backend.url)
        results = run_locust(args, server.port, config, workdir, meter, server)
        time.sleep(1.0)  # the access log's writer flushes within 0.2 s
        summary = summarize(results)
        summary["growth"] = storage.footprint(backend.url) - before
        cpu = meter.finish(results)
        targets = print_report(summary, cpu, args, backend.name)
        if summary["total"]["errors"] and "Traceback" in server.log_tail(20000):
            print(f"\ngunicorn log tail:\n{server.log_tail()}", file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "backend": backend.name, "users": args.users, "duration_s": args.duration, **summary,
                "cpu_cores": cpu, "targets": [{"target": n, "pass": ok, "detail": d} for n, ok, d in targets],
            }, indent=2, default=lambda o: o.__dict__), encoding="utf-8")
        return 0
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except Exception as exc:  # could not run: say why
        print(f"load test could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        if server is not None:
            print(f"gunicorn log tail:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        try:
            if server is not None:
                server.stop()
            backend.cleanup()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
