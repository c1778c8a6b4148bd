"""``fhirportal export``: an operator's bulk export to a directory (the $export code, no token)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from click.testing import CliRunner

from fhirportal.cli import main
from tests.support import observation, patient


def _export(settings, *args: str):
    return CliRunner().invoke(main, ["--database-url", settings.database_url, "export", "--quiet", *args],
                              catch_exceptions=False)


def _population(fhir) -> list[dict]:
    people = [fhir.create(patient(name=[{"family": f"P{n}"}])) for n in range(3)]
    for person in people:
        for _ in range(2):
            fhir.create(observation(person["id"]))
        fhir.create({"resourceType": "Condition", "subject": {"reference": f"Patient/{person['id']}"},
                     "code": {"text": "Asthma"}})
    fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    return people


def _files(directory) -> dict[str, list[dict]]:
    files = {}
    for path in sorted(directory.glob("*.ndjson")):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(r["resourceType"] == path.stem for r in lines)
        files[path.stem] = lines
    return files


def _count(fhir, resource_type: str) -> int:
    return fhir.get(f"{resource_type}?_summary=count").get_json()["total"]


def test_system_export_writes_every_type_with_the_database_counts(fhir, settings, tmp_path):
    _population(fhir)
    out = tmp_path / "out"
    result = _export(settings, "--out", str(out))
    assert result.exit_code == 0, result.output
    files = _files(out)
    for resource_type in ("Patient", "Observation", "Condition", "Practitioner"):
        assert len(files[resource_type]) == _count(fhir, resource_type)
        assert f"{resource_type}: {len(files[resource_type])}" in result.output
    assert f"exported {sum(len(v) for v in files.values())} resources" in result.output


def test_types_since_group_and_patient_level(fhir, settings, tmp_path, ctx):
    people = _population(fhir)
    result = _export(settings, "--type", "Patient,Observation", "--type", "Practitioner", "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert {t: len(v) for t, v in _files(tmp_path / "a").items()} == {"Patient": 3, "Observation": 6,
                                                                     "Practitioner": 1}
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.01)
    later = fhir.create(observation(people[1]["id"]))
    ctx.audit.flush()  # the create's access-log row, which the journal's writer thread stores within 0.2 s
    assert _export(settings, "--since", since, "--out", str(tmp_path / "b")).exit_code == 0
    since_files = _files(tmp_path / "b")
    logged = since_files.pop("AuditEvent")  # the access log since then: the create itself
    assert {t: [r["id"] for r in v] for t, v in since_files.items()} == {"Observation": [later["id"]]}
    assert [(e["action"], e["subtype"][0]["code"]) for e in logged] == [("C", "create")]

    assert _export(settings, "--patient-level", "--out", str(tmp_path / "c")).exit_code == 0
    files = _files(tmp_path / "c")
    assert "Practitioner" not in files and len(files["Observation"]) == 7 and len(files["Patient"]) == 3

    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{people[0]['id']}"}}]})
    assert _export(settings, "--group", group["id"], "--out", str(tmp_path / "d")).exit_code == 0
    files = _files(tmp_path / "d")
    assert [r["id"] for r in files["Patient"]] == [people[0]["id"]]
    assert {r["subject"]["reference"] for r in files["Observation"]} == {f"Patient/{people[0]['id']}"}
    assert len(files["Condition"]) == 1


def test_progress_bar_and_errors(fhir, settings, tmp_path):
    _population(fhir)
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, "export", "--type", "Observation",
                                       "--out", str(tmp_path / "p")], catch_exceptions=False)
    assert result.exit_code == 0
    assert "6/6" in result.output  # tqdm on stderr (CliRunner mixes it in): total = the resources to export
    for args, message in ((["--type", "Spaceship"], "no Spaceship"),
                          (["--patient-level", "--type", "Group"], "not patient data"),
                          (["--type-filter", "Observation?flavour=sweet"], "flavour"),
                          (["--since", "yesterday"], "FHIR instant"),
                          (["--group", "nobody"], "nobody")):
        bad = CliRunner().invoke(main, ["--database-url", settings.database_url, "export", *args,
                                        "--out", str(tmp_path / "x")])
        assert bad.exit_code != 0 and message in bad.output, bad.output
