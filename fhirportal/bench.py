"""Benchmark-only routes: the physical ceiling for a FHIR read, and the read without authorization.

``GET /_bench/open/<type>/<id>`` is the FHIR read interaction itself (negotiation, ETag, error
rendering) with no token, no scope or compartment check and no access log: what a read cost before
authorization, so the benchmark can price authorization and audit alone.

``GET /_bench/raw/<type>/<id>`` serves the stored JSON text through the same Flask/WSGI stack,
looked up by the same unique key in one read transaction, but with no FHIR logic at all (no content
negotiation, ETag, validation or error rendering). ``benchmarks/rest_benchmark.py`` compares the
real read against it. Off by default: registered only when ``Settings.benchmark_routes`` is set
(``FHIRPORTAL_BENCHMARK_ROUTES=1``); never enable it in production.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import bindparam, select

from .store.database import Database
from .store.schema import resource

CONTENT_TYPE = "application/fhir+json; charset=utf-8"  # what the FHIR read answers with


def benchmark_blueprint(database: Database, ctx=None) -> Blueprint:
    blp = Blueprint("bench", __name__, url_prefix="/_bench")
    # Deleted resources keep their row with content NULL, so they answer 404 like unknown ones.
    query = select(resource.c.content).where(
        resource.c.resource_type == bindparam("resource_type"),
        resource.c.fhir_id == bindparam("fhir_id"),
    )

    @blp.get("/raw/<resource_type>/<fhir_id>")
    def raw(resource_type: str, fhir_id: str) -> Response:
        with database.read() as conn:
            content = conn.execute(query, {"resource_type": resource_type, "fhir_id": fhir_id}).scalar()
        if content is None:
            return Response(b"", status=404)
        return Response(content.encode(), status=200, content_type=CONTENT_TYPE)

    if ctx is not None:
        from .fhir.authorization import UNRESTRICTED
        from .fhir.interactions import read
        from .fhir.negotiation import is_pretty, render, response_format

        @blp.get("/open/<resource_type>/<fhir_id>")
        def open_read(resource_type: str, fhir_id: str) -> Response:
            result = read.read(ctx, request, UNRESTRICTED, resource_type, fhir_id)
            return render(result, response_format(request), is_pretty(request))

    return blp
