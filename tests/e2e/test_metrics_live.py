"""``/metrics`` scraped from a live gunicorn (2 workers, multiprocess mode) while clients load it: every
scrape answers quickly, the request counters only grow, and at the end they add up to exactly the
requests the clients made, whichever worker answered them."""

from __future__ import annotations

import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import mint_system_token
from tests.e2e.gunicorn_server import GunicornServer

TOKEN = "live-metrics-token-0123456789"
CLIENTS = 4
SECONDS = 4.0


def _reads(text: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "fhirportal_http_requests_total" and sample.labels.get("interaction") == "read"
               and sample.labels.get("resource_type") == "Patient")


def test_metrics_are_scraped_under_load_and_add_up_across_workers(tmp_path):
    # its own SQLite file whatever the suite's database: the metrics do not depend on it, and the shared
    # PostgreSQL test database holds the package's live server, which a wipe here would empty under it
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = GunicornServer(url, tmp_path / "gunicorn.log", env={
        "FHIRPORTAL_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}).start()
    try:
        token = mint_system_token(url)
        bearer = {"Authorization": f"Bearer {token}"}
        created = requests.put(f"{server.base_url}/Patient/live-m1", headers=bearer, timeout=30, json={
            "resourceType": "Patient", "id": "live-m1", "name": [{"family": "Metrics"}]})
        assert created.status_code in (200, 201), created.text
        root = server.base_url.removesuffix("/fhir")
        counts = [0] * CLIENTS
        failures: list[str] = []
        stop = time.monotonic() + SECONDS

        def load(number: int) -> None:
            with requests.Session() as session:
                while time.monotonic() < stop:
                    answer = session.get(f"{server.base_url}/Patient/live-m1", headers=bearer, timeout=30)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                    counts[number] += 1

        threads = [threading.Thread(target=load, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        seen: list[float] = []
        while any(thread.is_alive() for thread in threads):
            started = time.monotonic()
            scrape = requests.get(f"{root}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert scrape.status_code == 200 and time.monotonic() - started < 5
            seen.append(_reads(scrape.text))
            time.sleep(0.3)
        for thread in threads:
            thread.join()
        assert not failures, failures[:3]
        assert len(seen) >= 3 and seen == sorted(seen)  # counters only grow, across workers
        final = _reads(requests.get(f"{root}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                                    timeout=30).text)
        assert final == sum(counts) > 0
        assert requests.get(f"{root}/metrics", timeout=30).status_code == 401
    finally:
        server.stop()
