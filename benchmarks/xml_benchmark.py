"""The cost of FHIR XML: a 50-entry searchset rendered as XML against the same page as JSON.

    .venv/bin/python benchmarks/xml_benchmark.py [--rounds 200] [--database-url URL]

Loads the demo practice (fixtures/demo) into a temporary SQLite database, then for two pages of 50
entries — ``Observation?_count=50`` (one type) and ``Patient/patient-001/$everything?_count=50``
(mixed types, the compartment a patient app pulls) — it prints, for JSON, XML and both pretty-printed:

- **render**: the median time of ``negotiation.render`` alone on the page the search returned (JSON
  splices the stored text of each resource in; XML parses it and writes every element), and the size;
- **request**: the median time of the whole request through the Flask test client (token, read
  transaction, search SQL, rendering, access log), in process, no HTTP server.

Times are CPU milliseconds of this process (``time.process_time``, all its threads: the access log's
writer works for each request too), medians of ``--rounds`` rounds after 20 warm-up rounds, the
formats interleaved in each round; XML's figures also as a multiple of JSON's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from flask import request  # noqa: E402

from fhirportal.app import create_app  # noqa: E402
from fhirportal.fhir import negotiation  # noqa: E402
from fhirportal.fhir.authorization import UNRESTRICTED  # noqa: E402
from fhirportal.fhir.interactions import search  # noqa: E402
from fhirportal.fhir.loading import expand_paths, load  # noqa: E402
from fhirportal.fhir.operations import everything  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402

FORMATS = [("json", negotiation.FHIR_JSON, False), ("xml", negotiation.FHIR_XML, False),
           ("json pretty", negotiation.FHIR_JSON, True), ("xml pretty", negotiation.FHIR_XML, True)]
PAGES = {
    "Observation?_count=50": ("/fhir/Observation?_count=50",
                              lambda ctx, request: search.search(ctx, request, UNRESTRICTED, "Observation")),
    "Patient/patient-001/$everything?_count=50": (
        "/fhir/Patient/patient-001/$everything?_count=50",
        lambda ctx, request: everything.everything(ctx, request, UNRESTRICTED, "Patient", "patient-001")),
}


def _medians_ms(runs: dict, rounds: int) -> dict[str, float]:
    """Median CPU time of each run (this process's, so other processes on the machine count less), the runs
    interleaved round by round so that a slower stretch of the machine hits each of them alike."""
    for _ in range(20):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            run()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args(argv)

    workdir = tempfile.TemporaryDirectory(prefix="fhirportal-xml-bench-")
    app = create_app(Settings(database_url=args.database_url or f"sqlite:///{workdir.name}/xml.db"))
    ctx = app.extensions["fhirportal"]
    report = load(ctx, expand_paths([str(REPO / "fixtures" / "demo")]))
    print(f"loaded the demo practice: {report.created} resources")
    client = app.test_client()
    token = ctx.tokens.mint(client_id="xml-benchmark", scope="system/*.cruds")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    for label, (url, run_search) in PAGES.items():
        with app.test_request_context(url):
            result = run_search(ctx, request)
        entries = len(result.body["entry"])
        print(f"\n{label}: {entries} entries")
        print(f"  {'format':<12} {'render ms':>10} {'bytes':>9} {'request ms':>11}")
        sizes, renders, requests = {}, {}, {}
        for name, media, pretty in FORMATS:
            full = url + f"&_format={name.split()[0]}" + ("&_pretty=true" if pretty else "")
            response = client.get(full)
            assert response.status_code == 200 and response.content_type.startswith(media), response.data[:200]
            with app.test_request_context(url):
                sizes[name] = len(negotiation.render(result, media, pretty).get_data())
            renders[name] = lambda r=result, m=media, p=pretty: negotiation.render(r, m, p)
            requests[name] = lambda u=full: client.get(u)
        with app.test_request_context(url):
            rendering = _medians_ms(renders, args.rounds)
        requesting = _medians_ms(requests, args.rounds)
        figures = {name: (rendering[name], sizes[name], requesting[name]) for name, _, _ in FORMATS}
        for name, (render_ms, size, request_ms) in figures.items():
            print(f"  {name:<12} {render_ms:>10.2f} {size:>9,} {request_ms:>11.2f}")
        for plain in ("json", "json pretty"):
            xml_name = plain.replace("json", "xml")
            (json_render, json_size, json_request), (xml_render, xml_size, xml_request) = \
                figures[plain], figures[xml_name]
            print(f"  {xml_name} / {plain}: render x{xml_render / json_render:.1f}, bytes x{xml_size / json_size:.2f}, "
                  f"request x{xml_request / json_request:.2f} (+{xml_request - json_request:.2f} ms)")
    ctx.audit.flush()
    ctx.database.dispose()
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
