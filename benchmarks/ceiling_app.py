"""The ceiling the benchmarks compare fhirportal with: a minimal Flask app, no fhirportal code, that
serves a stored resource's JSON text by primary key with one SELECT.

    FHIRPORTAL_DATABASE_URL=sqlite:///var/fhirportal.db \\
        .venv/bin/gunicorn --workers 2 --worker-class gthread --threads 4 benchmarks.ceiling_app:app

``GET /resource/<pid>`` answers ``SELECT content FROM resource WHERE pid = :pid`` as
``application/fhir+json`` (404 when there is no such row). Run it from the repository root so that
gunicorn reads the same ``gunicorn.conf.py`` as fhirportal; the benchmarks start it with the same
workers, threads and database as the server they measure. It reads the database fhirportal's schema
made, but through SQLAlchemy alone, with a pool of the same size as fhirportal's on PostgreSQL.
"""

from __future__ import annotations

import os

from flask import Flask, Response
from sqlalchemy import create_engine, text

URL = os.environ.get("FHIRPORTAL_DATABASE_URL", "sqlite:///var/fhirportal.db")
if URL.startswith("postgresql://"):
    URL = "postgresql+psycopg://" + URL.removeprefix("postgresql://")
engine = create_engine(URL, pool_size=10, max_overflow=20, pool_pre_ping=True) if URL.startswith("postgresql") \
    else create_engine(URL, connect_args={"check_same_thread": False})
SELECT = text("SELECT content FROM resource WHERE pid = :pid")

app = Flask(__name__)


@app.get("/resource/<int:pid>")
def resource(pid: int) -> Response:
    with engine.connect() as conn:
        content = conn.execute(SELECT, {"pid": pid}).scalar()
    if content is None:
        return Response("not found\n", status=404, mimetype="text/plain")
    return Response(content, mimetype="application/fhir+json")


@app.get("/ready")
def ready() -> Response:
    return Response("ok\n", mimetype="text/plain")
