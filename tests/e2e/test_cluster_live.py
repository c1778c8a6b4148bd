"""Several nodes behind HAProxy, PostgreSQL behind PgBouncer in transaction pooling (``deploy/cluster.py``):
a sign-in, consent and code exchange spread over three nodes; PIN guesses on different nodes counted
together; an export started on one node and polled on another; a token revoked on one node refused by
the others on their next request; and under load, a node killed outright costs the clients no request,
and serves again when it is back. PostgreSQL only (PgBouncer), with Debian's haproxy and pgbouncer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from fhirportal.portal.pages import CSRF_COOKIE as PORTAL_CSRF
from tests.e2e.gunicorn_server import BIN, ROOT, free_port
from tests.e2e.test_security_live import PASSWORD_RE, _csrf, _invitation_row, _invite, _registration
from tests.e2e.test_smart_live import MARIA, PUBLIC_APP, REDIRECT_URI, _form, _pkce

TEST_URL = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(
    not TEST_URL.startswith("postgresql") or not shutil.which("haproxy") or not shutil.which("pgbouncer"),
    reason="needs PostgreSQL (FHIRPORTAL_TEST_DATABASE_URL), haproxy and pgbouncer (.ci/run installs them)")


def _cluster_class():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cluster", ROOT / "deploy" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Cluster


@pytest.fixture(scope="module")
def cluster():
    parsed = make_url(TEST_URL)
    name = f"fhirportal_cluster_{uuid.uuid4().hex[:10]}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = parsed.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    env = dict(os.environ, FHIRPORTAL_DATABASE_URL=url)
    for command in (["init-db"], ["load", "--quiet", str(ROOT / "fixtures" / "demo")],
                    ["accounts", "load", str(ROOT / "fixtures" / "demo-accounts.json")]):
        done = subprocess.run([str(BIN / "fhirportal"), *command], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    directory = Path(tempfile.mkdtemp(prefix="fhirportal-cluster-"))  # pgbouncer runs as postgres: outside
    os.chmod(directory, 0o755)                                           # pytest's private temporary tree
    Cluster = _cluster_class()
    cluster = Cluster(directory)
    state = cluster.start(url, nodes=3, port=free_port(), node_port=free_port(), pgbouncer_port=free_port(),
                          workers=1, threads=4, pool_size=10)
    front = f"http://127.0.0.1:{state['port']}"
    nodes = [f"http://127.0.0.{n + 1}:{state['node_port']}" for n in range(1, 4)]
    token = subprocess.run([str(BIN / "python"), "-c", (
        "import sys; from fhirportal.store.database import Database; from fhirportal.smart.tokens import TokenStore;"
        "from fhirportal.fhir.resource_types import SUPPORTED_TYPES as T; d = Database(sys.argv[1]);"
        "print(TokenStore(d, T).mint(client_id='cluster-suite', scope='system/*.cruds'))"), url],
        capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    try:
        yield {"cluster": cluster, "front": front, "nodes": nodes, "database_url": url, "token": token,
               "base_url": f"{front}/fhir", "dir": directory}
    finally:
        cluster.stop()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(directory, ignore_errors=True)


def _system(cluster) -> dict:
    return {"Authorization": f"Bearer {cluster['token']}", "Accept": "application/fhir+json"}


def _on(node: str, url: str) -> str:
    """The same path and query on another node (the pages' form actions are absolute, on the public URL)."""
    parts = urlsplit(url)
    return f"{node}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def test_sign_in_consent_and_exchange_on_three_nodes(cluster):
    """Each step of a standalone launch goes to another node: the session, the code and the PKCE
    challenge are in the database, not in a node."""
    one, two, three = cluster["nodes"]
    verifier, challenge = _pkce()
    state = uuid.uuid4().hex
    params = {"response_type": "code", "client_id": PUBLIC_APP, "redirect_uri": REDIRECT_URI,
              "scope": "launch/patient openid fhirUser patient/*.rs", "state": state, "aud": cluster["base_url"],
              "code_challenge": challenge, "code_challenge_method": "S256"}
    jar: dict[str, str] = {}  # the browser's cookies: one site (HAProxy) for it, three nodes behind

    def browse(method: str, url: str, **kw) -> requests.Response:
        answer = requests.request(method, url, cookies=jar, allow_redirects=False, timeout=30, **kw)
        jar.update(answer.cookies.get_dict())
        return answer

    page = browse("GET", f"{one}/auth/authorize", params=params)
    action, csrf = _form(page.text)
    consent = browse("POST", _on(two, action), data={"csrf_token": csrf, "step": "login", "username": MARIA[0],
                                                     "password": MARIA[1]})
    action, csrf = _form(consent.text)
    ticked = re.findall(r'name="scope" value="([^"]*)" checked', consent.text.replace("&amp;", "&"))
    back = browse("POST", _on(three, action), data={"csrf_token": csrf, "step": "consent", "decision": "allow",
                                                    "scope": ticked})
    code = re.search(r"[?&]code=([^&]+)", back.headers["Location"]).group(1)
    token = requests.post(f"{one}/auth/token", data={"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
                                                     "client_id": PUBLIC_APP}, timeout=30).json()
    for node in (one, two, three):
        read = requests.get(f"{node}/fhir/Patient/{token['patient']}", timeout=30,
                            headers={"Authorization": f"Bearer {token['access_token']}"})
        assert read.status_code == 200

    # revoked on one node: every node refuses it on its next request
    revoked = requests.post(f"{two}/auth/revoke", data={"token": token["access_token"], "client_id": PUBLIC_APP},
                            timeout=30)
    assert revoked.status_code == 200
    for node in (one, two, three):
        refused = requests.get(f"{node}/fhir/Patient/{token['patient']}", timeout=30,
                               headers={"Authorization": f"Bearer {token['access_token']}"})
        assert refused.status_code == 401


def test_pin_guesses_on_different_nodes_are_counted_together(cluster):
    invitation = _invite(cluster, "patient-024")
    nodes = cluster["nodes"]
    link_path = invitation["link"].split("/portal/", 1)[1]
    for n in range(5):
        node = nodes[n % 3]
        page_url = f"{node}/portal/{link_path}"
        csrf = _csrf(page_url)
        answer = requests.post(page_url, cookies={PORTAL_CSRF: csrf}, timeout=30, data=_registration(
            invitation, f"guess{n}", PASSWORD_RE.format(n), csrf_token=csrf, pin=f"ZZZZ-{n:04d}"))
        assert answer.status_code in (400, 410), answer.status_code
    row = _invitation_row(cluster, "patient-024")
    assert row.state == "locked" and row.failed_attempts == 5


def test_an_export_started_on_one_node_is_polled_on_another(cluster):
    one, two, three = cluster["nodes"]
    kicked = requests.get(f"{one}/fhir/Patient/$export?_type=Patient,Observation",
                          headers={**_system(cluster), "Prefer": "respond-async"}, timeout=30)
    assert kicked.status_code == 202, kicked.text
    status_path = kicked.headers["Content-Location"].split("/fhir/", 1)[1]
    deadline = time.monotonic() + 120
    while True:
        polled = requests.get(f"{two}/fhir/{status_path}", headers=_system(cluster), timeout=30)
        if polled.status_code == 200:
            break
        assert polled.status_code == 202 and time.monotonic() < deadline, polled.text
        time.sleep(0.5)
    files = polled.json()["output"]
    patients = next(f for f in files if f["type"] == "Patient")
    downloaded = requests.get(patients["url"].replace(cluster["front"], three), timeout=60,
                              headers={**_system(cluster), "Accept": "application/fhir+ndjson"})
    assert downloaded.status_code == 200 and len(downloaded.text.splitlines()) == patients["count"]


def test_a_node_killed_under_load_costs_no_request_and_serves_again(cluster):
    base, headers = cluster["base_url"], _system(cluster)
    observation = requests.get(f"{base}/Observation?patient=patient-001&_count=1", headers=headers,
                               timeout=30).json()["entry"][0]["resource"]
    failures: list[str] = []
    per_second: Counter = Counter()
    stop = threading.Event()
    started = time.monotonic()

    def load(number: int) -> None:
        session = requests.Session()
        calls = [("GET", f"{base}/Patient/patient-00{1 + number % 3}", None),
                 ("GET", f"{base}/Observation?patient=patient-001&_count=10", None),
                 ("PUT", f"{base}/Observation/{observation['id']}", observation)]
        n = 0
        while not stop.is_set():
            method, url, body = calls[n % len(calls)]
            n += 1
            try:
                answer = session.request(method, url, json=body, headers=headers, timeout=30)
                if answer.status_code >= 400:
                    failures.append(f"{method} {url}: {answer.status_code} {answer.text[:200]}")
            except requests.RequestException as exc:
                failures.append(f"{method} {url}: {exc}")
            per_second[int(time.monotonic() - started)] += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    cluster["cluster"].kill_node(2)  # SIGKILL: the master and its worker, mid-request
    killed = time.monotonic() - started
    time.sleep(4)
    cluster["cluster"].start_node(2)
    back = time.monotonic() - started
    log_path = cluster["dir"] / "haproxy.log"
    lines_at_return = len(log_path.read_text().splitlines())
    time.sleep(5)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:5]
    since_return = log_path.read_text().splitlines()[lines_at_return:]
    assert [line for line in since_return if "nodes/node2" in line and " /fhir/" in line], \
        "node 2 never served after it came back"
    seconds = sorted(per_second)
    before = [per_second[s] for s in seconds if 1 <= s < int(killed)]
    after = [per_second[s] for s in seconds if int(back) + 2 <= s < seconds[-1]]
    assert before and after and sum(after) / len(after) > 0.3 * sum(before) / len(before), (before, after)
