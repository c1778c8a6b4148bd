"""Backend services (private_key_jwt), EHR launch, revocation, introspection, registration and the
patient's connected-apps page."""

from __future__ import annotations

import base64
import re
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from tests.smart.flows import REDIRECT_URI, authorize, exchange, hidden

TOKEN_URL = "http://localhost/auth/token"
SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs"


def _assertion(client_id: str, key, alg: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 240, "jti": str(uuid.uuid4())}
    body.update(claims)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, body, key, algorithms=[alg])


@pytest.fixture
def backend(smart):
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    ec = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})
    jwks = KeySet([rsa, ec]).as_dict(private=False)
    client, _ = smart.clients.register({"client_name": "EHR backend", "grant_types": ["client_credentials"],
                                        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})
    return client, rsa, ec


def _backend_token(client, client_id, assertion, scope="system/*.rs"):
    return client.post("/auth/token", data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_backend_services_token(client, backend, alg, ctx):
    app, rsa, ec = backend
    key = rsa if alg == "RS384" else ec
    response = _backend_token(client, app.client_id, _assertion(app.client_id, key, alg),
                              scope="system/*.rs patient/Observation.rs unknown/scope")
    assert response.status_code == 200, response.get_json()
    token = response.get_json()
    assert token["scope"] == "system/*.rs"
    assert isinstance(token["expires_in"], int) and "refresh_token" not in token
    access = ctx.tokens.authenticate(token["access_token"])
    assert access.context == "system"


def test_backend_assertion_replay_and_long_exp_are_refused(client, backend):
    app, rsa, _ = backend
    assertion = _assertion(app.client_id, rsa, "RS384")
    assert _backend_token(client, app.client_id, assertion).status_code == 200
    assert _backend_token(client, app.client_id, assertion).status_code in (400, 401)
    far = _assertion(app.client_id, rsa, "RS384", exp=int(time.time()) + 3600)
    assert _backend_token(client, app.client_id, far).status_code in (400, 401)
    wrong_aud = _assertion(app.client_id, rsa, "RS384", aud="https://elsewhere/token")
    assert _backend_token(client, app.client_id, wrong_aud).status_code in (400, 401)
    rs256 = _assertion(app.client_id, rsa, "RS256")
    assert _backend_token(client, app.client_id, rs256).status_code in (400, 401)


def test_backend_needs_a_system_scope_and_a_valid_assertion_type(client, backend):
    app, rsa, _ = backend
    refused = _backend_token(client, app.client_id, _assertion(app.client_id, rsa, "RS384"),
                             scope="patient/*.rs")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
    bad_type = client.post("/auth/token", data={"grant_type": "client_credentials", "scope": "system/*.rs",
                                                "client_assertion_type": "nonsense",
                                                "client_assertion": _assertion(app.client_id, rsa, "RS384")})
    assert bad_type.status_code in (400, 401)


def test_ehr_launch_carries_context(client, smart, staff_account, confidential_app, ctx):
    app, secret = confidential_app
    staff_token = ctx.tokens.mint(client_id="ehr", scope="user/*.cruds", account_id=staff_account.id,
                                  context={"fhirUser": "Practitioner/dr1", "organization": "Organization/org1"})
    created = client.post("/auth/launch", json={"patient": "p1", "encounter": "e1"},
                          headers={"Authorization": f"Bearer {staff_token}"})
    assert created.status_code == 201
    launch = created.get_json()["launch"]
    assert created.get_json()["iss"] == "http://localhost/fhir"
    params, auth = authorize(client, app.client_id, "launch openid fhirUser user/Patient.rs patient/Patient.rs",
                             "drdoc", launch=launch)
    token = exchange(client, params["code"], auth, app.client_id, secret).get_json()
    assert token["patient"] == "p1" and token["encounter"] == "e1"
    assert token["need_patient_banner"] is False
    assert "launch" in token["scope"].split()
    access = ctx.tokens.authenticate(token["access_token"])
    assert access.organization == "Organization/org1" and access.fhir_user == "Practitioner/dr1"


def test_launch_needs_a_staff_or_backend_token(client, ctx):
    assert client.post("/auth/launch", json={"patient": "p1"}).status_code == 401
    patient_token = ctx.tokens.mint(client_id="app", scope="patient/*.rs", context={"patient": "p1"})
    response = client.post("/auth/launch", json={"patient": "p1"}, headers={"Authorization": f"Bearer {patient_token}"})
    assert response.status_code == 403


def test_unknown_launch_is_refused(client, confidential_app, staff_account):
    app, _ = confidential_app
    from tests.smart.flows import authorization_params

    auth = authorization_params(app.client_id, "launch openid", launch="not-a-launch")
    response = client.get("/auth/authorize", query_string=auth.params)
    assert response.status_code == 302 and "error=invalid_request" in response.headers["Location"]


def _basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_introspection_and_revocation(client, confidential_app, patient_account, ctx):
    app, secret = confidential_app
    params, auth = authorize(client, app.client_id, SCOPE, "ada")
    token = exchange(client, params["code"], auth, app.client_id, secret).get_json()
    info = client.post("/auth/introspect", data={"token": token["access_token"]}, headers=_basic(app.client_id, secret))
    assert info.status_code == 200
    body = info.get_json()
    assert body["active"] is True and body["client_id"] == app.client_id and body["patient"] == "p1"
    assert set(body["scope"].split()) == set(token["scope"].split())
    assert body["fhirUser"].endswith("/Patient/p1") and body["sub"] and body["exp"] > time.time()
    unknown = client.post("/auth/introspect", data={"token": "invalid_token_value"},
                          headers=_basic(app.client_id, secret))
    assert unknown.get_json() == {"active": False}
    revoked = client.post("/auth/revoke", data={"token": token["refresh_token"]}, headers=_basic(app.client_id, secret))
    assert revoked.status_code == 200
    assert ctx.tokens.authenticate(token["access_token"]) is None
    refresh = client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                          headers=_basic(app.client_id, secret))
    assert refresh.status_code in (400, 401)
    after = client.post("/auth/introspect", data={"token": token["access_token"]},
                        headers=_basic(app.client_id, secret))
    assert after.get_json() == {"active": False}


def test_dynamic_registration(client, smart):
    public = client.post("/auth/register", json={"client_name": "Browser app", "redirect_uris": [REDIRECT_URI],
                                                 "token_endpoint_auth_method": "none"})
    assert public.status_code == 201, public.get_json()
    assert "client_secret" not in public.get_json()
    confidential = client.post("/auth/register", json={"client_name": "Server app", "redirect_uris": [REDIRECT_URI]})
    body = confidential.get_json()
    assert confidential.status_code == 201 and body["client_secret"]
    stored = smart.clients.get(body["client_id"])
    assert stored.check_client_secret(body["client_secret"])
    assert stored.client_secret_hash != body["client_secret"]
    invalid = client.post("/auth/register", json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "x"})
    assert invalid.status_code == 400


@pytest.mark.parametrize(("body", "content_type"), [
    (b"\x00", "application/json"),  # not JSON
    (b'["client_name"]', "application/json"),  # JSON, not an object
    (b'{"redirect_uris": ["https://app.example/cb"], "jwks": {"no": "keys"}}', "application/json"),  # no keys
    (b'{"redirect_uris": ["https://app.example/cb"], "jwks": {"keys": [1]}}', "application/json"),
    (b'{"grant_types": false}', "application/json"),  # not an array
    (b'{"redirect_uris": ["https://app.example/cb"], "response_types": [1]}', "application/json"),
    (b'{"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": ["none"]}', "application/json"),
])
def test_malformed_registration_is_an_oauth_error_not_a_server_error(client, body, content_type):
    """Registration bodies the OpenAPI fuzz found answered with a 500 (a jwks without ``keys``) or a FHIR
    OperationOutcome (not JSON): RFC 7591 says 400 with ``{"error": "invalid_client_metadata", ...}``."""
    response = client.post("/auth/register", data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("send", [
    lambda client: client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "a\x00b"}),
    lambda client: client.post("/auth/revoke", data={"token": "x", "client_id": "a\x00b"}),
    lambda client: client.post("/auth/introspect", data={"token": "x", "client_id": "a\x00b"}),
])
def test_a_client_id_with_a_nul_is_an_unknown_client(client, send):
    """A client_id with a NUL (found by the OpenAPI fuzz; PostgreSQL refuses to compare one: it was a 500)
    names no client: the OAuth error invalid_client."""
    response = send(client)
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


def test_authorize_with_a_nul_in_the_client_id_is_an_error_page(client):
    response = client.get("/auth/authorize", query_string={"client_id": "a\x00b", "response_type": "code"})
    assert response.status_code == 400 and response.mimetype == "text/html"


def test_patient_revokes_an_app_from_the_apps_page(client, public_app, patient_account, ctx):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    token = exchange(client, params["code"], auth, public_app.client_id).get_json()
    page = client.get("/auth/apps")  # the session cookie from the sign-in is still there
    html = page.get_data(as_text=True)
    assert "Public App" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    response = client.post("/auth/apps/revoke", data={"csrf_token": hidden(html, "csrf_token"),
                                                      "client_id": public_app.client_id})
    assert "access revoked" in response.get_data(as_text=True)
    assert ctx.tokens.authenticate(token["access_token"]) is None
    assert re.search(r"No app has access", response.get_data(as_text=True))


def test_session_cookie_flags(client, public_app, patient_account):
    from tests.smart.flows import authorization_params, login

    response = login(client, authorization_params(public_app.client_id, SCOPE), "ada")
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_tokens_never_reach_the_log_even_at_debug_level(client, confidential_app, patient_account, caplog):
    import logging

    app, secret = confidential_app
    with caplog.at_level(logging.DEBUG):
        params, auth = authorize(client, app.client_id, SCOPE, "ada")
        token = exchange(client, params["code"], auth, app.client_id, secret).get_json()
    assert token["access_token"] not in caplog.text and token["refresh_token"] not in caplog.text
    assert params["code"] not in caplog.text


def test_patient_sees_who_looked_at_the_record(client, ctx, public_app, patient_account, staff_account):
    from tests.support import Fhir

    staff = Fhir(client, ctx.tokens.mint(client_id="ehr-desktop", scope="user/*.rs", account_id=staff_account.id,
                                         context={"fhirUser": "Practitioner/dr1", "organization": "Organization/org1"}))
    assert staff.get("Patient/p1").status_code == 200
    assert staff.get("Patient/p2").status_code == 404  # another organization's patient: not on ada's page
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")  # ada signs in (a session)
    token = exchange(client, params["code"], auth, public_app.client_id).get_json()["access_token"]
    assert Fhir(client, token).get("Patient/p1").status_code == 200
    page = client.get("/auth/access-log")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    rows = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", html)
    assert rows[0] == ("You, with Public App", "opened patient data", "allowed")  # newest first
    assert rows[1] == ("Doc, with ehr-desktop", "opened patient data", "allowed")
    assert len(rows) == 2


def test_access_log_page_needs_a_sign_in(client):
    page = client.get("/auth/access-log")
    assert page.status_code == 200 and 'name="username"' in page.get_data(as_text=True)
