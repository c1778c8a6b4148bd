"""Upgrading in place: a database the baseline release (96d475c) filled through its own code is
upgraded with ``fhirportal db upgrade`` and then serves everything it served before — resources and
their history, searches, the patient's live tokens, sign-in, the open invitation and its PIN, the
access log. Also: the migration chain and the models agree, and what the server refuses."""

from __future__ import annotations

import base64
import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import MetaData, text

from fhirportal import cli
from fhirportal.app import create_app
from fhirportal.settings import Settings
from fhirportal.store import migrate
from fhirportal.store.database import Database, OutdatedSchema
from fhirportal.store.schema import metadata
from tests.smart import flows
from tests.store.migrations.release import restore, snapshot


def _db(url: str, *args: str):
    result = CliRunner().invoke(cli.main, ["--database-url", url, "db", *args])
    return result


def _app(url: str, manifest: dict):
    return create_app(Settings(database_url=url, base_url=manifest["base_url"], secret_key=manifest["secret_key"],
                               audit_background_after=0))


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    body = response.get_json()
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", [])
                  if e.get("search", {}).get("mode", "match") == "match")


def _search(client, query: str, token: str):
    separator = "&" if "?" in query else "?"
    return client.get(f"/fhir/{query}{separator}_count=1000", headers={"Authorization": f"Bearer {token}"})


def _rows(url: str, table: str, order: str) -> list[tuple]:
    database = Database(url)
    try:
        with database.read() as conn:
            return [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]
    finally:
        database.dispose()


def _assert_resources_kept(url: str) -> None:
    release = snapshot()["tables"]
    for table, order, columns in (("resource", "pid", ("pid", "resource_type", "fhir_id", "version_id", "content")),
                                  ("resource_version", "pid, version_id",
                                   ("pid", "version_id", "fhir_id", "method", "content"))):
        kept = release[table]
        positions = [kept["columns"].index(c) for c in columns]
        expected = sorted(tuple(row[p] for p in positions) for row in kept["rows"])
        database = Database(url)
        try:
            with database.read() as conn:
                found = sorted(tuple(row) for row in conn.execute(text(
                    f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")))
        finally:
            database.dispose()
        assert found == expected, f"{table} changed by the upgrade"


def test_a_release_database_upgrades_in_place_and_serves_everything(scratch_url):
    manifest = restore(scratch_url)

    with pytest.raises(OutdatedSchema, match="at revision 0001.*fhirportal db upgrade"):
        _app(scratch_url, manifest)  # the server refuses a database that needs upgrading (stamping it first)

    result = _db(scratch_url, "upgrade")
    assert result.exit_code == 0, result.output
    for revision, _down, _message in migrate.history()[1:]:
        assert f"Running upgrade {_down} -> {revision}" in result.output
    assert f"at revision {migrate.head()} (current)" in result.output
    assert _db(scratch_url, "current").exit_code == 0

    _assert_resources_kept(scratch_url)
    app = _app(scratch_url, manifest)
    ctx = app.extensions["fhirportal"]
    client = app.test_client()
    try:
        system = manifest["system_token"]
        for query, ids in manifest["searches"].items():
            assert _ids(_search(client, query, system)) == ids, query
        patient_token = manifest["patient_token"]
        for query, ids in manifest["patient_searches"].items():  # what the patient's app may see
            assert _ids(_search(client, query, patient_token["access_token"])) == ids, query
        bearer = {"Authorization": f"Bearer {patient_token['access_token']}"}
        assert client.get("/fhir/Patient/patient-001", headers=bearer).status_code == 200
        assert client.get("/fhir/Patient/patient-002", headers=bearer).status_code in (403, 404)
        admin = client.get("/fhir/Patient/patient-002", headers={"Authorization": f"Bearer {manifest['admin_token']}"})
        assert admin.status_code == 200

        # History and deletion survived.
        condition = manifest["updated_condition"]
        history = client.get(f"/fhir/Condition/{condition['id']}/_history",
                             headers={"Authorization": f"Bearer {system}"})
        assert history.get_json()["total"] == condition["versions"]
        gone = client.get(f"/fhir/Observation/{manifest['deleted_observation']}",
                          headers={"Authorization": f"Bearer {system}"})
        assert gone.status_code == 410
        created = client.get(f"/fhir/Observation/{manifest['created_observation']}", headers=bearer)
        assert created.status_code == 200

        # The id_token the app holds still verifies against the server's published keys.
        header = json.loads(base64.urlsafe_b64decode(patient_token["id_token"].split(".")[0] + "=="))
        assert header["kid"] in {key["kid"] for key in client.get("/auth/jwks").get_json()["keys"]}

        # The refresh token still refreshes.
        refreshed = client.post("/auth/token", data={"grant_type": "refresh_token", "client_id":
                                                     manifest["patient_client_id"],
                                                     "refresh_token": patient_token["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
        assert client.get("/fhir/Patient/patient-001", headers={
            "Authorization": f"Bearer {refreshed.get_json()['access_token']}"}).status_code == 200

        # The accounts still sign in, with the apps they had registered.
        auth = flows.authorization_params(manifest["patient_client_id"], "launch/patient openid fhirUser patient/*.rs")
        page = flows.login(client, auth, "maria", manifest["accounts"]["maria"])
        code = flows.redirect_params(flows.consent(client, page))["code"]
        token = flows.exchange(client, code, auth, manifest["patient_client_id"]).get_json()
        assert token["patient"] == "patient-001"

        # The open invitation: same status, and staff look up the same PIN.
        invitation = manifest["invitation"]
        status = client.get(f"/fhir/{invitation['subject']}/$portal-status",
                            headers={"Authorization": f"Bearer {system}"})
        answer = {p["name"]: next(v for k, v in p.items() if k.startswith("value"))
                  for p in status.get_json()["parameter"]}
        assert (answer["status"], answer["accessCode"], answer["invitation"]) == (
            invitation["status"], invitation["access_code"], invitation["task"])

        # The access log: the release's AuditEvents and its journal rows not yet turned into them.
        events = _search(client, "AuditEvent?patient=patient-001", system).get_json()
        assert len(events.get("entry", [])) > manifest["audit_events_seen"]

        # What this version indexes that the release did not (composites, …) waits for a reindex,
        # refused meanwhile rather than answered from the release's partial rows; then it is served.
        state = ctx.search_parameters.readiness
        assert ("Observation", "code-value-quantity") in state.pending(force=True)
        hba1c = "Observation?code-value-quantity=http://loinc.org|4548-4$gt0"
        assert _search(client, hba1c, system).status_code == 400
        reindexed = CliRunner().invoke(cli.main, ["--database-url", scratch_url, "reindex", "--quiet"])
        assert reindexed.exit_code == 0, reindexed.output
        assert not state.pending(force=True)
        assert _ids(_search(client, hba1c, system)) == _ids(
            _search(client, "Observation?code=http://loinc.org|4548-4&value-quantity=gt0", system)) != []
        for query, ids in manifest["searches"].items():  # and everything else as before
            assert _ids(_search(client, query, system)) == ids, query
    finally:
        ctx.audit.flush()
        ctx.database.dispose()


def test_an_unversioned_release_database_is_stamped_as_the_baseline_by_the_upgrade(scratch_url):
    restore(scratch_url)
    result = _db(scratch_url, "current")
    assert result.exit_code == 1 and "(none) (unversioned" in result.output
    result = _db(scratch_url, "upgrade")
    assert result.exit_code == 0, result.output
    assert "stamped the unversioned database as the baseline, revision 0001" in result.output
    assert "Running upgrade 0001 -> 0002" in result.output


def test_every_revision_upgrades_the_release_data_step_by_step(scratch_url):
    """From the baseline, one revision at a time (each migration also runs on data left by the one before)."""
    restore(scratch_url)
    for revision, _down, _message in migrate.history():
        result = _db(scratch_url, "upgrade", "--to", revision)
        assert result.exit_code == 0, result.output
        database = Database(scratch_url)
        try:
            assert migrate.status_of(database).revision == revision
        finally:
            database.dispose()
        _assert_resources_kept(scratch_url)
    assert len(_rows(scratch_url, "oauth_token", "id")) == len(snapshot()["tables"]["oauth_token"]["rows"])


def test_the_baseline_migration_is_the_release_schema(scratch_url, tmp_path):
    """The baseline revision creates exactly what the release's create_all created: same tables, columns,
    types, nullability and indexes (compared by reflection, on this test's database)."""
    restore(scratch_url)
    release = MetaData()
    database = Database(scratch_url)
    try:
        with database.engine.connect() as conn:
            release.reflect(conn)
    finally:
        database.dispose()
    database.drop_schema()  # the same database, now built by the migration
    database = Database(scratch_url)
    try:
        with database.engine.connect() as conn:
            from alembic import command

            command.upgrade(migrate.config(conn), migrate.BASELINE)
            conn.commit()
        migrated = MetaData()
        with database.engine.connect() as conn:
            migrated.reflect(conn)
    finally:
        database.dispose()
    assert _describe(migrated, skip={migrate.VERSION_TABLE}) == _describe(release)


def _describe(meta: MetaData, skip=frozenset()) -> dict:
    return {name: {"columns": [(c.name, str(c.type), c.nullable) for c in table.columns],
                   "indexes": sorted((i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes)}
            for name, table in meta.tables.items() if name not in skip}


def test_the_migration_chain_and_the_models_agree(scratch_url):
    """Running every migration from nothing yields the models' schema: autogenerate finds no difference."""
    database = Database(scratch_url)
    try:
        with database.engine.connect() as conn:
            from alembic import command

            command.upgrade(migrate.config(conn), "head")
            conn.commit()
        with database.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert differences == []
        assert migrate.status_of(database).state == "current"
    finally:
        database.dispose()


def test_a_fresh_database_is_created_at_the_newest_revision(scratch_url):
    database = Database(scratch_url)
    try:
        database.create_schema()
        with database.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (migrate.head(),)
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert differences == []
        database.create_schema()  # a second start finds it current
    finally:
        database.dispose()


def test_a_database_of_no_known_schema_is_refused(scratch_url):
    database = Database(scratch_url)
    try:
        with database.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE resource (pid INTEGER PRIMARY KEY, content TEXT)")
        with pytest.raises(OutdatedSchema, match="match no schema fhirportal knows.*table account missing"):
            database.create_schema()
        result = _db(scratch_url, "upgrade")
        assert result.exit_code == 1 and "init-db --drop" in result.output
        assert _db(scratch_url, "current").exit_code == 1
    finally:
        database.dispose()


def test_a_database_from_a_newer_version_is_refused(scratch_url):
    database = Database(scratch_url)
    try:
        database.create_schema()
        with database.engine.begin() as conn:
            conn.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
        with pytest.raises(OutdatedSchema, match="9999.*run the newer version"):
            database.create_schema()
        assert _db(scratch_url, "upgrade").exit_code == 1
    finally:
        database.dispose()


def test_history_lists_the_chain_from_the_baseline():
    result = CliRunner().invoke(cli.main, ["db", "history"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0].startswith("<base> -> 0001  Baseline")
    assert len(result.output.splitlines()) == len(migrate.history())
