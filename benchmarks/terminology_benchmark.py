"""What the terminology costs: building it, its memory, ``$expand`` of a 1,000-code value set, and a
token search over many codes (what ``MAX_SEARCH_CODES`` bounds).

    .venv/bin/python benchmarks/terminology_benchmark.py [--encounters N] [--postgresql URL]

1. Start-up: in fresh processes (3), the time to read and index the content on first use
   (``terminology().content``: the R4 table and the US Core package), the process's resident memory
   before and after, and the Python memory it allocates (tracemalloc, in a separate run).
2. ``GET ValueSet/$expand`` of ``v3-ActCode`` (the whole HL7 v3 ActCode system: 1,116 codes) through
   the Flask test client, the terminology already built: the first call (expanding, then cached) and
   the median and p95 of 50 more (each renders the 1,116 codes);
   the same for the 1,357 enumerated codes of ``ucum-common``.
3. ``Encounter?class:in=`` / the store's per-system IN list: N encounters (20,000) whose class is one
   of ActCode's codes, searched for 200, 1,000, 2,000, 5,000 and 10,000 codes (a page of 50, median
   of 5), on SQLite and, with ``--postgresql URL`` (a scratch database: its tables are dropped), on
   PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
STARTUP = """
import json, resource, time, tracemalloc, sys
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) / 1024
import fhirportal.app  # what a worker has imported before its first request
from fhirportal.fhir.terminology import terminology
if sys.argv[1] == 'trace':
    tracemalloc.start()
before = rss()
started = time.perf_counter()
terminology().content
seconds = time.perf_counter() - started
traced = tracemalloc.get_traced_memory()[0] / 2**20 if sys.argv[1] == 'trace' else None
print(json.dumps({'seconds': seconds, 'rss_before': before, 'rss_after': rss(), 'traced_mb': traced}))
"""


def startup() -> None:
    runs = [json.loads(subprocess.run([sys.executable, "-c", STARTUP, "plain"], capture_output=True, text=True,
                                      check=True, cwd=ROOT).stdout) for _ in range(3)]
    traced = json.loads(subprocess.run([sys.executable, "-c", STARTUP, "trace"], capture_output=True, text=True,
                                       check=True, cwd=ROOT).stdout)
    seconds = statistics.median(r["seconds"] for r in runs)
    grown = statistics.median(r["rss_after"] - r["rss_before"] for r in runs)
    each = ", ".join(f"{r['seconds'] * 1000:.0f}" for r in runs)
    print(f"start-up: terminology built in {seconds * 1000:.0f} ms (median of 3 processes; {each} ms); resident memory "
          f"+{grown:.0f} MiB ({runs[0]['rss_before']:.0f} -> {runs[0]['rss_after']:.0f} MiB); "
          f"Python allocations held: {traced['traced_mb']:.0f} MiB")


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def expand(client) -> None:
    from fhirportal.fhir.terminology import terminology

    print(f"(this process: terminology built in {_timed(lambda: terminology().content):.0f} ms before the first "
          f"$expand)")
    for url, label in (("http://terminology.hl7.org/ValueSet/v3-ActCode", "v3-ActCode"),
                       ("http://hl7.org/fhir/ValueSet/ucum-common", "ucum-common")):
        path = f"/fhir/ValueSet/$expand?url={url}"

        def get(path=path):
            response = client.get(path)
            assert response.status_code == 200, response.get_json()
            return response

        first = _timed(get)
        total = get().get_json()["expansion"]["total"]
        warm = sorted(_timed(get) for _ in range(50))
        print(f"$expand {label} ({total} codes): first {first:.1f} ms, then median {statistics.median(warm):.1f} ms, "
              f"p95 {warm[int(len(warm) * 0.95) - 1]:.1f} ms")


def search(database_url: str, label: str, encounters: int) -> None:
    from fhirportal.app import build_context, prepare_database
    from fhirportal.fhir.loading import load
    from fhirportal.fhir.terminology import terminology
    from fhirportal.settings import Settings
    from fhirportal.store.search import Criterion

    ctx = build_context(Settings(database_url=database_url, base_url="http://localhost/fhir"))
    ctx.database.drop_schema()
    prepare_database(ctx)
    codes = sorted(terminology().content.code_systems[ACT_CODE].concepts)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Encounter.ndjson"
        with path.open("w") as out:
            for n in range(encounters):
                out.write(json.dumps({"resourceType": "Encounter", "id": f"e{n}", "status": "finished",
                                      "class": {"system": ACT_CODE, "code": codes[n % len(codes)]}}) + "\n")
        started = time.perf_counter()
        load(ctx, [path])
        print(f"{label}: loaded {encounters} encounters in {time.perf_counter() - started:.1f} s")
    if ctx.database.engine.dialect.name == "postgresql":
        with ctx.database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    parameter = ctx.search_parameters.get("Encounter", "class")
    for size in (200, 1000, 2000, 5000, 10_000):
        # real codes first, then codes no encounter has (what a large value set of another system adds)
        missing = tuple((ACT_CODE, f"X{n}") for n in range(size - len(codes)))
        pairs = tuple((ACT_CODE, c) for c in codes[:size]) + missing
        criterion = Criterion(parameter, ("v",), "in", codes=pairs[:size])
        times, found = [], 0
        for _ in range(5):
            with ctx.database.read() as conn:
                started = time.perf_counter()
                page = ctx.repository.search(conn, ["Encounter"], [criterion], count=50)
                times.append((time.perf_counter() - started) * 1000)
                found = len(page.matches)
        print(f"{label}: Encounter?class:in=<{size} codes>: median {statistics.median(times):.1f} ms "
              f"(a page of {found})")
    ctx.database.drop_schema()
    ctx.database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--encounters", type=int, default=20_000)
    parser.add_argument("--postgresql", help="a scratch PostgreSQL database URL (its tables are dropped)")
    args = parser.parse_args()
    startup()
    from fhirportal.app import create_app
    from fhirportal.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(database_url=f"sqlite:///{folder}/expand.db", base_url="http://localhost/fhir"))
        expand(app.test_client())
        app.extensions["fhirportal"].database.dispose()
        search(f"sqlite:///{folder}/search.db", "SQLite", args.encounters)
    if args.postgresql:
        search(args.postgresql, "PostgreSQL", args.encounters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
