"""Rate limits of the token, registration and sign-in endpoints: counted in the database per source
address and, for tokens, per app in what it was granted (so every worker and node shares them), a 429
with Retry-After over the limit, nothing done for a refused request, and nothing a request that only
names an app can do to spend that app's allowance."""

from __future__ import annotations

from dataclasses import replace

import pytest
from joserfc.jwk import KeySet, RSAKey

from fhirportal.smart import rate_limits
from fhirportal.smart.accounts import MAX_FAILED_LOGINS
from fhirportal.smart.rate_limits import RateLimits
from fhirportal.store import clock
from fhirportal.store.auth_schema import rate_limit
from tests.smart.flows import authorization_params, login
from tests.smart.test_backend_and_endpoints import _assertion

LIMIT = 3
assert LIMIT < MAX_FAILED_LOGINS  # the sign-in test counts on it


@pytest.fixture(autouse=True)
def _one_window(monkeypatch):
    """Every request of a test counts in the same one-minute window (a test that ran across a minute's
    turn would see its counts start again)."""
    fixed = rate_limits._window(clock.now())
    monkeypatch.setattr(rate_limits, "_window", lambda now: fixed)


@pytest.fixture
def limited(smart, monkeypatch):
    """The app's limits lowered to LIMIT per minute for this test."""
    limits = RateLimits(smart.database, {"token": LIMIT, "register": LIMIT, "login": LIMIT})
    monkeypatch.setitem(smart.__dict__, "rate_limits", limits)
    return limits


def _token(client, client_id: str, address: str = "10.0.0.1"):
    return client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": client_id},
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def backend(smart):
    key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    app, _ = smart.clients.register({"client_name": "EHR backend", "grant_types": ["client_credentials"],
                                     "token_endpoint_auth_method": "private_key_jwt",
                                     "jwks": KeySet([key]).as_dict(private=False)})
    return app, key


def _backend_token(client, app, key, address: str, **claims):
    return client.post("/auth/token", data={
        "grant_type": "client_credentials", "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _assertion(app.client_id, key, "RS384", **claims)}, environ_base={"REMOTE_ADDR": address})


def test_the_token_endpoint_is_limited_per_address(client, limited, public_app):
    for _ in range(LIMIT):
        assert _token(client, public_app.client_id).status_code != 429
    refused = _token(client, public_app.client_id)
    assert refused.status_code == 429 and refused.get_json()["error"] == "temporarily_unavailable"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert _token(client, "another-app", "10.0.0.1").status_code == 429  # the address is over
    assert _token(client, "another-app", "10.0.0.2").status_code != 429  # another address
    assert _token(client, public_app.client_id, "10.0.0.3").status_code != 429  # its failures cost the app nothing


def test_an_app_gets_its_limit_of_tokens_a_minute_from_anywhere(client, limited, backend):
    app, key = backend
    for number in range(LIMIT):
        assert _backend_token(client, app, key, f"10.2.0.{number}").status_code == 200
    refused = _backend_token(client, app, key, "10.2.1.1")  # a new address: the app's own bucket is full
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_requests_that_only_name_an_app_do_not_spend_its_allowance(client, limited, backend):
    app, key = backend
    other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # not the app's key: a forged assertion
    for number in range(3 * LIMIT):
        assert _backend_token(client, app, other, f"10.3.0.{number}").status_code in (400, 401)
        assert _token(client, app.client_id, f"10.3.1.{number}").status_code in (400, 401)
    assert _backend_token(client, app, key, "10.3.2.1").status_code == 200


def test_counts_are_shared_through_the_database(ctx, smart, client, backend, limited):
    app, key = backend
    other_worker = RateLimits(smart.database, {"token": LIMIT})  # another process: its own object, same table
    with smart.database.write() as conn:
        for _ in range(LIMIT):
            other_worker.granted(conn, "token", app.client_id)
    assert _backend_token(client, app, key, "10.0.0.7").status_code == 429
    with ctx.database.read() as conn:
        hits = {row.bucket: row.hits for row in conn.execute(rate_limit.select())}
    assert hits[f"token:client:{app.client_id}"] == LIMIT and hits["token:address:10.0.0.7"] == 1


def test_registration_is_limited_per_address(client, limited):
    body = {"client_name": "x", "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"}
    statuses = [client.post("/auth/register", json=body).status_code for _ in range(LIMIT + 1)]
    assert statuses == [201] * LIMIT + [429]


def test_sign_in_attempts_are_limited_and_refused_ones_do_not_count_as_failures(
        client, smart, limited, public_app, patient_account):
    auth = authorization_params(public_app.client_id, "openid launch/patient patient/*.rs")
    for _ in range(LIMIT):
        assert login(client, auth, "ada", "wrong password").status_code == 401
    refused = login(client, auth, "ada", "wrong password")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Too many sign-in attempts" in refused.get_data(as_text=True)
    for _ in range(MAX_FAILED_LOGINS):  # refused before the password is looked at: no lockout from these
        assert login(client, auth, "ada", "wrong password").status_code == 429
    elsewhere = client.application.test_client()  # another network signing in to the same app: not refused
    elsewhere.environ_base["REMOTE_ADDR"] = "10.4.0.1"
    assert login(elsewhere, auth, "ada").status_code == 200
    smart.__dict__["rate_limits"] = RateLimits(smart.database, {})  # no limits: the account is not locked
    assert login(client, auth, "ada").status_code == 200


def test_a_limit_of_zero_is_off(smart, settings):
    limits = RateLimits(smart.database, {"token": 0})
    assert all(limits.check("token", client_id="a", address="b") is None for _ in range(5))
    assert replace(settings).rate_limit_token > 0  # on by default


def test_behind_a_trusted_proxy_the_address_is_the_forwarded_one(settings, ctx):
    from fhirportal.app import create_app

    proxied = create_app(replace(settings, proxy_hops=1), create_schema=False)
    try:
        client = proxied.test_client()
        client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "x"},
                    headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        with ctx.database.read() as conn:
            buckets = {row.bucket for row in conn.execute(rate_limit.select())}
        assert "token:address:203.0.113.9" in buckets  # one hop back: what the proxy saw, not what it was told
        assert not any("198.51.100.1" in bucket for bucket in buckets)
    finally:
        proxied.extensions["fhirportal"].database.dispose()


def test_a_client_id_with_a_nul_or_control_characters_is_counted_not_a_500(client, limited):
    for number, claimed in enumerate(("app\x00x", "\x00", "tab\tand\nnewline", "é" * 300)):
        assert _token(client, claimed, f"10.1.0.{number}").status_code in (400, 401)
