"""Ingest through transaction Bundles and search latency at scale, with query plans.

    .venv/bin/python benchmarks/search_benchmark.py [--backend sqlite|postgresql|both]
        [--patients N] [--observations-per-patient K] [--bundle-size B] [--queries Q] [--workers W]

For each backend: a fresh database; synthetic data from ``fixtures.generate.iter_large`` plus two
Conditions per patient, streamed (never all in memory) as transaction Bundles of PUT entries through
the full FHIR stack (Flask test client: routing, validation, indexing, storage; no socket); then
p50/p95 of the searches a patient app makes, and each search's plan (EXPLAIN on PostgreSQL,
EXPLAIN QUERY PLAN on SQLite) with a warning when a table is scanned without an index.

``--workers W`` ingests with W processes, each a server of its own over the same database (as
gunicorn's workers are), taking the Bundles in turn. The stream is one resource type after another
(organizations and practitioners, patients, conditions, encounters, observations) and its Bundles
are cut at each change of type; the Bundles of one type go out in parallel, the next type only once
they are all in, so a reference never points at a resource another worker has yet to write.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from fhirportal.app import create_app  # noqa: E402
from fhirportal.fhir.search_params import parse_search  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402
from fhirportal.store.schema import resource  # noqa: E402
from fhirportal.store.search import build_where  # noqa: E402
from fixtures.generate import iter_large  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "fhirportal_search_bench"
CONDITIONS = [("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertensive disorder"),
              ("55822004", "Hyperlipidemia"), ("195967001", "Asthma")]


def with_conditions(patients: int, per_patient: int) -> Iterator[dict]:
    """iter_large's resources, plus Conditions once the patients are out."""
    patients_done = False
    for item in iter_large(patients, per_patient):
        if item["resourceType"] not in ("Organization", "Practitioner", "Patient") and not patients_done:
            patients_done = True
            for n in range(1, patients + 1):
                for k in range(2):
                    code, display = CONDITIONS[(n + k) % len(CONDITIONS)]
                    yield {
                        "resourceType": "Condition", "id": f"c{n:06d}-{k}",
                        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                       "code": "active"}]},
                        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                                  "code": "problem-list-item"}]}],
                        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]},
                        "subject": {"reference": f"Patient/p{n:06d}"},
                        "onsetDateTime": f"{2010 + (n + k) % 15}-0{1 + k}-15",
                    }
        yield item


def unprofiled(items: Iterator[dict]) -> Iterator[dict]:
    """The same resources without ``meta.profile`` (base R4 validation only: what a profile costs)."""
    for item in items:
        meta = {k: v for k, v in (item.get("meta") or {}).items() if k != "profile"}
        yield {**{k: v for k, v in item.items() if k != "meta"}, **({"meta": meta} if meta else {})}


def bundles(items: Iterator[dict], size: int) -> Iterator[dict]:
    """Transaction Bundles of ``size`` PUT entries, each of one resource type (cut where the type changes)."""
    entries = []
    for item in items:
        if entries and entries[-1]["resource"]["resourceType"] != item["resourceType"]:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            entries = []
        entries.append({"resource": item, "request": {"method": "PUT", "url": f"{item['resourceType']}/{item['id']}"}})
        if len(entries) == size:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            entries = []
    if entries:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _bundle_type(document: dict) -> str:
    return document["entry"][0]["resource"]["resourceType"]


def pg_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def fresh_database(backend: str, workdir: str, name: str = PG_DATABASE) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir}/search-bench.db"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url(name)


def drop_database(backend: str, name: str = PG_DATABASE) -> None:
    if backend == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


ANALYZE_EVERY = 100_000  # resources; stands in for autovacuum's ANALYZE (off on these machines)


def analyze(engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def settle(engine) -> float:
    """What autovacuum does after a bulk load (it is off on these machines): VACUUM ANALYZE on
    PostgreSQL, so the visibility map lets index-only scans skip the heap; ANALYZE on SQLite.
    Returns the seconds it took."""
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        analyze(engine)
    return time.perf_counter() - started


def _post(client, document: dict) -> int:
    response = client.post("/fhir", json=document, content_type="application/fhir+json")
    if response.status_code != 200:
        raise SystemExit(f"a {_bundle_type(document)} bundle failed: {response.status_code} "
                         f"{response.get_data(as_text=True)[:500]}")
    return len(document["entry"])


_worker_client = None


def _start_worker(settings: Settings, token: str) -> None:
    global _worker_client
    _worker_client = create_app(settings).test_client()
    _worker_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"


def _worker_post(document: dict) -> int:
    return _post(_worker_client, document)


def _ready(_n: int) -> bool:
    return _worker_client is not None


def _posted(client, documents: Iterator[dict], pool) -> Iterator[int]:
    """Each Bundle's entry count as it is written: in this process, or by the pool's processes, one
    resource type at a time."""
    if pool is None:
        for document in documents:
            yield _post(client, document)
        return
    for _type, same_type in itertools.groupby(documents, key=_bundle_type):
        yield from pool.imap_unordered(_worker_post, same_type)


def ingest(client, engine, settings: Settings, patients: int, per_patient: int, bundle_size: int,
           workers: int = 1, profiles: bool = True) -> tuple[int, float]:
    """Resources ingested and seconds taken (the worker processes' start-up not counted)."""
    with ExitStack() as stack:
        pool = None
        if workers > 1:
            token = client.environ_base["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers, _start_worker,
                                                                                 (settings, token)))
            assert all(pool.map(_ready, range(workers * 4), chunksize=1))  # every worker's app is built
        items = with_conditions(patients, per_patient)
        return _ingest(client, engine, bundles(items if profiles else unprofiled(items), bundle_size), pool)


def _ingest(client, engine, documents: Iterator[dict], pool) -> tuple[int, float]:
    loaded, started, analyzed = 0, time.perf_counter(), 0
    for number, entries in enumerate(_posted(client, documents, pool), 1):
        loaded += entries
        if loaded - analyzed >= ANALYZE_EVERY:  # planner statistics that follow the growth, as in production
            analyze(engine)
            analyzed = loaded
        if number % 20 == 0:
            rate = loaded / (time.perf_counter() - started)
            print(f"  ingested {loaded:>9,} resources ({rate:,.0f}/s)", file=sys.stderr)
    return loaded, time.perf_counter() - started


def searches(patients: int, rng: random.Random, count: int = 10) -> dict[str, list[str]]:
    """The measured searches, each asking for pages of ``count``: a first page costs the same to
    render at every scale, so the figures compare finding the matches (the page is full at both
    scales as long as there are ``count`` matches)."""
    ids = [f"p{rng.randint(1, patients):06d}" for _ in range(1000)]
    families = ["Mor", "Smi", "Gar", "Ngu", "Joh", "Lee", "Bro", "Wil"]
    page = f"&_count={count}"
    return {
        "Observation?patient=X&category=laboratory":
            [f"Observation?patient={i}&category=laboratory{page}" for i in ids],
        "Observation?patient=X&code=4548-4&date=ge2025-01-01":
            [f"Observation?patient={i}&code=http://loinc.org|4548-4&date=ge2025-01-01{page}" for i in ids],
        "Condition?patient=X": [f"Condition?patient={i}{page}" for i in ids],
        "Patient?name=...": [f"Patient?name={rng.choice(families)}{page}" for _ in ids],
    }


def latency(client, urls: list[str], count: int) -> tuple[float, float, int]:
    timings, results = [], 0
    for url in urls[:count]:
        started = time.perf_counter()
        response = client.get("/fhir/" + url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code}")
        results += len(response.get_json().get("entry", []))
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], results


def plan(ctx, query: str) -> list[str]:
    resource_type, _, params = query.partition("?")
    pairs = [tuple(p.split("=", 1)) for p in params.split("&")]
    parsed = parse_search(ctx.search_parameters, [resource_type], pairs, strict=True)
    statement = select(resource.c.pid).where(build_where(resource_type, parsed.criteria, ctx.base_url)) \
        .order_by(resource.c.pid).limit(51)
    compiled = statement.compile(ctx.database.engine, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if ctx.database.dialect == "sqlite" else "EXPLAIN "
    with ctx.database.read() as conn:
        rows = conn.execute(text(explain + str(compiled))).all()
    return [str(row[-1]) for row in rows]


def full_scans(lines: list[str]) -> list[str]:
    bad = []
    for line in lines:
        if "Seq Scan" in line or (line.strip().startswith("SCAN") and "USING" not in line):
            bad.append(line.strip())
    return bad


def run(backend: str, args) -> None:
    print(f"\n=== {backend}: {args.patients:,} patients x {args.observations_per_patient} observations")
    with tempfile.TemporaryDirectory() as workdir:
        reuse = args.reuse and backend == "postgresql"
        url = pg_url(args.database) if reuse else fresh_database(backend, workdir, args.database)
        try:
            settings = Settings(database_url=url, base_url="http://localhost/fhir", max_body_bytes=512 * 1024 * 1024)
            app = create_app(settings)
            ctx = app.extensions["fhirportal"]
            client = app.test_client()
            # every FHIR request needs a token: the benchmark acts as the EHR, with every right
            token = ctx.tokens.mint(client_id="search-benchmark", scope="system/*.cruds", expires_in=24 * 3600)
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
            if reuse:
                print("ingest: skipped (--reuse: the database a --keep run left)")
            else:
                loaded, seconds = ingest(client, ctx.database.engine, settings, args.patients,
                                         args.observations_per_patient, args.bundle_size, args.workers,
                                         profiles=not args.no_profiles)
                validated = "without meta.profile: base validation only" if args.no_profiles else \
                    "US Core profiles validated"
                print(f"ingest: {loaded:,} resources in {seconds:,.1f} s = {loaded / seconds:,.0f} resources/s "
                      f"(transaction Bundles of {args.bundle_size}, validation and indexing included, {validated}, "
                      f"{args.workers} worker process{'es' if args.workers > 1 else ''})")
            print(f"after the load: {'VACUUM ANALYZE' if backend == 'postgresql' else 'ANALYZE'} "
                  f"in {settle(ctx.database.engine):.1f} s (autovacuum's work, off on these machines)")
            print(f"{f'search (pages of _count={args.count})':<55}{'p50 ms':>9}{'p95 ms':>9}{'hits/query':>12}")
            for name, urls in searches(args.patients, random.Random(7), args.count).items():
                latency(client, urls, 20)  # warm-up
                p50, p95, hits = latency(client, urls[20:], args.queries)
                print(f"{name:<55}{p50:>9.2f}{p95:>9.2f}{hits / args.queries:>12.1f}")
            print("plans:")
            for name, urls in searches(args.patients, random.Random(7), args.count).items():
                lines = plan(ctx, urls[0])
                scans = full_scans(lines)
                verdict = "index only" if not scans else "FULL SCAN: " + "; ".join(scans)
                print(f"  {name}: {verdict}")
                if args.verbose:
                    print("    " + "\n    ".join(lines))
            ctx.audit.flush()  # the journal of the measured requests, before the database goes away
            ctx.database.dispose()
        finally:
            if (args.keep or args.reuse) and backend == "postgresql":
                print(f"kept {url}")
            else:
                drop_database(backend, args.database)


def _measuring_client(url: str):
    app = create_app(Settings(database_url=url, base_url="http://localhost/fhir"))
    ctx = app.extensions["fhirportal"]
    client = app.test_client()
    token = ctx.tokens.mint(client_id="search-benchmark", scope="system/*.cruds", expires_in=24 * 3600)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    with ctx.database.read() as conn:
        patients = conn.execute(text("SELECT count(*) FROM resource WHERE resource_type = 'Patient'")).scalar_one()
        resources = conn.execute(text("SELECT count(*) FROM resource")).scalar_one()
    return ctx, client, patients, resources


def compare(args) -> None:
    """The searches on two kept PostgreSQL databases (a small and a large population) measured in
    alternating rounds, so that the machine's drift (±30 % between runs here) falls on both alike;
    prints p50/p95 at each scale and the large/small p95 ratio."""
    small_name, large_name = args.compare
    scales = []
    for name in (small_name, large_name):
        ctx, client, patients, resources = _measuring_client(pg_url(name))
        seconds = settle(ctx.database.engine)
        print(f"{name}: {resources:,} resources, {patients:,} patients; VACUUM ANALYZE in {seconds:.1f} s")
        scales.append((client, searches(patients, random.Random(7), args.count), ctx))
    rounds, per_round = args.rounds, max(1, args.queries // args.rounds)
    timings = {(scale, name): [] for scale in range(2) for name in scales[0][1]}
    hits = {(scale, name): 0 for scale in range(2) for name in scales[0][1]}
    for number in range(rounds):
        for scale in ((0, 1) if number % 2 == 0 else (1, 0)):
            client, urls_by_name, _ctx = scales[scale]
            for name, urls in urls_by_name.items():
                chunk = urls[number * per_round:(number + 1) * per_round] or urls[:per_round]
                latency(client, chunk[:3], 3)  # warm this connection and plan again
                for url in chunk:
                    started = time.perf_counter()
                    response = client.get("/fhir/" + url)
                    timings[scale, name].append((time.perf_counter() - started) * 1000)
                    hits[scale, name] += len(response.get_json().get("entry", []))
    print(f"\n{rounds} alternating rounds x {per_round} queries per search and scale (pages of _count={args.count})")
    print(f"{'search':<52}{'small p50':>10}{'p95':>7}{'large p50':>10}{'p95':>7}{'p95 ratio':>10}{'hits s/l':>10}")
    for name in scales[0][1]:
        figures = []
        for scale in range(2):
            values = sorted(timings[scale, name])
            figures.append((statistics.median(values), values[int(len(values) * 0.95) - 1]))
        ratio = figures[1][1] / figures[0][1]
        found = "/".join(f"{hits[scale, name] / len(timings[scale, name]):.1f}" for scale in range(2))
        print(f"{name:<52}{figures[0][0]:>10.2f}{figures[0][1]:>7.2f}{figures[1][0]:>10.2f}{figures[1][1]:>7.2f}"
              f"{ratio:>10.2f}{found:>10}")
    for _client, _urls, ctx in scales:
        ctx.audit.flush()
        ctx.database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--observations-per-patient", type=int, default=10)
    parser.add_argument("--bundle-size", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1,
                        help="ingest with this many server processes (as gunicorn workers), one type at a time")
    parser.add_argument("--verbose", action="store_true", help="print whole plans")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for inspection")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the searches on the PostgreSQL database a --keep run left, without ingesting")
    parser.add_argument("--count", type=int, default=10, help="_count of every measured search (a page)")
    parser.add_argument("--database", default=PG_DATABASE, help="the PostgreSQL database's name")
    parser.add_argument("--compare", nargs=2, metavar=("SMALL", "LARGE"),
                        help="only measure the searches on two kept PostgreSQL databases, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of --compare")
    parser.add_argument("--no-profiles", action="store_true",
                        help="ingest the resources without meta.profile (what validating US Core profiles costs)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.compare:
        compare(args)
        return
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        run(backend, args)


if __name__ == "__main__":
    main()
