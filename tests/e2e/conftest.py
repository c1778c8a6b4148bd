"""A real server process (gunicorn) on loopback, over the test database, loaded with the demo practice
through the ``fhirportal load`` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete

from fhirportal.store.database import Database
from fhirportal.store.schema import metadata

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wipe(url: str) -> None:
    database = Database(url)
    database.create_schema()
    with database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    database.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL") or \
        f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'fhirportal-e2e.db'}"
    _wipe(url)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    env = dict(os.environ, FHIRPORTAL_DATABASE_URL=url, FHIRPORTAL_BASE_URL=base_url)
    loaded = subprocess.run([str(BIN / "fhirportal"), "load", "--quiet", str(ROOT / "fixtures" / "demo")],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread",
         "--threads", "4", "wsgi:app"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base_url}/metadata", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.2)
        yield {"base_url": base_url, "load_output": loaded.stderr}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        _wipe(url)
