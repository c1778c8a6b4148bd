"""Where a request's time goes, in-process (no HTTP server): N requests of each kind through the Flask
test client, timed, then again under cProfile.

Kinds (``--kind``, repeatable; default all):
- ``read``: ``GET /fhir/Patient/{id}`` with a system token (no compartment SQL);
- ``patient-read``: ``GET /fhir/Observation/{id}`` of a shared lab result with its patient's token;
- ``lab-search``: ``GET /fhir/Observation?patient={id}&category=laboratory&_count=10`` with that token;
- ``ceiling``: ``GET /_bench/raw/Patient/{id}`` (the stored text through the same Flask stack).

    .venv/bin/python benchmarks/profile_read.py [--requests 2000] [--kind lab-search] [--top 30]
        [--sort tottime] [--database-url URL]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fhirportal.app import create_app  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402
from fixtures.generate import iter_large  # noqa: E402

PATIENTS, LABS = 20, 20  # of the synthetic practice (half the labs shared with the patient)
SHARED = "shared-with-patient"
KINDS = ("read", "patient-read", "lab-search", "ceiling")


def _load(client) -> dict[str, list[str]]:
    """The synthetic practice, PUT resource by resource; patient id -> ids of its shared labs."""
    shared: dict[str, list[str]] = {}
    for item in iter_large(PATIENTS, LABS):
        response = client.put(f"/fhir/{item['resourceType']}/{item['id']}", json=item,
                              content_type="application/fhir+json")
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        if item["resourceType"] == "Observation" and any(t.get("code") == SHARED for t in item["meta"].get("tag", [])):
            shared.setdefault(item["subject"]["reference"].split("/")[1], []).append(item["id"])
    return shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--kind", action="append", choices=KINDS, help="default: all")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    args = parser.parse_args(argv)

    workdir = tempfile.TemporaryDirectory(prefix="fhirportal-profile-")
    url = args.database_url or f"sqlite:///{workdir.name}/profile.db"
    app = create_app(Settings(database_url=url, benchmark_routes=True))
    client = app.test_client()
    tokens = app.extensions["fhirportal"].tokens
    system = tokens.mint(client_id="profile-read", scope="system/*.cruds")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {system}"
    shared = _load(client)
    patients = sorted(shared)
    patient_tokens = {p: tokens.mint(client_id="profile-read-app", scope="launch/patient patient/*.rs",
                                     context={"patient": p, "fhirUser": f"Patient/{p}"}) for p in patients}
    labs = [(p, lab) for p in patients for lab in shared[p]]
    n = args.requests
    requests = {
        "read": [(f"/fhir/Patient/{patients[i % len(patients)]}", system) for i in range(n)],
        "patient-read": [(f"/fhir/Observation/{labs[i % len(labs)][1]}", patient_tokens[labs[i % len(labs)][0]])
                         for i in range(n)],
        "lab-search": [(f"/fhir/Observation?patient={patients[i % len(patients)]}&category=laboratory&_count=10",
                        patient_tokens[patients[i % len(patients)]]) for i in range(n)],
        "ceiling": [(f"/_bench/raw/Patient/{patients[i % len(patients)]}", None) for i in range(n)],
    }
    requests = {kind: requests[kind] for kind in (args.kind or KINDS)}

    def run(items) -> None:
        for path, token in items:
            headers = {"Accept": "application/fhir+json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])

    for label, items in requests.items():  # warm-up, then wall time without the profiler
        run(items[:200])
        started, cpu = time.perf_counter(), time.thread_time()
        run(items)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        print(f"{label:<13} {n / elapsed:8.0f} req/s in-process ({elapsed / n * 1e6:.0f} us/request; CPU of the "
              f"requesting thread {cpu / n * 1e6:.0f} us/request)")

    for label, items in requests.items():
        profiler = cProfile.Profile()
        profiler.enable()
        run(items)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print(f"\n===== cProfile: {label} x {n} (sorted by {args.sort}) =====")
        print(out.getvalue())
    app.extensions["fhirportal"].audit.flush()  # the access log's last rows, before the database goes
    app.extensions["fhirportal"].database.dispose()
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
