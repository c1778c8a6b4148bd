"""CORS for browser-based SMART apps: the FHIR API, the discovery documents and the OAuth endpoints
a browser app calls with a bearer token (no cookies) answer any origin; the HTML pages do not.

Kept this small on purpose: it runs on every response, and a generic CORS extension cost about a
tenth of a FHIR read. Requests without an ``Origin`` header (servers, the EHR) pay one lookup.
"""

from __future__ import annotations

from flask import Flask, request

EXPOSED = "Location, ETag, Last-Modified, Content-Location, WWW-Authenticate, X-Progress, Retry-After"
METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
DEFAULT_HEADERS = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, " \
                  "If-Modified-Since"
MAX_AGE = "3600"


def install_cors(app: Flask, prefixes: tuple[str, ...], paths: frozenset[str]) -> None:
    """Answer cross-origin requests (and preflights) under ``prefixes`` and at ``paths``."""

    @app.after_request
    def _cors(response):
        if "Origin" not in request.headers:
            return response
        path = request.path
        if path not in paths and not path.startswith(prefixes):
            return response
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Expose-Headers"] = EXPOSED
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = METHODS
            headers["Access-Control-Allow-Headers"] = request.headers.get("Access-Control-Request-Headers",
                                                                          DEFAULT_HEADERS)
            headers["Access-Control-Max-Age"] = MAX_AGE
        return response
