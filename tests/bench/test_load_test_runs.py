"""The load test (benchmarks/load_test.py) runs end to end at a tiny size: it loads the demo practice,
starts gunicorn, drives it with locust (patient apps, EHR transaction pushes, portal staff), prints its
table and target verdicts, and no request of the mix fails — so a change to the server that breaks one
of those clients (a scope, a search, the transaction, the portal operations) fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
KINDS = {"read Patient/{id}", "search Observation?patient&category=laboratory", "transaction (EHR push)",
         "$portal-status"}


def _backends():
    yield pytest.param(["--backend", "sqlite"], id="sqlite")
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL", "")
    if url.startswith("postgresql"):  # a scratch database of its own beside the test database, dropped after
        name = f"fhirportal_loadtest_{make_url(url).database}"[:63]
        yield pytest.param(["--backend", "postgresql", "--pg-admin-url", url, "--database-name", name],
                           id="postgresql")


@pytest.mark.parametrize("backend", list(_backends()))
def test_load_test_runs_without_errors(backend, tmp_path):
    """A 5-second run with 10 users (8 patient apps, the EHR, the nurse) exits 0, prints the table with
    a total row and the PASS/FAIL lines, exercises every kind of user, and none of its requests failed."""
    figures = tmp_path / "figures.json"
    command = [sys.executable, "benchmarks/load_test.py", *backend, "--duration", "5", "--users", "10",
               "--json", str(figures)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out = done.stdout
    assert "request kind" in out and "p95 ms" in out and "\ntotal " in out, out
    assert "PASS  no errors: 0 errors" in out, out
    assert "p95 < 100 ms overall" in out, out

    result = json.loads(figures.read_text())
    total = result["total"]
    assert total["requests"] > 20 and total["errors"] == 0, result["rows"]
    kinds = {row["kind"]: row for row in result["rows"]}
    assert set(kinds) >= KINDS, sorted(kinds)
    assert all(row["errors"] == 0 for row in kinds.values()), result["error_samples"]
