"""Profile the FHIR read path in-process (no HTTP server): N x ``GET /fhir/Patient/<id>`` through the
Flask test client, against the same N x ``GET /_bench/raw/Patient/<id>``, with cProfile.

    .venv/bin/python benchmarks/profile_read.py [--requests 2000] [--top 30] [--sort tottime] [--database-url URL]
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

PATIENT = {"resourceType": "Patient", "name": [{"family": "Profile", "given": ["Read"]}],
           "gender": "other", "birthDate": "1970-01-01"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    args = parser.parse_args(argv)

    workdir = tempfile.TemporaryDirectory(prefix="fhirportal-profile-")
    url = args.database_url or f"sqlite:///{workdir.name}/profile.db"
    app = create_app(Settings(database_url=url, benchmark_routes=True))
    client = app.test_client()
    # every FHIR request needs a token: a patient-less system token (no compartment SQL), as the EHR reads
    token = app.extensions["fhirportal"].tokens.mint(client_id="profile-read", scope="system/*.cruds")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    ids = []
    for _ in range(50):
        response = client.post("/fhir/Patient", json=PATIENT, content_type="application/fhir+json")
        assert response.status_code == 201, response.get_data(as_text=True)
        ids.append(response.get_json()["id"])
    headers = {"Accept": "application/fhir+json"}
    paths = {
        "read": [f"/fhir/Patient/{ids[i % len(ids)]}" for i in range(args.requests)],
        "ceiling": [f"/_bench/raw/Patient/{ids[i % len(ids)]}" for i in range(args.requests)],
    }
    for label, urls in paths.items():  # warm-up, then wall time without the profiler
        for url in urls[:200]:
            client.get(url, headers=headers)
        started = time.perf_counter()
        for url in urls:
            assert client.get(url, headers=headers).status_code == 200
        elapsed = time.perf_counter() - started
        print(f"{label:<8} {args.requests / elapsed:8.0f} req/s in-process "
              f"({elapsed / args.requests * 1e6:.0f} us/request)")

    for label, urls in paths.items():
        profiler = cProfile.Profile()
        profiler.enable()
        for url in urls:
            client.get(url, headers=headers)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print(f"\n===== cProfile: {label} x {args.requests} (sorted by {args.sort}) =====")
        print(out.getvalue())
    app.extensions["fhirportal"].database.dispose()
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
