"""Where the load test's writes spend their time, in-process (no HTTP server): the EHR's transaction
push (a conditional create of a lab result and the conditional update of the previous one, subject by
MRN) and the nurse's ``$portal-invite`` / ``$portal-cancel``, on the demo practice, timed and then
under cProfile.

    .venv/bin/python benchmarks/profile_write.py [--requests 300] [--kind transaction|portal]
        [--top 30] [--sort tottime] [--database-url URL]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import load_test  # noqa: E402
from fhirportal.app import create_app  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402

RESULTS = "https://fhirportal.dev/fhir/sid/lab-result"
LOINC_GLUCOSE = ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL")


def _observation(value_id: str, mrn: str, status: str) -> dict:
    code, display, unit = LOINC_GLUCOSE
    return {
        "resourceType": "Observation", "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "identifier": [{"system": RESULTS, "value": value_id}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient?identifier={load_test.MRN_SYSTEM}|{mrn}"},
        "effectiveDateTime": "2026-11-20T09:30:00-07:00", "issued": "2026-11-20T11:00:00-07:00",
        "valueQuantity": {"value": 99, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def bundles(mrns: list[str], n: int, run: str) -> list[bytes]:
    made = []
    for i in range(n):
        entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                    "resource": _observation(f"{run}-{i}", mrns[i % len(mrns)], "preliminary"),
                    "request": {"method": "POST", "url": "Observation",
                                "ifNoneExist": f"identifier={RESULTS}|{run}-{i}"}}]
        if i:
            entries.append({"resource": _observation(f"{run}-{i - 1}", mrns[(i - 1) % len(mrns)], "final"),
                            "request": {"method": "PUT", "url": f"Observation?identifier={RESULTS}|{run}-{i - 1}"}})
        made.append(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode())
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--kind", action="append", choices=("transaction", "portal"), help="default: both")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    args = parser.parse_args(argv)

    workdir = tempfile.TemporaryDirectory(prefix="fhirportal-profile-")
    url = args.database_url or f"sqlite:///{workdir.name}/profile.db"
    load_test._fhirportal(url, "load", "--quiet", str(load_test.DEMO))
    load_test._fhirportal(url, "accounts", "load", str(load_test.DEMO_ACCOUNTS))
    mrns, invitable = load_test.demo_patients()
    tokens = load_test.mint_tokens(url, [])
    app = create_app(Settings(database_url=url))
    client = app.test_client()
    database = app.extensions["fhirportal"].database
    turns: list[float] = []
    database.on_write = lambda wait, duration: turns.append(duration)
    ehr = {"Authorization": f"Bearer {tokens['system_token']}", "Content-Type": "application/fhir+json"}
    nurse = {"Authorization": f"Bearer {tokens['staff_token']}", "Content-Type": "application/fhir+json"}
    n = args.requests
    kinds = args.kind or ["transaction", "portal"]

    def work(kind: str, run: str):
        if kind == "transaction":
            return [("/fhir", body, ehr) for body in bundles(sorted(mrns.values()), n, run)]
        patient = invitable[0]
        return [(f"/fhir/Patient/{patient}/$portal-{'invite' if i % 2 == 0 else 'cancel'}", None, nurse)
                for i in range(n - n % 2)]

    def run(items) -> None:
        for path, body, headers in items:
            response = client.post(path, data=body, headers=headers)
            assert response.status_code in (200, 201), (path, response.get_data(as_text=True)[:400])

    for kind in kinds:
        run(work(kind, "warm")[:20])
        items = work(kind, "timed")
        turns.clear()
        started, cpu = time.perf_counter(), time.thread_time()
        run(items)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        held = sorted(turns)
        print(f"{kind:<12} {len(items) / elapsed:7.0f} req/s in-process ({elapsed / len(items) * 1e3:.2f} ms/request; "
              f"CPU of the requesting thread {cpu / len(items) * 1e3:.2f} ms/request); writers' turn held "
              f"{sum(held) / len(items) * 1e3:.2f} ms/request in {len(held)} writes, "
              f"p50 {held[len(held) // 2] * 1e3:.2f} ms, p95 {held[int(len(held) * 0.95)] * 1e3:.2f} ms")
    for kind in kinds:
        items = work(kind, "profiled")
        profiler = cProfile.Profile()
        profiler.enable()
        run(items)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print(f"\n===== cProfile: {kind} x {len(items)} (sorted by {args.sort}) =====")
        print(out.getvalue())
    app.extensions["fhirportal"].audit.flush()  # the access log's last rows, before the database goes
    app.extensions["fhirportal"].database.dispose()
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
