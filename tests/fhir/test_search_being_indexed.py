"""A search parameter whose index is still being built is not advertised and not searched (400, even
under lenient handling), until ``fhirportal reindex`` has built it; then both work."""

from __future__ import annotations

from click.testing import CliRunner

from fhirportal import cli
from fhirportal.app import create_app
from fhirportal.fhir import conformance
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir, observation, patient

METHOD = {"resourceType": "SearchParameter", "code": "test-method", "base": ["Observation"], "type": "token",
          "expression": "Observation.method", "url": "https://fhirportal.dev/fhir/SearchParameter/test-method",
          "name": "test-method", "status": "active", "description": "a parameter added by a later release"}


def _advertised(client, code: str) -> bool:
    statement = client.get("/fhir/metadata").get_json()
    observation_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    return code in {p["name"] for p in observation_entry.get("searchParam", [])}


def test_a_parameter_being_indexed_is_refused_then_served_after_reindex(ctx, fhir, settings, monkeypatch):
    ctx.search_parameters.readiness.reconcile()
    fhir.put("Patient/p1", patient(id="p1"))
    method = {"coding": [{"system": "http://snomed.info/sct", "code": "auscultation"}]}
    before = [fhir.create({**observation("p1"), "method": method})["id"] for _ in range(3)]
    fhir.create(observation("p1"))

    original = conformance.custom_search_parameters
    monkeypatch.setattr(conformance, "custom_search_parameters", lambda: [*original(), METHOD])
    upgraded = create_app(settings, create_schema=False)  # the next release, started on the same database
    upgraded_ctx = upgraded.extensions["fhirportal"]
    try:
        state = upgraded_ctx.search_parameters.readiness
        assert state.reconcile() == {("Observation", "test-method")}
        client = upgraded.test_client()
        new = Fhir(client, upgraded_ctx.tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE))
        assert not _advertised(client, "test-method")
        for prefer in ({}, {"Prefer": "handling=lenient"}, {"Prefer": "handling=strict"}):
            refused = new.get("Observation?test-method=auscultation", headers=prefer)
            assert refused.status_code == 400
            issue = refused.get_json()["issue"][0]
            assert "being indexed" in issue["diagnostics"] and issue["expression"] == ["test-method"]
        assert new.get("Observation?_sort=test-method").status_code == 400
        created = new.create({**observation("p1"), "method": method})["id"]  # writes keep indexing everything

        result = CliRunner().invoke(cli.main, ["--database-url", settings.database_url, "reindex", "--quiet"])
        assert result.exit_code == 0, result.output
        assert "Observation: 5" in result.output and "reindexed 5 resources" in result.output

        state.refresh = 0  # (servers re-read the pending set every two seconds)
        found = new.get("Observation?test-method=auscultation").get_json()
        assert sorted(e["resource"]["id"] for e in found["entry"]) == sorted([*before, created])
        assert _advertised(client, "test-method")
        again = CliRunner().invoke(cli.main, ["--database-url", settings.database_url, "reindex"])
        assert "nothing to reindex" in again.output
    finally:
        upgraded_ctx.audit.flush()
        upgraded_ctx.database.dispose()
