"""The patient portal's health summary (``GET /portal/``) for a patient with many observations.

Builds a patient with ``--observations`` Observations (half shared lab results, half vital signs, over
five years) and a chart of the other kinds the summary lists (medications, allergies, problems,
immunizations, appointments, visits, notes, a care team), signs in through the portal (the
authorization server's login, code exchange) and renders the summary ``--requests`` times in-process
(Flask test client, no network), then prints p50/p95/p99 and PASS/FAIL for the target (p95 < 300 ms).
The labs and vital-signs pages are timed too. Temporary SQLite file by default; ``--database-url``
DROPS and re-creates the tables of the database it is given (use one of its own).

    .venv/bin/python benchmarks/portal_summary_benchmark.py [--observations 1000] [--requests 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhirportal.app import create_app, prepare_database  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402
from tests.web.flows import PASSWORD, sign_in  # noqa: E402
from tests.web.practice import blood_pressure, chart, lab, vital  # noqa: E402

TARGET_P95_MS = 300.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _observations(patient_id: str, count: int) -> list[dict]:
    """``count`` observations over five years: shared HbA1c results, weights and blood pressures."""
    made = []
    for index in range(count):
        day = f"{2021 + index * 5 // count}-{1 + index % 12:02d}-{1 + index % 28:02d}T09:{index % 60:02d}:00-07:00"
        if index % 2 == 0:
            made.append(lab(patient_id, day, 5.0 + (index % 30) / 10))
        elif index % 4 == 1:
            made.append(vital(patient_id, day, "29463-7", "Body weight",
                              valueQuantity={"value": 70 + index % 20, "unit": "kg"}))
        else:
            made.append(blood_pressure(patient_id, day, 110 + index % 40, 70 + index % 20))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observations", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='fhirportal-portal-bench-')}/bench.db"
    app = create_app(Settings(database_url=url, base_url="http://localhost/fhir"),
                     create_schema=False)
    ctx = app.extensions["fhirportal"]
    ctx.database.drop_schema()
    prepare_database(ctx)
    started = time.perf_counter()
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"text": "Dr. Elena Vasquez"}]},
                              fhir_id="dr")
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"given": ["Maria"], "family": "Garcia"}],
                                     "birthDate": "1968-04-12"}, fhir_id="p1")
        for body in chart("p1")[5:]:  # the chart's other kinds (its few labs and vitals left out)
            ctx.repository.create(conn, body, fhir_id=body.pop("id"))
        for body in _observations("p1", args.observations):
            ctx.repository.create(conn, body)
    if ctx.database.dialect == "postgresql":  # as autovacuum would have by now: the planner needs statistics
        from sqlalchemy import text

        with ctx.database.write() as conn:
            conn.execute(text("ANALYZE"))
    print(f"patient p1: {args.observations} observations and a chart, written in "
          f"{time.perf_counter() - started:.1f} s ({ctx.database.dialect})")
    app.extensions["smart"].accounts.create("maria", PASSWORD, kind="patient", fhir_user="Patient/p1",
                                            patients=("p1",))
    client = app.test_client()
    assert sign_in(client, "maria").status_code == 200
    failures = 0
    for path, requests in (("/portal/", args.requests), ("/portal/labs", max(args.requests // 10, 3)),
                           ("/portal/vitals", max(args.requests // 10, 3))):
        client.get(path)  # warm-up
        seconds = []
        cpu = time.process_time()
        for _ in range(requests):
            begun = time.perf_counter()
            response = client.get(path)
            seconds.append(time.perf_counter() - begun)
            if response.status_code != 200:
                failures += 1
        cpu = (time.process_time() - cpu) / requests
        print(f"GET {path:<16} n={len(seconds):<4} p50 {statistics.median(seconds) * 1000:7.1f} ms   "
              f"p95 {_percentile(seconds, 0.95) * 1000:7.1f} ms   p99 {_percentile(seconds, 0.99) * 1000:7.1f} ms   "
              f"CPU {cpu * 1000:6.1f} ms/request   ({len(response.data) // 1024} KiB)")
        if path == "/portal/":
            p95 = _percentile(seconds, 0.95) * 1000
    ctx.audit.flush()
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    verdict = "PASS" if p95 < TARGET_P95_MS and failures == 0 else "FAIL"
    print(f"{verdict}: summary p95 {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms), {failures} failed requests")
    ctx.database.dispose()


if __name__ == "__main__":
    main()
