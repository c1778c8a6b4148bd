"""Prometheus metrics, served at ``GET /metrics`` (text exposition format).

Off unless ``FHIRPORTAL_METRICS_TOKEN`` is set (404); then only ``Authorization: Bearer <that token>``
reads them (compared in constant time; 401 otherwise). With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn:
see gunicorn.conf.py) each worker writes its values there and a scrape adds up every worker's; without
it, this process's default registry is served.

Labels come from small fixed sets so that a request costs a counter and a histogram update: the
interaction (read, search, create, … or the Flask endpoint outside the FHIR API), the resource type (only
a supported one, else empty) and the status code.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, abort, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import HTTPException

from fhirportal.fhir.audit import INSTANCE_ACTIONS, TYPE_ACTIONS
from fhirportal.fhir.resource_types import SUPPORTED_TYPES

REQUESTS = Counter("fhirportal_http_requests", "HTTP requests answered",
                   ("interaction", "resource_type", "status"))
LATENCY = Histogram("fhirportal_http_request_duration_seconds", "Time to answer an HTTP request (seconds)",
                    ("interaction",), buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
TOKENS_ISSUED = Counter("fhirportal_tokens_issued", "Access tokens issued by the token endpoint", ("grant_type",))
TOKEN_FAILURES = Counter("fhirportal_token_failures", "Token requests refused", ("grant_type",))
LOGIN_LOCKOUTS = Counter("fhirportal_login_lockouts", "Accounts locked after too many wrong passwords")

GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
TOKEN_ENDPOINT = "smart.token"
ENDPOINT_INTERACTIONS = {"fhir.version_read": "vread", "fhir.metadata": "capabilities",
                         "fhir.system_search": "search-system", "fhir.type_search": "search",
                         "fhir.system_history": "history", "fhir.type_history": "history",
                         "fhir.instance_history": "history", "fhir.instance_operation": "operation"}


def interaction(endpoint: str | None, method: str, view_args: dict | None) -> str:
    """What a request was, from a small set: the FHIR interaction, else its Flask endpoint."""
    if endpoint is None:
        return "unmatched"
    if not endpoint.startswith("fhir."):
        return endpoint
    view_args = view_args or {}
    if endpoint == "fhir.instance" or endpoint == "fhir.type_level":
        if str(view_args.get("fhir_id", "")).startswith("$"):
            return "operation"
        table = INSTANCE_ACTIONS if endpoint == "fhir.instance" else TYPE_ACTIONS
        return table.get(method, method.lower())
    if endpoint == "fhir.system_level":
        return "search-system" if method in ("GET", "HEAD") else "transaction"
    return ENDPOINT_INTERACTIONS.get(endpoint, endpoint)


def observe(endpoint: str | None, method: str, view_args: dict | None, status: int, seconds: float,
            grant_type: str | None = None) -> None:
    """Count one answered request."""
    kind = interaction(endpoint, method, view_args)
    resource_type = (view_args or {}).get("resource_type")
    REQUESTS.labels(kind, resource_type if resource_type in SUPPORTED_TYPES else "", str(status)).inc()
    LATENCY.labels(kind).observe(seconds)
    if endpoint == TOKEN_ENDPOINT:
        grant = grant_type if grant_type in GRANT_TYPES else "other"
        (TOKENS_ISSUED if status == 200 else TOKEN_FAILURES).labels(grant).inc()


def lockout() -> None:
    LOGIN_LOCKOUTS.inc()


def exposition(multiprocess_dir: str | None, extra: list | None = None) -> bytes:
    """The metrics in the text format: every worker's (multiprocess mode), or this process's; then the
    ``extra`` collectors' (read at scrape time)."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if extra:
        scraped = CollectorRegistry()
        for collector in extra:
            scraped.register(collector)
        text += generate_latest(scraped)
    return text


def authorized(configured: str, header: str | None) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), configured.encode())


def _grant_type() -> str | None:
    """The token request's grant_type, if its form could be read (not one refused for its size: reading
    it again while the 413 is answered would raise)."""
    try:
        return request.form.get("grant_type")
    except HTTPException:
        return None


def install(app: Flask, token: str | None, multiprocess_dir: str | None) -> None:
    """Count every request, and serve ``/metrics``."""

    @app.before_request
    def _start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.get("metrics_started")
        grant_type = _grant_type() if request.endpoint == TOKEN_ENDPOINT else None
        observe(request.endpoint, request.method, request.view_args, response.status_code,
                time.perf_counter() - started if started is not None else 0.0, grant_type)
        return response

    bp = Blueprint("metrics", __name__)

    @bp.route("/metrics", methods=["GET"])
    def metrics():
        if not token:
            abort(404)  # off: as if there were no such page
        if not authorized(token, request.headers.get("Authorization")):
            return Response("A valid bearer token is required\n", status=401, mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(exposition(multiprocess_dir, app.extensions.get("metrics_collectors")), mimetype=None,
                        content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    app.register_blueprint(bp)


def watch(app: Flask, ctx) -> None:
    """The server's state (observability/state.py): the pool after each request, the journal's writes,
    export jobs and Subscription deliveries at each scrape."""
    from . import state

    state.watch(ctx)
    app.extensions["metrics_collectors"] = [state.DatabaseState(ctx.database)]

    @app.after_request
    def _sample_pool(response):
        state.sample_pool(ctx.database)
        return response
