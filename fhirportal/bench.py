"""Benchmark-only routes: the physical ceiling for a FHIR read, and the read without authorization.

``/_bench/open/…`` is the FHIR API itself (the same blueprint, hooks, negotiation, ETag, error
rendering and read transaction) with no token, no scope or compartment check and no access log:
what a request costs without authorization, so the benchmark can price authorization and audit alone.

``GET /_bench/raw/<type>/<id>`` serves the stored JSON text through the same Flask/WSGI stack,
looked up by the same unique key in one read transaction, but with no FHIR logic at all (no content
negotiation, ETag, validation or error rendering). ``benchmarks/rest_benchmark.py`` compares the
real read against it. Off by default: registered only when ``Settings.benchmark_routes`` is set
(``FHIRPORTAL_BENCHMARK_ROUTES=1``); never enable it in production.
"""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import bindparam, select

from .store.database import Database
from .store.schema import resource

CONTENT_TYPE = "application/fhir+json; charset=utf-8"  # what the FHIR read answers with


def open_api_blueprint(conformance) -> Blueprint:
    """The FHIR API without authorization, under /_bench/open (see the module's docstring)."""
    from .fhir.routes import build_blueprint

    return build_blueprint("/_bench/open", conformance, name="fhir_open", authorize=False)


def benchmark_blueprint(database: Database) -> Blueprint:
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

    return blp
