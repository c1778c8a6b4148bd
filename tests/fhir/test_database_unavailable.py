"""A database that cannot be reached is a 503 OperationOutcome (with Retry-After), never a 500; the
access-log writer keeps its rows through it. Real engines throughout: a PostgreSQL URL on a port
nothing listens on, a SQLite file that cannot be opened. (The live outage under load, through a TCP
proxy in front of a real PostgreSQL, is tests/e2e/test_faults_live.py.)"""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from fhirportal.app import create_app
from fhirportal.fhir.audit import Access, AccessLog
from fhirportal.settings import Settings
from fhirportal.store.database import Database, unavailable
from fhirportal.store.journal_schema import access_log

NOBODY_LISTENS = "postgresql://postgres@127.0.0.1:1/nothing"  # port 1: connection refused at once


def test_connectivity_errors_are_unavailable_and_statement_faults_are_not(tmp_path):
    """The classifier behind the 503: refused connections, pool timeouts and a locked SQLite file
    count as unavailable; a wrong statement does not (it stays a 500, a bug to fix)."""
    refused = Database(NOBODY_LISTENS)
    with pytest.raises(sa_exc.OperationalError) as caught:
        refused.engine.connect()
    assert unavailable(caught.value)
    assert unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    assert unavailable(sqlite3.OperationalError("database is locked"))
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa_exc.OperationalError) as caught, database.read() as conn:
        conn.exec_driver_sql("SELEC 1")
    assert not unavailable(caught.value)
    assert not unavailable(ValueError("not a database error"))


def test_a_server_whose_database_is_unreachable_starts_and_answers_503(tmp_path):
    """The app starts though the database refuses connections (a gunicorn worker that failed to boot
    would stop the whole server) and answers 503 OperationOutcome with Retry-After, FHIR and /auth,
    quickly."""
    app = create_app(Settings(database_url=NOBODY_LISTENS, export_dir=str(tmp_path / "exports")))
    client = app.test_client()
    for method, path in (("get", "/fhir/Patient/1"), ("get", "/fhir/metadata"), ("post", "/fhir/Patient"),
                         ("get", "/auth/jwks"), ("get", "/portal/register?t=abc")):
        started = time.monotonic()
        response = getattr(client, method)(path, headers={"Authorization": "Bearer abc"},
                                           json={"resourceType": "Patient"} if method == "post" else None)
        assert time.monotonic() - started < 5, path
        assert response.status_code == 503, (path, response.status_code, response.data[:300])
        assert int(response.headers["Retry-After"]) > 0
        outcome = response.get_json(force=True)
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "transient"


def test_the_access_log_writer_keeps_its_rows_while_the_database_is_away(tmp_path):
    """The background writer fails to write while the SQLite file cannot be opened (its path is a
    directory), keeps the access queued, keeps running, and writes it once the file can be opened."""
    path = tmp_path / "later.db"
    path.mkdir()  # "unable to open database file"
    database = Database(f"sqlite:///{path}")
    journal = AccessLog(database, "http://example.test/fhir", {})
    journal.record(Access("read", "Patient", "Patient/1", 200, "writer-test"))
    time.sleep(0.6)  # a few flush attempts, all failing
    assert len(journal._pending) == 1
    path.rmdir()
    database.create_schema()
    deadline = time.monotonic() + 10
    count = 0
    while time.monotonic() < deadline and not count:
        time.sleep(0.2)
        with database.read() as conn:
            count = conn.execute(select(func.count()).select_from(access_log)
                                 .where(access_log.c.client_id == "writer-test")).scalar_one()
    assert count == 1
    database.dispose()


def test_a_read_whose_connection_dies_mid_request_is_503_not_a_teardown_500(ctx, client, token):
    """The connection of a GET's read transaction is terminated after the transaction began: the token
    lookup fails (503), and ending the invalidated transaction in teardown must not raise (gunicorn
    would turn that into a bare 500). PostgreSQL only: a backend to terminate."""
    if ctx.database.dialect != "postgresql":
        pytest.skip("needs a PostgreSQL backend to terminate")
    import psycopg

    real_read = ctx.database.read

    def read_then_lose_the_connection():
        context = real_read()
        conn = context.__enter__()
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        url = ctx.database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        return _Entered(context, conn)

    ctx.database.read = read_then_lose_the_connection
    try:
        response = client.get("/fhir/Patient/anyone", headers={"Authorization": f"Bearer {token}"})
    finally:
        del ctx.database.read
    assert response.status_code == 503 and response.headers.get("Retry-After")


class _Entered:
    """A context manager already entered (``Database.read()``'s), handing out its connection."""

    def __init__(self, context, conn):
        self.context, self.conn = context, conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc_info):
        return self.context.__exit__(*exc_info)
