"""Fill a fresh SQLite database the way a practice running a release would have, through that release's
own code, then dump every table (and the release's DDL for SQLite and PostgreSQL) as a snapshot that
``tests/store/migrations`` upgrades. Run by ``tools/upgrade_snapshot.py`` with ``PYTHONPATH`` set to
an unpacked copy of the release, so ``import fhirportal`` is the release, not this checkout.

What goes in: the demo practice and its accounts and apps; a patient's SMART standalone launch (an
access, refresh and id token); the EHR's writes (a new Observation, a Condition updated twice, an
Observation created and deleted: history); a portal invitation with its PIN and email; the patient's
reads (access-log rows, some already turned into AuditEvents); a practice setting. The manifest
records what a client would expect afterwards: the secrets it holds and the answers of searches.
"""

from __future__ import annotations

import datetime
import gzip
import json
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_mock_engine, select

from fhirportal import app as fhirportal_app
from fhirportal import cli
from fhirportal.app import create_app
from fhirportal.settings import Settings
from fhirportal.store.schema import metadata
from tests.smart import flows

BASE_URL = "http://localhost/fhir"
SECRET_KEY = "upgrade-snapshot-secret-key-not-for-production-0123456789"
APP_ID = "snapshot-app"
SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"
SEARCHES = [  # answered with the EHR's system token, and again after the upgrade
    "Observation?patient=patient-001&category=laboratory",
    "Observation?patient=patient-002&code=http://loinc.org|4548-4&date=ge2000-01-01",
    "Condition?patient=patient-001",
    "MedicationRequest?patient=patient-001&status=active",
    "Patient?name=mar",
    "Patient?birthdate=lt1990",
    "Encounter?patient=patient-001&_sort=-date",
    "Immunization?patient=patient-002",
    "AllergyIntolerance?patient=patient-001",
    "Appointment?patient=patient-001",
    "Observation?subject:Patient.name=johnson&_count=500",
    "Patient?_has:Observation:patient:code=4548-4",
]
PATIENT_SEARCHES = [  # answered with the patient's token (withheld labs, NOPAT: the marks)
    "Observation?patient=patient-001",
    "Observation?category=laboratory",
    "DiagnosticReport",
    "Condition",
]


def _bundle_ids(response) -> list[str]:
    """The matches of a one-page searchset, sorted."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert not [link for link in body.get("link", []) if link["relation"] == "next"], "more than one page"
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", [])
                  if e.get("search", {}).get("mode", "match") == "match")


def _dump_value(value):
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    return value


def _ddl(dialect: str) -> list[str]:
    statements: list[str] = []

    def executor(sql, *_args, **_kwargs):
        statements.append(str(sql.compile(dialect=engine.dialect)).strip())

    engine = create_mock_engine(f"{dialect}://", executor)
    metadata.create_all(engine, checkfirst=False)
    return statements


def main(out: Path, revision: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fhirportal-snapshot-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'release.db'}", base_url=BASE_URL,
                        secret_key=SECRET_KEY, export_dir=str(workdir / "exports"), audit_background_after=0)
    app = create_app(settings)
    ctx = app.extensions["fhirportal"]
    smart = app.extensions["smart"]
    assert cli._load(ctx, [str(cli.DEMO_FIXTURES)], quiet=True) == 0
    cli._load_accounts(smart, cli.DEMO_ACCOUNTS)
    smart.clients.register({"client_name": "Upgrade snapshot app", "token_endpoint_auth_method": "none",
                            "redirect_uris": [flows.REDIRECT_URI]}, client_id=APP_ID)
    client = app.test_client()

    # The patient's app: a standalone launch, signed in as the demo patient, every scope allowed.
    auth = flows.authorization_params(APP_ID, SCOPE)
    page = flows.login(client, auth, "maria", "demo-patient-pass")
    code = flows.redirect_params(flows.consent(client, page))["code"]
    patient_token = flows.exchange(client, code, auth, APP_ID).get_json()
    assert "refresh_token" in patient_token and "id_token" in patient_token, patient_token

    system_token = ctx.tokens.mint(client_id="demo-ehr-backend", scope="system/*.cruds")
    system = {"Authorization": f"Bearer {system_token}"}
    patient = {"Authorization": f"Bearer {patient_token['access_token']}"}

    # The EHR writes: history, a deletion.
    created = client.post("/fhir/Observation", headers=system, json={
        "resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/patient-001"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "effectiveDateTime": "2026-11-30", "valueQuantity": {"value": 71.5, "unit": "kg",
                                                             "system": "http://unitsofmeasure.org", "code": "kg"}})
    assert created.status_code == 201, created.get_data(as_text=True)
    conditions = client.get("/fhir/Condition?patient=patient-001", headers=system).get_json()["entry"]
    condition = conditions[0]["resource"]
    for note in ("Reviewed at the annual visit", "Stable on current treatment"):
        condition["note"] = [*condition.get("note", []), {"text": note}]
        updated = client.put(f"/fhir/Condition/{condition['id']}", headers=system, json=condition)
        assert updated.status_code == 200, updated.get_data(as_text=True)
        condition = updated.get_json()
    doomed = client.post("/fhir/Observation", headers=system, json={
        "resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/patient-002"},
        "code": {"text": "entered by mistake"}, "valueString": "x"}).get_json()
    assert client.delete(f"/fhir/Observation/{doomed['id']}", headers=system).status_code in (200, 204)

    # Enrollment: an invitation with its PIN (email in the outbox).
    invited = client.post("/fhir/Patient/patient-003/$portal-invite", headers=system, json={
        "resourceType": "Parameters", "parameter": [{"name": "email", "valueString": "patient3@example.org"}]})
    assert invited.status_code == 200, invited.get_data(as_text=True)
    answer = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in
              invited.get_json()["parameter"]}
    # A staff user's token; with it the administrator turns the practice's auto-invite on.
    admin = smart.accounts.by_username("admin")
    admin_token = ctx.tokens.mint(client_id="demo-confidential-app", scope="user/*.cruds openid fhirUser",
                                  account_id=admin.id, context={"fhirUser": "Practitioner/practitioner-01"})
    changed = client.patch("/admin/phr-settings", headers={"Authorization": f"Bearer {admin_token}"},
                           json={"auto_invite_enabled": True})
    assert changed.status_code == 200, changed.get_data(as_text=True)

    # The patient's app reads; the practice reads the access log (turning the journal into AuditEvents
    # so far), then the app reads more (journal rows not yet turned into AuditEvents).
    patient_answers = {query: _bundle_ids(client.get(f"/fhir/{query}&_count=1000" if "?" in query
                                                     else f"/fhir/{query}?_count=1000", headers=patient))
                       for query in PATIENT_SEARCHES}
    assert client.get("/fhir/Patient/patient-001", headers=patient).status_code == 200
    audit_events = _bundle_ids(client.get("/fhir/AuditEvent?patient=patient-001&_count=1000", headers=system))
    assert client.get("/fhir/Patient/patient-002", headers=patient).status_code in (403, 404)
    assert client.get(f"/fhir/Observation/{created.get_json()['id']}", headers=patient).status_code == 200
    ctx.audit.flush()

    answers = {query: _bundle_ids(client.get(f"/fhir/{query}&_count=1000", headers=system)) for query in SEARCHES}
    manifest = {
        "revision": revision,
        "fhirportal": str(Path(fhirportal_app.__file__).parent),
        "made": datetime.datetime.now(datetime.UTC).isoformat(),
        "base_url": BASE_URL,
        "secret_key": SECRET_KEY,
        "patient_token": patient_token,
        "patient_client_id": APP_ID,
        "system_token": system_token,
        "admin_token": admin_token,
        "accounts": {"maria": "demo-patient-pass", "admin": "demo-admin-pass", "linda": "demo-caregiver-pass"},
        "invitation": {"subject": "Patient/patient-003", "status": answer["status"],
                       "access_code": answer["accessCode"], "task": answer["invitation"]},
        "created_observation": created.get_json()["id"],
        "updated_condition": {"id": condition["id"], "versions": int(condition["meta"]["versionId"])},
        "deleted_observation": doomed["id"],
        "searches": answers,
        "patient_searches": patient_answers,
        "audit_events_seen": len(audit_events),
    }
    tables = {}
    with ctx.database.engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            tables[table.name] = {"columns": [c.name for c in table.columns],
                                  "rows": [[_dump_value(v) for v in row] for row in rows]}
    snapshot = {"manifest": manifest, "ddl": {"sqlite": _ddl("sqlite"), "postgresql": _ddl("postgresql")},
                "tables": tables}
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        json.dump(snapshot, handle, separators=(",", ":"), sort_keys=True)
    ctx.database.dispose()
    print(f"{out}: {sum(len(t['rows']) for t in tables.values())} rows in {len(tables)} tables, "
          f"made by the code in {manifest['fhirportal']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
