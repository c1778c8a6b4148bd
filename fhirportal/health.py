"""Health endpoints for process supervisors and load balancers, outside the FHIR API (no token, not
journalled): ``GET /healthz`` — the process answers (liveness); ``GET /readyz`` — and its database answers
too (readiness: a load balancer sends this node requests only while it is 200; 503 otherwise)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .store.database import Database


def build_blueprint(database: Database) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.route("/healthz", methods=["GET", "HEAD"])
    def live():
        return jsonify(status="ok")

    @bp.route("/readyz", methods=["GET", "HEAD"])
    def ready():
        if database.reachable():
            return jsonify(status="ok", database="reachable")
        response = jsonify(status="unavailable", database="unreachable")
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    return bp
