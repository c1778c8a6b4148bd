"""Bulk export throughput and peak memory of ``fhirportal export``, at two population sizes.

    .venv/bin/python benchmarks/export_benchmark.py [--backend sqlite|postgresql]
        [--patients N] [--observations-per-patient K] [--keep]

For a population of N/4 patients, then of N patients (each on a fresh database: a temporary SQLite
file, or the PostgreSQL database ``fhirportal_exportbench``, dropped afterwards unless --keep): loads
the synthetic data of ``search_benchmark`` (``fixtures.generate.iter_large`` plus two Conditions per
patient, loaded as ``fhirportal load`` does), then runs ``fhirportal export --out DIR
--quiet`` as a separate process and reports the resources exported, wall seconds (process start-up
included), resources/s and that process's peak RSS (``os.wait4``'s rusage of that one child), next to
a baseline: the same command on an empty database (start-up time and memory).

Targets: >= 10,000 resources/s; peak memory independent of the population (the export pages through
each type by primary key, so the larger population should not need more memory than the smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psycopg  # noqa: E402
import search_benchmark  # noqa: E402
from search_benchmark import analyze, drop_database, fresh_database, with_conditions  # noqa: E402

from fhirportal.app import build_context, prepare_database  # noqa: E402
from fhirportal.fhir.loading import load as load_files  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402

PG_DATABASE = "fhirportal_exportbench"
# search_benchmark's fresh_database/drop_database read this module global at call time: point them at
# this benchmark's own database (never `test`, never search_benchmark's).
search_benchmark.PG_DATABASE = PG_DATABASE
FHIRPORTAL = Path(sys.executable).parent / "fhirportal"
EXPORTED = re.compile(r"exported (\d+) resources of (\d+) types")


def load(url: str, patients: int, per_patient: int, folder: Path) -> tuple[int, float]:
    """search_benchmark's population (``with_conditions``), written to ndjson and loaded as ``fhirportal load``
    does (search_benchmark's own ``ingest`` posts without a token, which the server now refuses)."""
    source = folder / "population.ndjson"
    with source.open("w", encoding="utf-8") as out:
        for item in with_conditions(patients, per_patient):
            out.write(json.dumps(item, separators=(",", ":")))
            out.write("\n")
    ctx = build_context(Settings(database_url=url, base_url="http://localhost/fhir"))
    try:
        prepare_database(ctx)
        started = time.perf_counter()
        report = load_files(ctx, [source])
        seconds = time.perf_counter() - started
        if report.failed:
            raise SystemExit(f"{len(report.failed)} resources failed to load, e.g. {report.failed[:3]}")
        analyze(ctx.database.engine)
    finally:
        ctx.database.dispose()
        source.unlink(missing_ok=True)
    return report.total, seconds


def export(url: str, out: Path, *extra: str) -> dict:
    """Runs ``fhirportal export`` in its own process; its figures, peak RSS from that child's rusage."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, FHIRPORTAL_DATABASE_URL=url, FHIRPORTAL_EXPORT_DIR=str(out.parent / "jobs"))
    log = out.parent / f"{out.name}.log"
    command = [str(FHIRPORTAL), "--database-url", url, "export", "--out", str(out), "--quiet", *extra]
    with log.open("w") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    match = EXPORTED.search(text)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{text}")
    lines = sum(sum(1 for _ in path.open("rb")) for path in out.glob("*.ndjson"))
    if lines != int(match.group(1)):
        raise SystemExit(f"the export reports {match.group(1)} resources but its files hold {lines} lines")
    size = sum(path.stat().st_size for path in out.glob("*.ndjson"))
    return {"resources": lines, "types": int(match.group(2)), "seconds": seconds, "mb": size / 1e6,
            "rss_mb": usage.ru_maxrss / 1024}  # ru_maxrss is in KiB on Linux


def database_mb(backend: str, url: str) -> float:
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6


def run_population(backend: str, patients: int, per_patient: int, workdir: Path, keep: bool) -> dict:
    """A fresh database with ``patients`` patients (none: the empty schema), exported once."""
    folder = workdir / f"p{patients}"
    folder.mkdir()
    url = fresh_database(backend, str(folder))
    try:
        if patients:
            print(f"loading {patients:,} patients x {per_patient} observations ...", file=sys.stderr)
            loaded, seconds = load(url, patients, per_patient, folder)
            print(f"  loaded {loaded:,} resources in {seconds:,.1f} s", file=sys.stderr)
        else:
            ctx = build_context(Settings(database_url=url))
            prepare_database(ctx)
            ctx.database.dispose()
        size = database_mb(backend, url)
        result = export(url, folder / "out")
        shutil.rmtree(folder / "out", ignore_errors=True)
    finally:
        if keep and backend == "postgresql":
            print(f"kept {url}", file=sys.stderr)
        elif backend == "postgresql":
            drop_database(backend)
    return {**result, "db_mb": size}


def row(label: str, result: dict) -> str:
    rate = result["resources"] / result["seconds"]
    return (f"{label:<22}{result['db_mb']:>10.1f}{result['resources']:>11,}{result['mb']:>9.1f}"
            f"{result['seconds']:>9.2f}{rate:>13,.0f}{result['rss_mb']:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--observations-per-patient", type=int, default=10)
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the PostgreSQL database {PG_DATABASE} (the larger population) for inspection")
    args = parser.parse_args()
    if not FHIRPORTAL.exists():
        raise SystemExit(f"{FHIRPORTAL} not found: run with the project's venv python")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    small = max(1, args.patients // 4)
    per = args.observations_per_patient
    print(f"=== {args.backend}: fhirportal export, empty database, {small:,} and {args.patients:,} patients x {per} "
          f"observations")
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        empty = run_population(args.backend, 0, per, Path(tmp), False)
        lower = run_population(args.backend, small, per, Path(tmp), False)
        upper = run_population(args.backend, args.patients, per, Path(tmp), args.keep)
    print(f"{'population':<22}{'db MB':>10}{'resources':>11}{'out MB':>9}{'seconds':>9}{'resources/s':>13}"
          f"{'peak RSS MB':>13}")
    print(row("empty (start-up)", empty))
    print(row(f"{small:,} patients", lower))
    print(row(f"{args.patients:,} patients", upper))
    print(f"throughput ({args.patients:,} patients): {upper['resources'] / upper['seconds']:,.0f} resources/s "
          f"(target >= 10,000); without the start-up ({empty['seconds']:.2f} s): "
          f"{upper['resources'] / max(upper['seconds'] - empty['seconds'], 1e-9):,.0f} resources/s")
    print(f"peak RSS: {lower['rss_mb']:.1f} MB -> {upper['rss_mb']:.1f} MB for "
          f"{upper['resources'] / lower['resources']:.1f}x the resources ({upper['rss_mb'] - lower['rss_mb']:+.1f} MB; "
          f"{upper['rss_mb'] - empty['rss_mb']:+.1f} MB over the start-up's {empty['rss_mb']:.1f} MB); "
          f"target: independent of the population")
    if args.backend == "sqlite":
        print("note: each SQLite connection caches up to 64 MiB of pages (PRAGMA cache_size=-65536), so below that "
              "database size peak RSS grows with the population until the cache is full")


if __name__ == "__main__":
    main()
