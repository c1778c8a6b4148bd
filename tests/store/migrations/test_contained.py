"""Migration 0010 (the index of contained resources): a database at 0009 holding a resource with
contained content upgrades in place; ``_contained`` searches wait (400, not advertised) until
``fhirportal reindex`` has built the contained rows of what was stored before, then find it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import func, select, text

from fhirportal import cli
from fhirportal.app import create_app
from fhirportal.settings import Settings
from fhirportal.store import migrate
from fhirportal.store.contained_schema import CONTAINED_TABLES, contained_resource
from fhirportal.store.database import Database
from fhirportal.store.index_state import CONTAINED

BASE_URL = "http://localhost/fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _db(url: str, *args: str):
    return CliRunner().invoke(cli.main, ["--database-url", url, *args])


def _store(url: str, rows: list[dict]) -> None:
    """Resources as a 0009 server left them (the columns ``resource`` has had since the baseline)."""
    database = Database(url)
    try:
        with database.engine.begin() as conn:
            for pid, body in enumerate(rows, start=1):
                stored = {**body, "meta": {"versionId": "1", "lastUpdated": "2024-05-01T12:00:00Z"}}
                conn.execute(text(
                    "INSERT INTO resource (pid, resource_type, fhir_id, version_id, last_updated, deleted, content, "
                    "content_hash, marks) VALUES (:pid, :type, :id, 1, :stamp, :deleted, :content, :hash, 0)"),
                    {"pid": pid, "type": body["resourceType"], "id": body["id"], "stamp": STAMP, "deleted": False,
                     "content": json.dumps(stored), "hash": f"h{pid}"})
    finally:
        database.dispose()


def test_0010_upgrades_a_database_with_contained_content_and_reindex_builds_its_rows(scratch_url):
    result = _db(scratch_url, "db", "upgrade", "--to", "0009")
    assert result.exit_code == 0, result.output
    _store(scratch_url, [
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "#med"},
         "contained": [{"resourceType": "Medication", "id": "med",
                        "code": {"coding": [{"system": RXNORM, "code": "308182"}]}}]},
    ])

    result = _db(scratch_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "Running upgrade 0009 -> 0010" in result.output
    assert migrate.head() >= "0010"

    app = create_app(Settings(database_url=scratch_url, base_url=BASE_URL))
    ctx = app.extensions["fhirportal"]
    client = app.test_client()
    try:
        bearer = {"Authorization": f"Bearer {ctx.tokens.mint(client_id='app', scope='system/*.rs')}"}
        query = "/fhir/Medication?_contained=true&code=308182"
        assert ("MedicationRequest", CONTAINED) in ctx.search_parameters.readiness.pending(force=True)
        waiting = client.get(query, headers=bearer)
        assert waiting.status_code == 400 and waiting.get_json()["issue"][0]["expression"] == ["_contained"]
        statement = client.get("/fhir/metadata").get_json()
        medication = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Medication")
        assert "_contained" not in {p["name"] for p in medication["searchParam"]}

        reindexed = _db(scratch_url, "reindex", "--quiet")
        assert reindexed.exit_code == 0, reindexed.output
        assert not ctx.search_parameters.readiness.pending(force=True)
        with ctx.database.read() as conn:
            assert conn.execute(select(contained_resource.c.pid, contained_resource.c.resource_type,
                                       contained_resource.c.contained_id)).all() == [(2, "Medication", "med")]
            assert conn.execute(select(func.count()).select_from(CONTAINED_TABLES["token"])).scalar_one() > 0

        found = client.get(query + "&_containedType=contained", headers=bearer)
        assert found.status_code == 200, found.get_json()
        assert [e["fullUrl"] for e in found.get_json()["entry"]] == [f"{BASE_URL}/MedicationRequest/rx1#med"]
        statement = client.get("/fhir/metadata").get_json()
        medication = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Medication")
        assert {"_contained", "_containedType"} <= {p["name"] for p in medication["searchParam"]}
    finally:
        ctx.audit.flush()
        ctx.database.dispose()
