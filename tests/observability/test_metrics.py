"""``GET /metrics``: off (404) unless FHIRPORTAL_METRICS_TOKEN is set, then only for that bearer token (401
otherwise); the Prometheus counters and histogram grow with the requests answered, and gunicorn workers'
values add up through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fhirportal.observability import metrics
from fhirportal.settings import Settings
from tests.observability.conftest import METRICS_TOKEN
from tests.observability.sign_in import sign_in_and_use_an_app
from tests.support import Fhir, patient

ROOT = Path(__file__).resolve().parents[2]
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def _samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _scrape(ops_client) -> dict[tuple, float]:
    answer = ops_client.get("/metrics", headers=BEARER)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return _samples(answer.get_data(as_text=True))


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_settings():
    env = Settings.from_env({"FHIRPORTAL_METRICS_TOKEN": "t", "PROMETHEUS_MULTIPROC_DIR": "/tmp/m"})
    assert (env.metrics_token, env.metrics_multiprocess_dir) == ("t", "/tmp/m")
    assert Settings.from_env({}).metrics_token is None


def test_off_without_a_token(client):
    answer = client.get("/metrics", headers=BEARER)
    assert answer.status_code == 404
    assert "X-Request-ID" in answer.headers


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x",
                                    "Bearer", f"bearer {METRICS_TOKEN[:-1]}"])
def test_refused_without_the_token(ops_client, header):
    answer = ops_client.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert METRICS_TOKEN not in answer.get_data(as_text=True)


def test_counters_grow_with_requests(ops_client, token):
    fhir = Fhir(ops_client, token)
    fhir.put("Patient/m1", patient(id="m1"))
    before = _scrape(ops_client)
    assert fhir.get("Patient/m1").status_code == 200
    assert fhir.get("Patient/nobody").status_code == 404
    assert fhir.get("Observation?patient=m1").status_code == 200
    assert fhir.get(f"NotAType/{'x' * 40}").status_code in (400, 404)
    after = _scrape(ops_client)
    requests = "fhirportal_http_requests_total"
    for labels in ({"interaction": "read", "resource_type": "Patient", "status": "200"},
                   {"interaction": "read", "resource_type": "Patient", "status": "404"},
                   {"interaction": "search", "resource_type": "Observation", "status": "200"}):
        assert _value(after, requests, **labels) == _value(before, requests, **labels) + 1, labels
    assert not any(dict(labels).get("resource_type") == "NotAType" for (_name, labels) in after)  # known types only
    latency = "fhirportal_http_request_duration_seconds_count"
    assert _value(after, latency, interaction="read") == _value(before, latency, interaction="read") + 3
    # the first scrape counted too (as the metrics endpoint)
    assert _value(after, requests, interaction="metrics.metrics", resource_type="", status="200") >= 1


def test_tokens_failures_and_lockouts_are_counted(app, client, fhir, ops_client):
    before = _scrape(ops_client)
    sign_in_and_use_an_app(app, client, fhir)  # a code and a refresh exchanged, an account locked
    refused = client.post("/auth/token", data={"grant_type": "client_credentials"})
    assert refused.status_code in (400, 401)
    after = _scrape(ops_client)

    def grew(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("fhirportal_tokens_issued_total", grant_type="authorization_code") == 1
    assert grew("fhirportal_tokens_issued_total", grant_type="refresh_token") == 1
    assert grew("fhirportal_token_failures_total", grant_type="client_credentials") == 1
    assert grew("fhirportal_login_lockouts_total") == 1


WORKER = """
from fhirportal.observability import metrics
metrics.observe("fhir.instance", "GET", {"resource_type": "Patient", "fhir_id": "x"}, 200, 0.01)
"""


def test_workers_add_up_in_multiprocess_mode(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _worker in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, cwd=ROOT, timeout=120)
    samples = _samples(metrics.exposition(str(tmp_path)).decode())
    assert _value(samples, "fhirportal_http_requests_total", interaction="read", resource_type="Patient",
                  status="200") == 2
    assert _value(samples, "fhirportal_http_request_duration_seconds_count", interaction="read") == 2


def test_interactions_come_from_a_small_set():
    assert metrics.interaction("fhir.instance", "DELETE", {"resource_type": "Patient", "fhir_id": "1"}) == "delete"
    assert metrics.interaction("fhir.instance", "GET", {"resource_type": "Patient", "fhir_id": "$everything"}) == \
        "operation"
    assert metrics.interaction("fhir.type_level", "POST", {"resource_type": "Patient"}) == "create"
    assert metrics.interaction("fhir.system_level", "POST", {}) == "transaction"
    assert metrics.interaction("fhir.version_read", "GET", {}) == "vread"
    assert metrics.interaction("fhir.metadata", "GET", {}) == "capabilities"
    assert metrics.interaction("smart.token", "POST", {}) == "smart.token"
    assert metrics.interaction(None, "GET", None) == "unmatched"


def test_the_server_state_is_in_the_metrics(ops_app, ops_client, token):
    """The journal's writes (this process), export jobs by status and Subscription deliveries (the
    database), the pool (after each request)."""
    from sqlalchemy import insert

    from fhirportal.store import clock
    from fhirportal.store.export_schema import export_job

    ctx = ops_app.extensions["fhirportal"]
    before = _scrape(ops_client)
    reader = Fhir(ops_client, token)
    assert reader.put("Patient/m1", patient(id="m1")).status_code in (200, 201)
    for _ in range(3):
        assert reader.get("Patient/m1").status_code == 200
    ctx.audit.flush()
    with ctx.database.write() as conn:
        conn.execute(insert(export_job).values(
            id="metrics-job", status="in-progress", kind="system", request="http://localhost/fhir/$export",
            types="[]", transaction_time=clock.now(), created=clock.now(), client_id="c"))
    after = _scrape(ops_client)
    assert _value(after, "fhirportal_access_log_written_total") >= _value(
        before, "fhirportal_access_log_written_total") + 4
    assert _value(after, "fhirportal_export_jobs", status="in-progress") == 1
    assert ("fhirportal_db_pool_checked_out", ()) in after
    assert ("fhirportal_access_log_pending", ()) in after
    # the PUT, the journal's flush and the export job: at least three write transactions, timed
    for histogram in ("fhirportal_db_write_wait_seconds", "fhirportal_db_write_duration_seconds"):
        assert _value(after, f"{histogram}_count") >= _value(before, f"{histogram}_count") + 3
        assert _value(after, f"{histogram}_sum") > _value(before, f"{histogram}_sum")
