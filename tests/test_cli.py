"""The ``fhirportal`` command: init-db and load (JSON, Bundles, ndjson, directories)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import delete

from fhirportal.app import build_context
from fhirportal.cli import main
from fhirportal.settings import Settings
from fhirportal.store.schema import metadata


def _run(url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)


def test_init_db_and_load(tmp_path, settings):
    url = settings.database_url
    assert _run(url, "init-db").exit_code == 0
    (tmp_path / "01-patient.json").write_text(json.dumps(
        {"resourceType": "Patient", "id": "cli-p1", "name": [{"family": "Curie"}]}))
    (tmp_path / "02-bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Practitioner", "id": "cli-dr", "name": [{"family": "Osler"}]},
         "request": {"method": "PUT", "url": "Practitioner/cli-dr"}},
    ]}))
    (tmp_path / "03-observations.ndjson").write_text("\n".join(json.dumps(
        {"resourceType": "Observation", "id": f"cli-o{n}", "status": "final", "code": {"text": "x"},
         "subject": {"reference": "Patient/cli-p1"}}) for n in range(3)) + "\n")
    (tmp_path / "04-bad.ndjson").write_text(json.dumps(
        {"resourceType": "Observation", "id": "cli-bad", "status": "nope", "code": {"text": "x"}}) + "\n")
    result = _run(url, "load", "--quiet", str(tmp_path))
    assert "5 created" in result.output and "1 failed" in result.output
    assert result.exit_code == 1  # a failure is reported in the exit code
    again = _run(url, "load", "--quiet", str(tmp_path / "01-patient.json"))
    assert again.exit_code == 0 and "1 updated" in again.output

    ctx = build_context(Settings(database_url=url))
    with ctx.database.read() as conn:
        assert ctx.repository.read(conn, "Observation", "cli-o2").body["subject"]["reference"] == "Patient/cli-p1"
        assert not ctx.repository.exists(conn, "Observation", "cli-bad")
    with ctx.database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    ctx.database.dispose()


def test_load_missing_path_fails(settings):
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, "load", "/no/such/file.json"])
    assert result.exit_code != 0
