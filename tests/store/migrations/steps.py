"""Steps the migration tests share: run ``fhirportal db …``, store resources as an earlier revision did,
count rows, downgrade as the upgrade command connects, and search the upgraded database through the
server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic import command
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import Connection

from fhirportal import cli
from fhirportal.app import create_app
from fhirportal.settings import Settings
from fhirportal.store import migrate
from fhirportal.store.database import Database

STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def db(url: str, *args: str) -> str:
    """``fhirportal db …`` on ``url``; its output (it must succeed)."""
    result = CliRunner().invoke(cli.main, ["--database-url", url, "db", *args])
    assert result.exit_code == 0, result.output
    return result.output


def insert_stored(conn: Connection, pid: int, body: dict) -> None:
    """``body`` (with ``resourceType`` and ``id``) as version 1 of its resource: its ``resource`` and
    ``resource_version`` rows, in the columns both have had since the baseline (no index rows)."""
    content = json.dumps({**body, "meta": {"versionId": "1", "lastUpdated": "2024-05-01T12:00:00Z"}})
    values = {"pid": pid, "type": body["resourceType"], "id": body["id"], "stamp": STAMP, "content": content}
    conn.execute(text("INSERT INTO resource (pid, resource_type, fhir_id, version_id, last_updated, deleted, content, "
                      "content_hash, marks) VALUES (:pid, :type, :id, 1, :stamp, false, :content, 'h', 0)"), values)
    conn.execute(text("INSERT INTO resource_version (pid, version_id, resource_type, fhir_id, last_updated, method, "
                      "deleted, content) VALUES (:pid, 1, :type, :id, :stamp, 'PUT', false, :content)"), values)


def row_counts(conn: Connection, tables) -> dict[str, int]:
    return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in tables}


def downgrade(url: str, revision: str) -> None:
    """Down to ``revision`` on a connection with no transaction open, as ``fhirportal db upgrade`` runs
    migrations (a migration's ``CONCURRENTLY`` steps run outside one)."""
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            command.downgrade(migrate.config(conn), revision)
            conn.commit()
    finally:
        database.dispose()


def found_ids(url: str, scope: str, queries: list[str], context: dict | None = None) -> list[list[str]]:
    """The ids each search (``Type?…``) finds with a token of ``scope``, sorted, on a server at ``url``."""
    app = create_app(Settings(database_url=url, base_url="http://localhost/fhir"))
    ctx = app.extensions["fhirportal"]
    token = ctx.tokens.mint(client_id="migration-test", scope=scope, context=context, expires_in=300)
    try:
        found = []
        for query in queries:
            answer = app.test_client().get(f"/fhir/{query}", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.get_data(as_text=True)
            found.append(sorted(entry["resource"]["id"] for entry in answer.get_json().get("entry", [])))
        return found
    finally:
        ctx.audit.flush()
        ctx.database.dispose()
