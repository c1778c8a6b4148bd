"""Bulk Data $export: kick-off, polling, manifest, downloads, filters, Group membership, cancel, refusals."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import pytest

from fhirportal.bulk.export import exporter
from tests.support import TEST_CLIENT_ID, observation, patient

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(autouse=True)
def export_dir(app, tmp_path):
    """Files go to the test's own directory; every export thread has ended before the database is emptied."""
    with app.app_context():
        bulk = exporter()
    previous = bulk.directory
    bulk.directory = tmp_path / "exports"
    yield bulk.directory
    assert bulk.wait(30)
    bulk.directory = previous


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def kick_off(fhir, url: str) -> str:
    response = fhir.get(url, headers=ASYNC)
    assert response.status_code == 202, response.get_json()
    location = response.headers["Content-Location"]
    assert location.startswith("http://localhost/fhir/$export-status/")
    return location


def wait_for_manifest(fhir, location: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = fhir.get(_path(location))
        if response.status_code == 200:
            assert response.mimetype == "application/json"
            return response.get_json()
        assert response.status_code == 202, response.get_data(as_text=True)
        assert response.headers["Retry-After"]
        assert response.headers["X-Progress"]
        assert time.monotonic() < deadline, "the export did not finish in time"
        time.sleep(0.05)


def download(fhir, manifest: dict) -> dict[str, list[dict]]:
    files = {}
    for item in manifest["output"]:
        assert item["url"].startswith("http://localhost/fhir/$export-file/")
        response = fhir.get(_path(item["url"]), headers={"Accept": "application/fhir+ndjson"})
        assert response.status_code == 200
        assert response.content_type.startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
        assert all(r["resourceType"] == item["type"] for r in lines)
        assert len(lines) == item["count"]
        files[item["type"]] = lines
    return files


def search_count(fhir, resource_type: str) -> int:
    return fhir.get(f"{resource_type}?_summary=count").get_json()["total"]


def population(fhir, patients: int = 3, observations: int = 2) -> list[dict]:
    people = [fhir.create(patient(name=[{"family": f"P{n}"}])) for n in range(patients)]
    for person in people:
        for _ in range(observations):
            fhir.create(observation(person["id"]))
        fhir.create({"resourceType": "Condition", "subject": {"reference": f"Patient/{person['id']}"},
                     "code": {"text": "Asthma"}})
    fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    return people


def test_system_export_full_cycle(fhir):
    population(fhir)
    location = kick_off(fhir, "$export")
    manifest = wait_for_manifest(fhir, location)
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert manifest["transactionTime"]
    assert manifest["request"] == "http://localhost/fhir/$export"
    files = download(fhir, manifest)
    for resource_type in ("Patient", "Observation", "Condition", "Practitioner"):
        assert len(files[resource_type]) == search_count(fhir, resource_type)
    assert len(files["Observation"]) == 6
    assert len({item["type"] for item in manifest["output"]}) == len(manifest["output"])  # one file per type


@pytest.mark.parametrize("output_format", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_output_formats_are_accepted(fhir, output_format):
    population(fhir, patients=1, observations=1)
    location = kick_off(fhir, f"$export?_outputFormat={quote(output_format, safe='')}&_type=Patient")
    assert wait_for_manifest(fhir, location)["output"][0]["count"] == 1


def test_type_and_since_filters(fhir):
    people = population(fhir)
    manifest = wait_for_manifest(fhir, kick_off(fhir, "$export?_type=Patient,Observation"))
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Observation"}
    assert manifest["request"].endswith("?_type=Patient,Observation")
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.01)
    later = fhir.create(observation(people[1]["id"]))
    manifest = wait_for_manifest(fhir, kick_off(fhir, f"$export?_since={since}&_type=Patient,Observation,Condition"))
    assert {item["type"] for item in manifest["output"]} == {"Observation"}
    assert [r["id"] for r in download(fhir, manifest)["Observation"]] == [later["id"]]
    manifest = wait_for_manifest(fhir, kick_off(fhir, "$export?_since=2999-01-01T00:00:00Z"))
    assert manifest["output"] == []


def test_patient_export_leaves_out_non_patient_data(fhir):
    population(fhir)
    files = download(fhir, wait_for_manifest(fhir, kick_off(fhir, "Patient/$export")))
    assert len(files["Patient"]) == 3
    assert len(files["Observation"]) == 6
    assert "Practitioner" not in files


def test_group_export_only_members(fhir):
    people = population(fhir)
    members = people[:2]
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{p['id']}"}} for p in members]})
    files = download(fhir, wait_for_manifest(fhir, kick_off(fhir, f"Group/{group['id']}/$export")))
    wanted = {p["id"] for p in members}
    assert {r["id"] for r in files["Patient"]} == wanted
    assert len(files["Observation"]) == 4
    assert {r["subject"]["reference"].split("/")[1] for r in files["Observation"]} == wanted
    assert {r["subject"]["reference"].split("/")[1] for r in files["Condition"]} == wanted
    assert "Group" not in files
    assert fhir.get("Group/nobody/$export", headers=ASYNC).status_code == 404


def test_cancel_removes_the_job_and_its_files(fhir, export_dir):
    population(fhir, patients=1, observations=1)
    location = kick_off(fhir, "$export")
    wait_for_manifest(fhir, location)
    job_id = location.rsplit("/", 1)[1]
    assert (export_dir / job_id).is_dir()
    response = fhir.delete(_path(location))
    assert response.status_code == 202
    gone = fhir.get(_path(location))
    assert gone.status_code == 404
    assert gone.get_json()["resourceType"] == "OperationOutcome"
    assert not (export_dir / job_id).exists()
    assert fhir.get(f"$export-file/{job_id}/Patient.ndjson").status_code == 404
    # cancelling a running export
    location = kick_off(fhir, "$export")
    assert fhir.delete(_path(location)).status_code == 202
    assert exporter_wait(fhir)
    assert fhir.get(_path(location)).status_code == 404
    assert not (export_dir / location.rsplit("/", 1)[1]).exists()


def exporter_wait(fhir) -> bool:
    with fhir.client.application.app_context():
        return exporter().wait(30)


def test_kick_off_errors(fhir):
    assert fhir.get("$export").status_code == 400  # no Prefer: respond-async
    assert fhir.get("$export", headers={"Prefer": "return=representation"}).status_code == 400
    bad_format = fhir.get("$export?_outputFormat=text/csv", headers=ASYNC)
    assert bad_format.status_code == 400
    assert bad_format.get_json()["resourceType"] == "OperationOutcome"
    assert fhir.get("$export?_type=Spaceship", headers=ASYNC).status_code == 400
    assert fhir.get("$export?_since=yesterday", headers=ASYNC).status_code == 400
    assert fhir.post("$export", headers=ASYNC).status_code == 405


def test_patient_token_refused_and_user_token_accepted(fhir, ctx):
    mine = fhir.create(patient())
    patient_token = ctx.tokens.mint(client_id="patient-app", scope="patient/*.rs", context={"patient": mine["id"]})
    for url in ("$export", "Patient/$export"):
        assert fhir.with_token(patient_token).get(url, headers=ASYNC).status_code == 403
    narrow = ctx.tokens.mint(client_id="staff-app", scope="user/Patient.rs", context={})
    assert fhir.with_token(narrow).get("$export", headers=ASYNC).status_code == 403
    staff = fhir.with_token(ctx.tokens.mint(client_id="staff-app", scope="user/*.rs", context={}))
    manifest = wait_for_manifest(staff, kick_off(staff, "$export?_type=Patient"))
    assert manifest["output"] == [{"type": "Patient", "count": 1, "url": manifest["output"][0]["url"]}]


def test_status_and_files_need_the_token_of_the_client(fhir, ctx):
    population(fhir, patients=1, observations=1)
    location = kick_off(fhir, "$export?_type=Patient")
    manifest = wait_for_manifest(fhir, location)
    url = _path(manifest["output"][0]["url"])
    assert fhir.with_token(None).get(url).status_code == 401
    assert fhir.with_token(None).get(_path(location)).status_code == 401
    other = fhir.with_token(ctx.tokens.mint(client_id="someone-else", scope="system/*.rs"))
    assert other.get(url).status_code == 404
    assert other.get(_path(location)).status_code == 404
    same_client = fhir.with_token(ctx.tokens.mint(client_id=TEST_CLIENT_ID, scope="system/*.rs"))
    assert same_client.get(url).status_code == 200
    assert fhir.get(url.replace("Patient.ndjson", "Observation.ndjson")).status_code == 404
    assert fhir.get(url.replace("Patient.ndjson", "..%2Fsecret")).status_code == 404


def test_capability_statement_lists_the_exports(fhir):
    statement = fhir.get("metadata").get_json()
    assert "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    rest = statement["rest"][0]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} in (
        rest["operation"])
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"} in (
        by_type["Group"]["operation"])
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"} in (
        by_type["Patient"]["operation"])


def test_finished_exports_expire_after_a_day(fhir, ctx, export_dir):
    from datetime import timedelta

    from sqlalchemy import update

    from fhirportal.store import clock
    from fhirportal.store.export_schema import export_job

    population(fhir, patients=1, observations=1)
    old = kick_off(fhir, "$export")
    wait_for_manifest(fhir, old)
    expires = fhir.get(_path(old)).headers["Expires"]
    assert expires.endswith("GMT")
    old_id = old.rsplit("/", 1)[1]
    with ctx.database.write() as conn:  # as if it had finished 25 hours ago
        conn.execute(update(export_job).where(export_job.c.id == old_id).values(
            created=clock.now() - timedelta(hours=25)))
    fresh = kick_off(fhir, "$export")  # every kick-off clears what has expired
    assert fhir.get(_path(old)).status_code == 404
    assert not (export_dir / old_id).exists()
    wait_for_manifest(fhir, fresh)  # the new one is untouched


def _dead_job(ctx, job_id: str, **values) -> None:
    """A job row as a server that died mid-export leaves it: in-progress, its heartbeat minutes old."""
    from datetime import timedelta

    from fhirportal.store import clock
    from fhirportal.store.export_schema import export_job

    old = clock.now() - timedelta(minutes=5)
    row = dict(id=job_id, status="in-progress", kind="system", request="http://localhost/fhir/$export",
               types=json.dumps(["Patient", "Observation", "Condition", "Practitioner"]), since=None, group_id=None,
               transaction_time=clock.now(), created=old, progress="1 of 4 types exported (Patient: 3)",
               client_id=TEST_CLIENT_ID, members=None, scope="system/*.rs", patient=None, organization=None,
               worker="dead-worker", heartbeat=old)
    row.update(values)
    with ctx.database.write() as conn:
        conn.execute(export_job.insert().values(**row))


def test_a_job_whose_worker_died_is_restarted_by_a_status_poll(fhir, ctx, export_dir):
    population(fhir)
    _dead_job(ctx, "dead-job")
    partial = export_dir / "dead-job"
    partial.mkdir(parents=True)
    (partial / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "half-written"}\n{"resou')
    (partial / "Encounter.ndjson").write_text("left over\n")
    time.sleep(0.01)
    later = fhir.create({"resourceType": "Practitioner"})  # after transactionTime: not exported
    manifest = wait_for_manifest(fhir, "http://localhost/fhir/$export-status/dead-job")
    files = download(fhir, manifest)
    assert {t: len(rows) for t, rows in files.items()} == {
        "Patient": search_count(fhir, "Patient"), "Observation": search_count(fhir, "Observation"),
        "Condition": search_count(fhir, "Condition"), "Practitioner": search_count(fhir, "Practitioner") - 1}
    assert later["id"] not in {r["id"] for r in files["Practitioner"]}
    assert "half-written" not in {r["id"] for r in files["Patient"]}
    assert not (partial / "Encounter.ndjson").exists()
    with ctx.database.read() as conn:
        from sqlalchemy import select

        from fhirportal.store.export_schema import export_job
        job = conn.execute(select(export_job).where(export_job.c.id == "dead-job")).one()
    assert job.worker != "dead-worker" and job.status == "completed"


def test_restart_keeps_the_group_members_and_the_token_rights(fhir, ctx):
    people = population(fhir)
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{people[0]['id']}"}}]})
    _dead_job(ctx, "dead-group", kind="group", group_id=group["id"], members=json.dumps([people[0]["id"]]),
              types=json.dumps(["Patient", "Observation"]), scope="user/*.rs", organization="nowhere")
    _dead_job(ctx, "dead-group-open", kind="group", group_id=group["id"], members=json.dumps([people[0]["id"]]),
              types=json.dumps(["Patient", "Observation"]))
    restricted = wait_for_manifest(fhir, "http://localhost/fhir/$export-status/dead-group")
    assert restricted["output"] == []  # a staff token of an organization with no patients sees nothing
    files = download(fhir, wait_for_manifest(fhir, "http://localhost/fhir/$export-status/dead-group-open"))
    assert [r["id"] for r in files["Patient"]] == [people[0]["id"]]
    assert len(files["Observation"]) == 2


def test_a_live_job_is_left_to_its_worker_and_a_kick_off_restarts_dead_ones(fhir, ctx):
    from fhirportal.store import clock

    population(fhir, patients=1, observations=1)
    _dead_job(ctx, "alive", heartbeat=clock.now(), worker="busy-worker")
    response = fhir.get("$export-status/alive")
    assert response.status_code == 202
    assert response.headers["X-Progress"] == "1 of 4 types exported (Patient: 3)"
    _dead_job(ctx, "dead")
    wait_for_manifest(fhir, kick_off(fhir, "$export?_type=Patient"))
    assert exporter_wait(fhir)
    assert exporter_status(fhir, "dead") == "completed"  # the kick-off restarted it
    assert exporter_status(fhir, "alive") == "in-progress"


def exporter_status(fhir, job_id: str) -> str:
    with fhir.client.application.app_context():
        return exporter().job(job_id).status


GLUCOSE = {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]}
VITALS = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]


def test_type_filter_narrows_its_type_and_ors_its_queries(fhir):
    people = population(fhir, patients=2, observations=1)  # one HbA1c lab each
    glucose = fhir.create(observation(people[0]["id"], code=GLUCOSE))
    vital = fhir.create(observation(people[1]["id"], category=VITALS, code={"text": "Heart rate"}))
    one = download(fhir, wait_for_manifest(fhir, kick_off(
        fhir, "$export?_type=Observation,Condition&_typeFilter=" + quote("Observation?code=http://loinc.org|2345-7"))))
    assert [r["id"] for r in one["Observation"]] == [glucose["id"]]
    assert len(one["Condition"]) == 2  # a type without a filter is exported whole
    # Comma-separated queries, or repeated parameters, are ORed; %2C inside a query is an OR of values.
    by_code, by_category = "Observation?code=2345-7", "Observation?category=vital-signs"
    by_ids = f"Observation?_id={glucose['id']}%2C{vital['id']}"
    for filters in ([f"{by_code},{by_category}"], [by_code, by_category], [by_ids]):
        url = "$export?_type=Observation" + "".join(f"&_typeFilter={quote(f)}" for f in filters)
        files = download(fhir, wait_for_manifest(fhir, kick_off(fhir, url)))
        assert {r["id"] for r in files["Observation"]} == {glucose["id"], vital["id"]}, filters
    # Every query of a value must hold (AND), and a filter combines with the Group's membership.
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{people[1]['id']}"}}]})
    files = download(fhir, wait_for_manifest(fhir, kick_off(
        fhir, f"Group/{group['id']}/$export?_typeFilter=" + quote("Observation?category=laboratory&status=final"))))
    assert [r["subject"]["reference"] for r in files["Observation"]] == [f"Patient/{people[1]['id']}"]
    assert "vital-signs" not in json.dumps(files["Observation"])


@pytest.mark.parametrize("type_filter, problem", [
    ("Observation?flavour=sweet", "flavour"),
    ("Observation?date=yesterday", "date"),
    ("Observation?_count=10", "_count"),
    ("Observation", "Type?parameter=value"),
    ("Condition?code=x", "does not include"),  # not in _type
    ("Spaceship?x=y", "does not include"),
])
def test_bad_type_filters_are_refused_at_kick_off(fhir, type_filter, problem):
    response = fhir.get("$export?_type=Observation&_typeFilter=" + quote(type_filter), headers=ASYNC)
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["_typeFilter"]
    assert problem in outcome["issue"][0]["diagnostics"]


def test_patient_and_group_exports_bring_the_resources_their_records_refer_to(fhir):
    clinic = fhir.create({"resourceType": "Organization", "name": "Clinic"})
    elsewhere = fhir.create({"resourceType": "Organization", "name": "Elsewhere"})
    doctor = fhir.create({"resourceType": "Practitioner", "name": [{"family": "House"}]})
    stranger_doctor = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Nobody"}]})
    member = fhir.create(patient(managingOrganization={"reference": f"Organization/{clinic['id']}"}))
    other = fhir.create(patient(managingOrganization={"reference": f"Organization/{elsewhere['id']}"}))
    fhir.create(observation(member["id"], performer=[{"reference": f"Practitioner/{doctor['id']}"}]))
    fhir.create(observation(other["id"], performer=[{"reference": f"Practitioner/{stranger_doctor['id']}"}]))
    unreferenced = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Idle"}]})

    everyone = download(fhir, wait_for_manifest(fhir, kick_off(fhir, "Patient/$export")))
    assert {r["id"] for r in everyone["Practitioner"]} == {doctor["id"], stranger_doctor["id"]}
    assert {r["id"] for r in everyone["Organization"]} == {clinic["id"], elsewhere["id"]}
    assert unreferenced["id"] not in {r["id"] for r in everyone["Practitioner"]}

    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{member['id']}"}}]})
    mine = download(fhir, wait_for_manifest(fhir, kick_off(fhir, f"Group/{group['id']}/$export")))
    assert [r["id"] for r in mine["Practitioner"]] == [doctor["id"]]
    assert [r["id"] for r in mine["Organization"]] == [clinic["id"]]
    only = download(fhir, wait_for_manifest(fhir, kick_off(fhir, f"Group/{group['id']}/$export?_type=Practitioner")))
    assert set(only) == {"Practitioner"}


def test_every_patient_an_export_covered_sees_it_in_the_access_log(fhir, ctx):
    people = population(fhir, patients=3, observations=1)
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True,
                         "member": [{"entity": {"reference": f"Patient/{p['id']}"}} for p in people[:2]]})
    wait_for_manifest(fhir, kick_off(fhir, f"Group/{group['id']}/$export?_type=Observation"))
    for person in people[:2]:
        events = fhir.get(f"AuditEvent?patient={person['id']}").get_json()
        exports = [e["resource"] for e in events.get("entry", [])
                   if e["resource"]["subtype"][0]["code"] == "operation" and e["resource"]["action"] == "R"]
        assert len(exports) == 1, events
        query = next(x for x in exports[0]["entity"] if "query" in x)
        assert query["description"] == f"Group/{group['id']}/$export?_type=Observation"
        assert exports[0]["agent"][0]["who"] == {"display": f"app {TEST_CLIENT_ID}"}
    assert [row.action for row in ctx.audit.for_patients([people[2]["id"]]) if row.action == "export"] == []
    wait_for_manifest(fhir, kick_off(fhir, "$export?_type=Patient"))  # a system export covers everyone
    assert [row.action for row in ctx.audit.for_patients([people[2]["id"]]) if row.action == "export"] == ["export"]


@pytest.mark.parametrize("path", ["$export-status/a%00b", "$export-file/a%00b/Patient.ndjson", "$export-status/a%20b"])
def test_status_and_file_of_a_malformed_job_id_are_404(fhir, path):
    """A job id that no export can have (a NUL, a space: ids are URL-safe tokens) is simply not found: the
    OpenAPI fuzz found that PostgreSQL refused to compare a NUL and the server answered 500."""
    response = fhir.get(path)
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"
    assert fhir.delete(path.replace("$export-file/a%00b/Patient.ndjson", "$export-status/a%00b")).status_code == 404
