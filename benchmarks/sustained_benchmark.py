"""Sustained throughput: a patient's reads and lab searches for minutes, against a separate minimal
ceiling app measured in alternating rounds in the same run, with the database's growth per request.

For each backend (a SQLite file; the PostgreSQL database ``fhirportal_bench``) it loads the synthetic
practice (``fixtures.generate.iter_large``: patients with US Core lab results, half of them shared with
the patient), mints a ``patient/*.rs`` token per patient, starts ``gunicorn wsgi:app`` and
``gunicorn benchmarks.ceiling_app:app`` (no fhirportal code: one ``SELECT content FROM resource WHERE
pid = ?``) with the same settings (2 gthread workers x 4 threads, the repository's gunicorn.conf.py) on
the same database, and runs, in rounds of ``--round`` seconds, alternating their order every cycle:

- ``patient read``: ``GET /fhir/Observation/{id}`` of a lab result shared with the patient, with that
  patient's token (token lookup, scope, compartment and sharing checks, the access log);
- ``lab search``: ``GET /fhir/Observation?patient={id}&category=laboratory&_count=10`` with the token;
- ``ceiling``: ``GET /resource/{pid}`` of the same lab results from the ceiling app;

until each has run ``--minutes`` minutes. It prints each one's requests/s minute by minute, the last
minute over the first, its ratio to the ceiling (all rounds, and the last minute), the database's
growth per request and the access log's bytes per entry, with PASS/FAIL for the targets. Then
(``--mixed``, default on) it runs ``benchmarks/load_test.py`` flat out for as long on the same backend.

    .venv/bin/python benchmarks/sustained_benchmark.py [--backend sqlite|postgresql|both] [--minutes 5]
        [--round 30] [--patients 1000] [--obs-per-patient 20] [--concurrency 8] [--no-mixed] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository, for the shared benchmark helpers
    sys.path.insert(0, str(REPO))

from benchmarks import rest_benchmark as rest  # noqa: E402
from benchmarks.storage import Footprint, footprint, per_request  # noqa: E402

READ, SEARCH, CEILING = "patient read", "lab search", "ceiling"
TARGETS = {READ: 0.4, SEARCH: 0.2}  # of the ceiling
STEADY = 0.9  # last minute / first minute
ACCESS_LOG_BYTES = 300  # per entry, indexes included
SETTLE_S = 1.0  # after a round: the access-log writer flushes within 0.2 s


@dataclass
class Workload:
    label: str
    rounds: list[dict] = field(default_factory=list)  # run_phase figures + "seconds" + "growth"

    def minutes(self, round_s: float) -> list[float]:
        """Requests/s per minute of this workload's own measured time (its rounds, in order)."""
        per_minute = max(1, round(60 / round_s))
        groups = [self.rounds[i:i + per_minute] for i in range(0, len(self.rounds), per_minute)]
        return [sum(r["ok"] for r in g) / sum(r["seconds"] for r in g) for g in groups if g]

    def rate(self, rounds: list[dict] | None = None) -> float:
        rounds = self.rounds if rounds is None else rounds
        return sum(r["ok"] for r in rounds) / max(sum(r["seconds"] for r in rounds), 1e-9)

    def requests(self) -> int:
        return sum(r["ok"] + r["errors"] for r in self.rounds)

    def errors(self) -> int:
        return sum(r["errors"] for r in self.rounds)

    def growth(self) -> Footprint:
        total = Footprint(0, 0, 0)
        for r in self.rounds:
            total = Footprint(total.database + r["growth"][0], total.access_log + r["growth"][1],
                              total.access_log_rows + r["growth"][2])
        return total


@dataclass
class Result:
    backend: str
    load: dict = field(default_factory=dict)
    workloads: dict[str, Workload] = field(default_factory=dict)
    mixed_exit: int | None = None
    error: str | None = None


def shared_labs(url: str, patients: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Patient id -> [(Observation id, pid)] of the lab results its token may read."""
    from sqlalchemy import select

    from fhirportal.store.database import Database
    from fhirportal.store.schema import resource

    observations = rest.existing_ids(url, "Observation")
    subjects = rest.compartment_subjects(url, observations)
    wanted = set(patients)
    database = Database(url)
    try:
        with database.read() as conn:
            pids = dict(conn.execute(select(resource.c.fhir_id, resource.c.pid)
                                     .where(resource.c.resource_type == "Observation")).all())
    finally:
        database.dispose()
    labs: dict[str, list[tuple[str, int]]] = {}
    for fhir_id, patient in subjects.items():
        if patient in wanted:
            labs.setdefault(patient, []).append((fhir_id, pids[fhir_id]))
    return labs


def build(labs: dict[str, list[tuple[str, int]]], tokens: dict[str, str]) -> dict[str, rest.Phase]:
    reads = [(fhir_id, pid, patient) for patient, items in sorted(labs.items()) for fhir_id, pid in items]
    return {
        READ: rest.Phase(READ, "GET", [f"/fhir/Observation/{i}" for i, _, _ in reads],
                         tokens=[tokens[p] for _, _, p in reads]),
        SEARCH: rest.Phase(SEARCH, "GET",
                           [f"/fhir/Observation?patient={p}&category=laboratory&_count=10" for p in sorted(labs)],
                           tokens=[tokens[p] for p in sorted(labs)]),
        CEILING: rest.Phase(CEILING, "GET", [f"/resource/{pid}" for _, pid, _ in reads]),
    }


def run_backend(backend: rest.Backend, args, workdir: Path) -> Result:
    result = Result(backend.name)
    servers: dict[str, rest.Server] = {}
    try:
        print(f"\n=== {backend.name}: loading the practice", flush=True)
        backend.prepare()
        data = workdir / f"data-{backend.name}"
        data.mkdir()
        counts, _ = rest.write_ndjson(data, args.patients, args.obs_per_patient)
        result.load = rest.load_data(backend.url, data, sum(counts.values()))
        shutil.rmtree(data, ignore_errors=True)
        print(f"loaded {result.load['resources']} resources in {result.load['seconds']} s", flush=True)
        backend.settle()
        patients = rest.existing_ids(backend.url, "Patient")[:rest.AUTHORIZED_PATIENTS]
        _, tokens = rest.mint_tokens(backend.url, patients)
        phases = build(shared_labs(backend.url, patients), tokens)
        servers = {"fhirportal": rest.Server(backend.url, workdir),
                   "ceiling": rest.Server(backend.url, workdir, app="benchmarks.ceiling_app:app",
                                                 ready_path="/ready")}
        for server in servers.values():
            server.wait_ready()
        print(f"fhirportal on :{servers['fhirportal'].port}, ceiling on :{servers['ceiling'].port} "
              f"({rest.GUNICORN_WORKERS} workers x {rest.GUNICORN_THREADS} threads each); {args.concurrency} "
              f"clients; rounds of {args.round:g} s until each workload has run {args.minutes:g} min", flush=True)
        result.workloads = {label: Workload(label) for label in phases}
        order = [READ, CEILING, SEARCH]
        cycles = max(1, round(args.minutes * 60 / args.round))
        for cycle in range(cycles):
            for label in order if cycle % 2 == 0 else order[::-1]:
                server = servers["ceiling" if label == CEILING else "fhirportal"]
                before = footprint(backend.url)
                figures = rest.run_phase(server.port, phases[label], args.concurrency,
                                         args.warmup if cycle == 0 else 0.5, args.round, server.proc.pid,
                                         args.reconnect)
                time.sleep(SETTLE_S)
                growth = footprint(backend.url) - before
                figures.update(seconds=args.round, growth=[growth.database, growth.access_log,
                                                          growth.access_log_rows])
                result.workloads[label].rounds.append(figures)
                print(f"  [{cycle + 1}/{cycles}] {label:<13} {figures['requests_per_s']:>8.1f} req/s  p50 "
                      f"{figures['p50_ms']:.1f} ms  p95 {figures['p95_ms']:.1f} ms  errors {figures['errors']}  "
                      f"db +{growth.database / 1024:,.0f} KiB  other CPU {figures['other_cpu_cores']}", flush=True)
    except Exception as exc:  # report and go on with the next backend
        result.error = f"{type(exc).__name__}: {exc}"
        print(f"ERROR ({backend.name}): {result.error}", file=sys.stderr, flush=True)
        if "fhirportal" in servers:
            print(servers["fhirportal"].log_tail(), file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        try:
            backend.cleanup()
        except Exception as exc:
            print(f"WARNING: cleanup of {backend.name} failed: {exc}", file=sys.stderr)
    return result


def report(result: Result, args) -> list[tuple[str, bool, str]]:
    print(f"\n--- {result.backend}: {args.minutes:g} minutes of each, rounds of {args.round:g} s ---")
    if result.error:
        print(f"FAILED: {result.error.splitlines()[0]}")
        return [("ran", False, result.error.splitlines()[0])]
    ceiling = result.workloads[CEILING]
    per_minute = max(1, round(60 / args.round))
    targets = []
    print(f"{'workload':<14} {'req/s per minute':<52} {'last/first':>10} {'x ceiling':>10} {'last min':>9}")
    for label, workload in result.workloads.items():
        minutes = workload.minutes(args.round)
        steady = minutes[-1] / minutes[0] if minutes and minutes[0] else 0.0
        ratio = workload.rate() / max(ceiling.rate(), 1e-9)
        last = workload.rate(workload.rounds[-per_minute:]) / max(ceiling.rate(ceiling.rounds[-per_minute:]), 1e-9)
        shown = " ".join(f"{m:.0f}" for m in minutes)
        print(f"{label:<14} {shown:<52} {steady:>10.2f} {ratio:>10.2f} {last:>9.2f}")
        targets.append((f"{label}: last minute >= {STEADY} x first", steady >= STEADY, f"{steady:.2f}"))
        if label in TARGETS:
            targets.append((f"{label} >= {TARGETS[label]} x ceiling", ratio >= TARGETS[label], f"{ratio:.2f}"))
        targets.append((f"{label}: no errors", workload.errors() == 0, f"{workload.errors()} errors"))
    for label in (READ, SEARCH):
        workload = result.workloads[label]
        growth = workload.growth()
        print(f"{label}: {workload.requests():,} requests, database +{growth.database / 1e6:.1f} MB = "
              f"{per_request(growth, workload.requests())}")
        if growth.access_log_rows:
            entry = growth.access_log / growth.access_log_rows
            targets.append((f"{label}: access log <= {ACCESS_LOG_BYTES} B/entry", entry <= ACCESS_LOG_BYTES,
                            f"{entry:.0f} B"))
    noisy = [r for w in result.workloads.values() for r in w.rounds if (r.get("other_cpu_cores") or 0) > 0.25]
    if noisy:
        print(f"WARNING: other processes used > 0.25 cores in {len(noisy)} rounds: re-run on a quiet machine")
    for name, ok, detail in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return targets


def mixed(backend: str, args) -> int:
    """The load test's practice mix, flat out, for as long (its own database, its own report)."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "load_test.py"), "--backend", backend,
           "--duration", f"{args.minutes * 60:g}", "--think", "0", "--users", str(args.mixed_users or args.concurrency),
           "--max-requests", "10000000"]
    print(f"\n=== {backend}: mixed load, flat out: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of each workload (default 5)")
    parser.add_argument("--round", type=float, default=30.0, help="seconds per round (default 30)")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--obs-per-patient", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the first round of each")
    parser.add_argument("--reconnect", type=float, default=1.0, help="clients reopen their connection every ~S s")
    parser.add_argument("--no-mixed", dest="mixed", action="store_false", help="skip the mixed load")
    parser.add_argument("--mixed-users", type=int, default=None,
                        help="the mixed load's users (default: --concurrency, the server's 2 x 4 threads: flat out "
                             "with more only queues requests in front of it, and latency = users / throughput)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.round <= 0 or args.round > 60 * args.minutes or args.patients < 1:
        parser.error("--minutes, --round and --patients must be positive, a round at most the run")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    workdir = Path(tempfile.mkdtemp(prefix="fhirportal-sustained-"))
    results, mixed_exits = [], {}
    try:
        for name in names:
            backend = rest.SqliteBackend(workdir) if name == "sqlite" else rest.PostgresBackend()
            result = run_backend(backend, args, workdir)
            results.append(result)
            report(result, args)
            if args.mixed:
                mixed_exits[name] = result.mixed_exit = mixed(name, args)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n=== summary (reads, searches and the ceiling; the mixed load's verdicts are in its report above)")
    for result in results:
        report(result, args)
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)},
                                         "backends": [asdict(r) for r in results]}, indent=2, default=str))
    return 1 if any(r.error for r in results) or any(mixed_exits.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
