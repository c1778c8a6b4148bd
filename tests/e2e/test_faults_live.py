"""Faults in a live deployment: PostgreSQL going away under load, and a worker killed mid-transaction.

Each test runs its own gunicorn server (``tests/e2e/gunicorn_server.py``), never the shared
``live_server``, since it kills workers or takes the database away. The figures observed (503
latency during the outage, time to recover, where the kills landed) are printed: run with ``-s``.

The outage is simulated without touching the machine's PostgreSQL: the server reaches it through
``FlakyProxy``, a TCP proxy in this process that can cut every live connection and refuse new ones.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import struct
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from fhirportal.app import build_context
from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.settings import Settings
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.database import Database
from fhirportal.store.journal_schema import access_log

from .gunicorn_server import GunicornServer

BOUND_SECONDS = 10.0  # no answer during the outage may take longer than this
RECOVERY_BOUND_SECONDS = 10.0  # after PostgreSQL is back, every request succeeds again within this
FHIR_JSON = "application/fhir+json"


def _postgresql_url() -> str | None:
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL")
    if url and make_url(url).get_backend_name() == "postgresql":
        return url
    return None


def _test_database_url(tmp_path) -> str:
    return os.environ.get("FHIRPORTAL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'faults.db'}"


def _prepare(url: str, client_id: str) -> str:
    """The schema (created if missing; the database is shared with other tests, so nothing is wiped:
    every test writes its own identifiers) and a system token for ``client_id``."""
    database = Database(url)
    try:
        database.create_schema()
        return TokenStore(database, SUPPORTED_TYPES).mint(client_id=client_id, scope="system/*.cruds")
    finally:
        database.dispose()


def _session(token: str, *, keep_alive: bool = True) -> requests.Session:
    """Without ``keep_alive`` every request opens a new connection: a kept one may lead to a killed worker."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Accept": FHIR_JSON})
    if not keep_alive:
        session.headers["Connection"] = "close"
    return session


# ---------------------------------------------------------------------------------------- the proxy
class FlakyProxy:
    """Forwards loopback TCP connections to ``upstream``. ``cut()`` resets every live connection and
    makes new ones fail at once (accepted, then reset), or with ``silent=True`` hang (accepted, never
    answered: a database host that stopped answering); ``restore()`` forwards again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._up = True
        self._silent = False
        self._held: list[socket.socket] = []  # accepted while silent
        self._closed = False
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self.refused = 0
        threading.Thread(target=self._accept_forever, name="proxy-accept", daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
        except OSError:
            pass
        sock.close()

    def _accept_forever(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._up:
                self.refused += 1
                if self._silent:
                    with self._lock:
                        self._held.append(client)
                else:
                    self._reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._live.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                ends = [s for s in (source, target) if s in self._live]
                self._live.difference_update(ends)
            for sock in ends:
                self._reset(sock)

    def cut(self, *, silent: bool = False) -> None:
        self._silent = silent
        self._up = False
        with self._lock:
            live, self._live = list(self._live), set()
        for sock in live:
            self._reset(sock)

    def restore(self) -> None:
        self._up = True
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            self._reset(sock)

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


# ------------------------------------------------------------------------------------- the outage
@dataclass
class Answer:
    kind: str  # create | read
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection error, client timeout)
    operation_outcome: bool = False
    retry_after: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _patient(identifier: tuple[str, str]) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": identifier[0], "value": identifier[1]}],
            "name": [{"family": "Outage", "given": [identifier[1]]}]}


class LoadClients:
    """Threads creating Patients and reading back acknowledged ones until ``stop()``."""

    def __init__(self, base_url: str, token: str, system: str, threads: int = 4):
        self.base_url, self.token, self.system = base_url, token, system
        self.answers: list[Answer] = []
        self.acknowledged: list[tuple[str, str]] = []  # (id, identifier value) of every 201
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> LoadClients:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _call(self, session: requests.Session, kind: str, method: str, url: str, **kwargs):
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=BOUND_SECONDS * 3, **kwargs)
        except requests.RequestException as exc:
            answer = Answer(kind, started, time.monotonic(), None, error=repr(exc))
            response = None
        else:
            is_outcome = False
            with contextlib.suppress(ValueError):
                is_outcome = response.json().get("resourceType") == "OperationOutcome"
            answer = Answer(kind, started, time.monotonic(), response.status_code, is_outcome,
                            response.headers.get("Retry-After"))
        with self._lock:
            self.answers.append(answer)
        return response

    def _run(self, number: int) -> None:
        session = _session(self.token)
        count = 0
        while not self._stop.is_set():
            count += 1
            value = f"{number}-{count}"
            response = self._call(session, "create", "POST", f"{self.base_url}/Patient",
                                  data=json.dumps(_patient((self.system, value))),
                                  headers={"Content-Type": FHIR_JSON})
            if response is not None and response.status_code == 201:
                with self._lock:
                    self.acknowledged.append((response.json()["id"], value))
                    known = self.acknowledged[len(self.acknowledged) // 2]
                self._call(session, "read", "GET", f"{self.base_url}/Patient/{known[0]}")
            time.sleep(0.05)  # a steady load, not a benchmark: the machine is shared


@pytest.fixture
def postgresql_url():
    url = _postgresql_url()
    if url is None:
        pytest.skip("needs PostgreSQL (the outage is simulated with a TCP proxy in front of it): set "
                    "FHIRPORTAL_TEST_DATABASE_URL to a postgresql:// URL")
    return url


def _through(url: str, proxy: FlakyProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def proxied_server(postgresql_url, tmp_path):
    upstream = make_url(postgresql_url)
    proxy = FlakyProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    client_id = f"faults-{uuid.uuid4().hex[:12]}"
    token = _prepare(postgresql_url, client_id)
    server = GunicornServer(_through(postgresql_url, proxy), tmp_path / "gunicorn.log")
    try:
        server.start()
        yield {"server": server, "proxy": proxy, "token": token, "client_id": client_id, "direct_url": postgresql_url}
    finally:
        server.stop()
        proxy.close()


def _probe(method: str, url: str, **kwargs) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status = requests.request(method, url, timeout=BOUND_SECONDS * 3, allow_redirects=False, **kwargs).status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - started


def _first_error(server) -> str:
    """The server log from its first unhandled error (the traceback of a 500), or its tail."""
    text = server.log_path.read_text(errors="replace")
    starts = [i for i in (text.find("unhandled error"), text.find("Error handling request"),
                          text.find("Traceback")) if i >= 0]
    return text[min(starts):min(starts) + 4000] if starts else text[-3000:]


def test_postgresql_outage_answers_503_then_recovers_and_keeps_every_acknowledged_write(proxied_server):
    """While PostgreSQL is unreachable (every connection reset, new ones refused) under a create/read
    load, every answer is a 2xx or a 503 OperationOutcome with Retry-After, within BOUND_SECONDS
    (no 500, no hang, no dropped connection), the /auth and /portal pages answer 503 too; once it is
    reachable again the same server processes serve within RECOVERY_BOUND_SECONDS; every create
    acknowledged with 201 is in the database (read around the proxy), and so is its access-log row
    (the journal writer kept the rows queued during the outage)."""
    server, proxy, token = proxied_server["server"], proxied_server["proxy"], proxied_server["token"]
    master, workers = server.process.pid, set(server.worker_pids())
    system = f"urn:fhirportal:faults:{uuid.uuid4().hex}"
    clients = LoadClients(server.base_url, token, system).start()
    root = server.base_url.removesuffix("/fhir")
    try:
        time.sleep(2.5)
        proxy.cut()
        cut_at = time.monotonic()
        time.sleep(1.5)
        basic = {"Authorization": "Basic " + base64.b64encode(b"some-client:secret").decode()}
        probes = {  # pages and endpoints that need the database (a client's registration, a code, a key)
            "POST /auth/token": _probe("POST", f"{root}/auth/token", data={
                "grant_type": "authorization_code", "code": "abc", "redirect_uri": "http://app.test/cb",
                "client_id": "some-client"}),
            "POST /auth/introspect": _probe("POST", f"{root}/auth/introspect", data={"token": token}, headers=basic),
            "GET /auth/authorize": _probe("GET", f"{root}/auth/authorize", params={
                "response_type": "code", "client_id": "some-client", "redirect_uri": "http://app.test/cb",
                "scope": "openid", "state": "s", "aud": server.base_url}),
            "GET /auth/jwks": _probe("GET", f"{root}/auth/jwks"),
            "GET /portal/register": _probe("GET", f"{root}/portal/register?t=abc"),
        }
        time.sleep(max(0.0, cut_at + 6 - time.monotonic()))
        proxy.restore()
        restored_at = time.monotonic()
        time.sleep(RECOVERY_BOUND_SECONDS + 3)
    finally:
        clients.stop()

    answers = clients.answers
    during = [a for a in answers if a.started >= cut_at and a.ended <= restored_at]
    unavailable = [a for a in answers if a.status == 503]
    failures_after = [a for a in answers if a.started >= restored_at and a.status not in (200, 201)]
    recovery = max((a.ended - restored_at for a in failures_after), default=0.0)
    latencies = [a.seconds for a in unavailable]
    print(f"\noutage: {len(answers)} answers, {len(during)} during the outage, {len(unavailable)} x 503; "
          f"503 latency median {statistics.median(latencies) if latencies else float('nan'):.3f} s, "
          f"max {max(latencies, default=float('nan')):.3f} s; slowest answer overall "
          f"{max(a.seconds for a in answers):.3f} s; recovered {recovery:.2f} s after PostgreSQL came back; "
          f"{len(clients.acknowledged)} creates acknowledged; proxy refused {proxy.refused} connections; "
          f"probes {probes}")

    assert len(during) >= 8 and all(a.status == 503 for a in during), \
        sorted({(a.status, a.error) for a in during}, key=str)
    dropped = [a for a in answers if a.status is None]
    assert not dropped, dropped[:5]
    assert {a.status for a in answers} <= {200, 201, 503}, (sorted({a.status for a in answers}), _first_error(server))
    assert all(a.operation_outcome and a.retry_after and int(a.retry_after) > 0 for a in unavailable)
    slow = [a for a in answers if a.seconds > BOUND_SECONDS]
    assert not slow, slow[:5]
    assert all(status == 503 and seconds <= BOUND_SECONDS for status, seconds in probes.values()), probes
    assert recovery <= RECOVERY_BOUND_SECONDS, failures_after[:5]
    assert any(a.status == 201 and a.started >= restored_at for a in answers)
    # recovered without a restart: the same master and workers
    assert server.process.poll() is None and set(server.worker_pids()) == workers and server.process.pid == master

    context = build_context(Settings(database_url=proxied_server["direct_url"], base_url=server.base_url))
    try:
        with context.database.read() as conn:
            for fhir_id, value in clients.acknowledged:
                body = context.repository.read(conn, "Patient", fhir_id).body
                assert body["identifier"] == [{"system": system, "value": value}], (fhir_id, body)
        created = sum(1 for a in answers if a.kind == "create" and a.status == 201)
        query = select(func.count()).select_from(access_log).where(
            access_log.c.client_id == proxied_server["client_id"], access_log.c.action == "create",
            access_log.c.outcome == 201)
        deadline = time.monotonic() + 10
        while True:  # the workers' writers flush within a fraction of a second
            with context.database.read() as conn:
                journalled = conn.execute(query).scalar_one()
            if journalled >= created or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert journalled >= created, f"{journalled} of {created} acknowledged creates are in the access log"
    finally:
        context.database.dispose()


def test_a_worker_started_during_the_outage_boots_and_serves_after_it(proxied_server):
    """A worker that dies while PostgreSQL is unreachable is replaced by one that boots anyway (a
    worker failing to boot would make the gunicorn master stop the whole server), answers 503
    meanwhile, and serves once PostgreSQL is back."""
    server, proxy, token = proxied_server["server"], proxied_server["proxy"], proxied_server["token"]
    session = _session(token, keep_alive=False)
    proxy.cut()
    victims = server.worker_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    replacements = server.wait_for_workers(exclude=tuple(victims))
    booted = time.monotonic() - started
    answers = [session.get(f"{server.base_url}/Patient?_count=1", timeout=BOUND_SECONDS * 3) for _ in range(6)]
    assert server.alive(), server.log_tail()
    assert [r.status_code for r in answers] == [503] * 6
    assert all(r.json()["resourceType"] == "OperationOutcome" and r.headers["Retry-After"] for r in answers)
    proxy.restore()
    restored = time.monotonic()
    while time.monotonic() - restored < RECOVERY_BOUND_SECONDS:
        if all(session.get(f"{server.base_url}/Patient?_count=1", timeout=BOUND_SECONDS).status_code == 200
               for _ in range(6)):
            break
        time.sleep(0.2)
    recovered = time.monotonic() - restored
    print(f"\nworkers replaced during the outage in {booted:.2f} s; serving {recovered:.2f} s after PostgreSQL "
          "came back")
    created = session.post(f"{server.base_url}/Patient", data=json.dumps(_patient(("urn:faults", "after"))),
                           headers={"Content-Type": FHIR_JSON}, timeout=BOUND_SECONDS)
    assert created.status_code == 201, created.text
    assert recovered < RECOVERY_BOUND_SECONDS
    assert sorted(server.worker_pids()) == sorted(replacements)


def test_a_postgresql_that_stops_answering_costs_a_bounded_wait(proxied_server):
    """When new connections to PostgreSQL are accepted but never answered (a host gone silent, not
    refusing), requests still get a 503 OperationOutcome within BOUND_SECONDS: the connect timeout
    bounds the wait instead of the request hanging; afterwards the server serves again."""
    server, proxy, token = proxied_server["server"], proxied_server["proxy"], proxied_server["token"]
    session = _session(token)
    assert session.get(f"{server.base_url}/Patient?_count=1", timeout=BOUND_SECONDS).status_code == 200
    proxy.cut(silent=True)
    results: list[tuple[int | None, float]] = []

    def one() -> None:
        started = time.monotonic()
        try:
            response = requests.get(f"{server.base_url}/Patient?_count=1", headers=session.headers,
                                    timeout=BOUND_SECONDS * 3)
            outcome = response.json().get("resourceType") if response.status_code == 503 else None
            results.append((response.status_code if outcome == "OperationOutcome" else -response.status_code,
                            time.monotonic() - started))
        except requests.RequestException:
            results.append((None, time.monotonic() - started))

    threads = [threading.Thread(target=one) for _ in range(6)]  # 2 workers x 4 threads: none queued long
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    proxy.restore()
    restored = time.monotonic()
    while session.get(f"{server.base_url}/Patient?_count=1", timeout=BOUND_SECONDS * 3).status_code != 200:
        assert time.monotonic() - restored < RECOVERY_BOUND_SECONDS
        time.sleep(0.2)
    print(f"\nsilent PostgreSQL: answers (status, seconds) {[(s, round(t, 2)) for s, t in results]}; serving "
          f"{time.monotonic() - restored:.2f} s after it answered again")
    assert all(status == 503 and seconds <= BOUND_SECONDS for status, seconds in results), results


# --------------------------------------------------------------------------- killed mid-transaction
PAIRS = 250  # a Patient and an Observation about them: 500 entries


def _transaction(system: str) -> dict:
    entries = []
    for number in range(PAIRS):
        patient = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": patient, "resource": _patient((system, f"patient-{number}")),
                        "request": {"method": "POST", "url": "Patient",
                                    "ifNoneExist": f"identifier={system}|patient-{number}"}})
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
            "resourceType": "Observation", "status": "final",
            "identifier": [{"system": system, "value": f"observation-{number}"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": patient}, "valueQuantity": {"value": 60 + number % 40, "unit": "/min"}},
            "request": {"method": "POST", "url": "Observation",
                        "ifNoneExist": f"identifier={system}|observation-{number}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _counts(session: requests.Session, base_url: str, system: str) -> tuple[int, int]:
    totals = []
    for resource_type in ("Patient", "Observation"):
        response = session.get(f"{base_url}/{resource_type}", params={"identifier": f"{system}|", "_summary": "count"},
                               timeout=60)
        assert response.status_code == 200, response.text
        totals.append(response.json()["total"])
    return totals[0], totals[1]


def _post_and_kill(server: GunicornServer, token: str, body: bytes, kill_after: float | None):
    """POST the Bundle on a connection of our own; ``kill_after`` seconds after it is sent, SIGKILL the
    worker holding that connection. (status or None if the connection died, killed pid, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    connection.connect()
    client_port = connection.sock.getsockname()[1]
    started = time.monotonic()
    connection.request("POST", "/fhir", body=body, headers={
        "Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Authorization": f"Bearer {token}"})
    sent = time.monotonic()
    killed = None
    if kill_after is not None:
        worker = None
        while worker is None and time.monotonic() - sent < 2:
            worker = server.worker_holding(client_port)
        assert worker is not None, "no worker holds the connection"
        time.sleep(max(0.0, sent + kill_after - time.monotonic()))
        os.kill(worker, signal.SIGKILL)
        killed = worker
    try:
        response = connection.getresponse()
        status = response.status
        response.read()
    except (http.client.HTTPException, ConnectionError):
        status = None
    finally:
        connection.close()
    return status, killed, time.monotonic() - started


def test_a_worker_killed_mid_transaction_leaves_all_or_nothing(tmp_path):
    """Transaction Bundles of 500 conditional creates, the worker running each SIGKILLed at various
    points while it works: afterwards each Bundle's resources all exist or none do (identifier
    searches), at least one kill landed before the commit (nothing written), the master replaced the
    worker and the server kept serving; sending the Bundle again completes it without duplicates."""
    url = _test_database_url(tmp_path)
    token = _prepare(url, f"faults-{uuid.uuid4().hex[:12]}")
    server = GunicornServer(url, tmp_path / "gunicorn.log")
    session = _session(token, keep_alive=False)
    outcomes = []
    baseline = float("nan")
    try:
        server.start()
        system = f"urn:fhirportal:kill:{uuid.uuid4().hex}"
        status, _, baseline = _post_and_kill(server, token, json.dumps(_transaction(system)).encode(), None)
        assert status == 200
        assert _counts(session, server.base_url, system) == (PAIRS, PAIRS)
        for fraction in (0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 1.6, 2.5):
            system = f"urn:fhirportal:kill:{uuid.uuid4().hex}"
            body = json.dumps(_transaction(system)).encode()
            workers = server.worker_pids()
            status, killed, _ = _post_and_kill(server, token, body, baseline * fraction)
            survivor = session.get(f"{server.base_url}/Patient?_count=1", timeout=60)  # the other worker
            assert survivor.status_code == 200, survivor.text
            server.wait_for_workers(exclude=(killed,))
            assert server.alive()
            counts = _counts(session, server.base_url, system)
            outcomes.append((fraction, status, counts))
            assert counts in ((0, 0), (PAIRS, PAIRS)), f"half-written: {counts} after a kill at {fraction:.0%}"
            if status == 200:
                assert counts == (PAIRS, PAIRS)
            assert set(server.worker_pids()) - set(workers), "no new worker"
            again, _, _ = _post_and_kill(server, token, body, None)
            assert again == 200
            assert _counts(session, server.base_url, system) == (PAIRS, PAIRS)
    finally:
        print(f"\nkilled mid-transaction ({make_url(url).get_backend_name()}): a Bundle of {2 * PAIRS} entries takes "
              f"{baseline:.2f} s; kill at fraction of that -> (HTTP status, (Patients, Observations) afterwards): "
              f"{outcomes}")
        server.stop()
    assert any(status is None and counts == (0, 0) for _, status, counts in outcomes), outcomes
