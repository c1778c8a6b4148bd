"""Authorization-server throughput: authorization codes issued through the consent form, and
code → token exchanges per second (public client + PKCE S256, OpenID id_token signed RS256).

Runs in-process through the Flask test client (no network), on a temporary SQLite file by default
or on the database given by --database-url — whose tables it DROPS and re-creates, so give it a
database of its own (e.g. ``createdb fhirportal_smartbench``), never the test or a real one — and
prints per-operation rate and p50/p95.

    .venv/bin/python benchmarks/smart_benchmark.py [--exchanges N] [--database-url URL] [--http]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhirportal.app import create_app, prepare_database  # noqa: E402
from fhirportal.settings import Settings  # noqa: E402
from tests.smart.flows import (  # noqa: E402
    PASSWORD,
    REDIRECT_URI,
    authorization_params,
    consent,
    exchange,
    login,
    redirect_params,
)

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _report(name: str, seconds: list[float]) -> None:
    total = sum(seconds)
    print(f"{name:<32} {len(seconds) / total:8.1f}/s   p50 {statistics.median(seconds) * 1000:6.2f} ms   "
          f"p95 {_percentile(seconds, 0.95) * 1000:6.2f} ms   (n={len(seconds)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--concurrency", type=int, default=4, help="threads exchanging codes at once")
    parser.add_argument("--http", action="store_true",
                        help="also exchange over HTTP against gunicorn (2 workers x 4 threads) on the same database")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='fhirportal-smart-bench-')}/bench.db"
    app = create_app(Settings(database_url=url, base_url="http://localhost/fhir"), create_schema=False)
    ctx, smart = app.extensions["fhirportal"], app.extensions["smart"]
    ctx.database.drop_schema()
    prepare_database(ctx)
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "Bench"}]}, fhir_id="p1")
    smart.accounts.create("bench", PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",))
    client_app, _ = smart.clients.register({"client_name": "Bench", "redirect_uris": [REDIRECT_URI],
                                            "token_endpoint_auth_method": "none"})
    browser = app.test_client()
    print(f"database: {ctx.database.dialect}; {args.exchanges} authorizations then {args.exchanges} exchanges")

    started = time.perf_counter()
    login(browser, authorization_params(client_app.client_id, SCOPE), "bench")
    print(f"{'sign-in (Argon2id password check)':<32} {(time.perf_counter() - started) * 1000:8.1f} ms")

    codes, authorize_times = [], []
    for _ in range(args.exchanges):
        auth = authorization_params(client_app.client_id, SCOPE)
        started = time.perf_counter()
        page = browser.get("/auth/authorize", query_string=auth.params)
        code = redirect_params(consent(browser, page))["code"]
        authorize_times.append(time.perf_counter() - started)
        codes.append((code, auth))
    _report("authorize (consent page + allow)", authorize_times)

    half = len(codes) // 2
    exchange_times = []
    for code, auth in codes[:half]:
        started = time.perf_counter()
        response = exchange(browser, code, auth, client_app.client_id)
        exchange_times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert re.match(r"^[\w-]+$", response.get_json()["access_token"])
    _report("code -> token exchange, 1 thread", exchange_times)

    def timed_exchange(item):
        code, auth = item
        started = time.perf_counter()
        answer = exchange(app.test_client(), code, auth, client_app.client_id)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        latencies = list(pool.map(timed_exchange, codes[half:]))
    elapsed = time.perf_counter() - started
    print(f"{f'code -> token exchange, {args.concurrency} threads':<32} {len(latencies) / elapsed:8.1f}/s   "
          f"p50 {statistics.median(latencies) * 1000:6.2f} ms   p95 {_percentile(latencies, 0.95) * 1000:6.2f} ms   "
          f"(n={len(latencies)})")
    if args.http:
        http_exchanges(url, client_app.client_id, args.exchanges, max(args.concurrency, 8))


def http_exchanges(url: str, client_id: str, count: int, concurrency: int) -> None:
    """Codes issued through the pages over HTTP, then exchanged by ``concurrency`` client threads."""
    import requests

    from benchmarks.rest_benchmark import Server
    from tests.smart.flows import form_action, hidden, pkce_pair

    workdir = Path(tempfile.mkdtemp(prefix="fhirportal-smart-http-"))
    server = Server(url, workdir)
    try:
        server.wait_ready()
        origin = f"http://127.0.0.1:{server.port}"
        browser = requests.Session()

        def authorize_once():
            verifier, challenge = pkce_pair()
            params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": SCOPE,
                      "state": "s", "aud": f"{origin}/fhir", "code_challenge": challenge,
                      "code_challenge_method": "S256"}
            page = browser.get(f"{origin}/auth/authorize", params=params, timeout=30)
            html = page.text
            if 'value="login"' in html:
                page = browser.post(form_action(html), data={
                    "csrf_token": hidden(html, "csrf_token"), "step": "login", "username": "bench",
                    "password": PASSWORD}, timeout=30)
                html = page.text
            ticked = re.findall(r'name="scope" value="([^"]*)" checked', html)
            answer = browser.post(form_action(html), data={
                "csrf_token": hidden(html, "csrf_token"), "step": "consent", "decision": "allow", "scope": ticked},
                allow_redirects=False, timeout=30)
            code = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)
            return code, verifier

        codes = [authorize_once() for _ in range(count)]
        local = threading.local()

        def exchange_once(item):
            code, verifier = item
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            started = time.perf_counter()
            answer = session.post(f"{origin}/auth/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier, "client_id": client_id}, timeout=30)
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(exchange_once, codes))
        elapsed = time.perf_counter() - started
        print(f"{f'HTTP exchange, gunicorn, {concurrency} clients':<32} {len(latencies) / elapsed:8.1f}/s   "
              f"p50 {statistics.median(latencies) * 1000:6.2f} ms   "
              f"p95 {_percentile(latencies, 0.95) * 1000:6.2f} ms   (n={len(latencies)})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
