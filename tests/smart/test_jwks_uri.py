"""A backend app that publishes its keys at a ``jwks_uri``: the JWKS is fetched once and kept, and fetched
again when an assertion does not verify with it (the app rotated its key) — at most every
``JWKS_MIN_REFETCH`` seconds, however many bad assertions arrive."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc.jwk import KeySet, RSAKey

from fhirportal.smart import clients
from tests.smart.test_backend_and_endpoints import _assertion, _backend_token


class _Keys:
    def __init__(self):
        self.jwks: dict = {"keys": []}
        self.fetches = 0


@pytest.fixture
def published():
    """A loopback HTTP server publishing a JWKS that the test changes."""
    keys = _Keys()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            keys.fetches += 1
            body = json.dumps(keys.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clients._jwks_cache.clear()
    try:
        yield keys, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        clients._jwks_cache.clear()


def _register(smart, uri: str):
    client, _ = smart.clients.register({"client_name": "EHR", "grant_types": ["client_credentials"],
                                        "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri})
    return client.client_id


def test_the_jwks_is_kept_and_fetched_again_when_the_app_rotates_its_key(client, smart, published, monkeypatch):
    keys, uri = published
    first = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    keys.jwks = KeySet([first]).as_dict(private=False)
    client_id = _register(smart, uri)
    for _ in range(3):
        assert _backend_token(client, client_id, _assertion(client_id, first, "RS384")).status_code == 200
    assert keys.fetches == 1  # kept

    second = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    keys.jwks = KeySet([second]).as_dict(private=False)
    monkeypatch.setattr(clients, "JWKS_MIN_REFETCH", 0.0)
    answer = _backend_token(client, client_id, _assertion(client_id, second, "RS384"))
    assert answer.status_code == 200, answer.get_json()
    assert keys.fetches == 2


def test_bad_assertions_do_not_make_the_server_fetch_each_time(client, smart, published):
    keys, uri = published
    good = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, not the app's key
    keys.jwks = KeySet([good]).as_dict(private=False)
    client_id = _register(smart, uri)
    assert _backend_token(client, client_id, _assertion(client_id, good, "RS384")).status_code == 200
    for _ in range(5):
        refused = _backend_token(client, client_id, _assertion(client_id, stranger, "RS384"))
        assert refused.status_code in (400, 401) and refused.get_json()["error"] == "invalid_client"
    assert keys.fetches == 1  # within JWKS_MIN_REFETCH of the last fetch: no more requests to the app
