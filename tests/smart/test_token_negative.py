"""The negative cases certification testers try at the authorize and token endpoints."""

from __future__ import annotations

import pytest

from tests.smart.flows import (
    BASE_URL,
    REDIRECT_URI,
    authorization_params,
    authorize,
    exchange,
    login,
)

SCOPE = "launch/patient openid fhirUser patient/Patient.rs"


def test_wrong_aud_gets_no_code(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE, aud="https://inferno.healthit.gov/invalid_aud")
    response = client.get("/auth/authorize", query_string=auth.params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "error=invalid_request" in location and "code=" not in location
    assert f"state={auth.params['state']}" in location


@pytest.mark.parametrize("change", [
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": REDIRECT_URI + "/extra"},
    {"client_id": "no-such-client"},
])
def test_unknown_client_or_redirect_shows_error_page_not_redirect(client, public_app, change):
    auth = authorization_params(public_app.client_id, SCOPE)
    response = client.get("/auth/authorize", query_string={**auth.params, **change})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("change", [{"code_challenge": None, "code_challenge_method": None},
                                    {"code_challenge_method": "plain"}, {"code_challenge_method": None}])
def test_pkce_s256_is_required(client, public_app, change):
    auth = authorization_params(public_app.client_id, SCOPE, **change)
    auth.params = {k: v for k, v in auth.params.items() if v is not None}
    response = client.get("/auth/authorize", query_string=auth.params)
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


def test_authorize_accepts_post(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    response = client.post("/auth/authorize", data=auth.params)
    assert response.status_code == 200
    assert 'name="username"' in response.get_data(as_text=True)


@pytest.mark.parametrize("verifier", ["", None, "wrong-verifier-" + "x" * 43, "challenge"])
def test_bad_code_verifier_is_refused(client, confidential_app, patient_account, verifier):
    app, secret = confidential_app
    params, auth = authorize(client, app.client_id, SCOPE, "ada")
    if verifier == "challenge":
        verifier = auth.params["code_challenge"]
    response = exchange(client, params["code"], auth, app.client_id, secret, code_verifier=verifier)
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] in ("invalid_request", "invalid_grant")


def test_a_code_is_good_for_one_attempt_even_a_failed_one(client, public_app, patient_account):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    wrong = exchange(client, params["code"], auth, public_app.client_id, code_verifier="wrong-verifier-" + "x" * 43)
    assert wrong.status_code == 400
    assert exchange(client, params["code"], auth, public_app.client_id).status_code == 400  # used up


def test_bad_code_and_bad_client_are_refused(client, confidential_app, patient_account):
    app, secret = confidential_app
    params, auth = authorize(client, app.client_id, SCOPE, "ada")
    assert exchange(client, "BAD_CODE", auth, app.client_id, secret).status_code in (400, 401)
    bad_client = exchange(client, params["code"], auth, "BAD_CLIENT_ID", "secret")
    assert bad_client.status_code == 401
    assert exchange(client, params["code"], auth, app.client_id, "wrong-secret").status_code == 401


def test_wrong_redirect_uri_at_token_endpoint(client, public_app, patient_account):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    response = exchange(client, params["code"], auth, public_app.client_id, redirect_uri="https://app.example/other")
    assert response.status_code == 400


def test_reused_code_is_refused_and_revokes_its_tokens(client, public_app, patient_account, ctx):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    first = exchange(client, params["code"], auth, public_app.client_id)
    assert first.status_code == 200
    access = first.get_json()["access_token"]
    assert ctx.tokens.authenticate(access) is not None
    again = exchange(client, params["code"], auth, public_app.client_id)
    assert again.status_code == 400
    assert ctx.tokens.authenticate(access) is None


def test_unsupported_grant_type_is_400(client, public_app):
    response = client.post("/auth/token", data={"grant_type": "not_a_grant_type", "client_id": public_app.client_id})
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_random_refresh_token_is_refused(client, confidential_app):
    app, secret = confidential_app
    import base64

    basic = "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    response = client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": "random"},
                           headers={"Authorization": basic})
    assert response.status_code in (400, 401)


def test_login_locks_after_five_failures(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    for _ in range(5):
        assert login(client, auth, "ada", "wrong").status_code == 401
    locked = login(client, auth, "ada")  # the right password no longer helps
    assert locked.status_code == 401


def test_login_form_needs_its_csrf_token(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    client.get("/auth/authorize", query_string=auth.params)
    from urllib.parse import urlencode

    response = client.post("/auth/authorize?" + urlencode(auth.params),
                           data={"step": "login", "username": "ada", "password": "x", "csrf_token": "forged"})
    assert response.status_code == 400


def test_password_is_stored_hashed(smart, patient_account):
    from sqlalchemy import select

    from fhirportal.store.auth_schema import account

    with smart.database.read() as conn:
        stored = conn.execute(select(account.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")


def test_discovery_is_complete_and_absolute(client):
    response = client.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    config = response.get_json()
    for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "introspection_endpoint",
                "revocation_endpoint", "jwks_uri", "management_endpoint"):
        assert config[key].startswith("http://localhost/"), key
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"RS384", "ES384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    assert {"authorization_code", "client_credentials"} <= set(config["grant_types_supported"])
    required = {"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
                "client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient",
                "permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2",
                "sso-openid-connect", "authorize-post", "context-banner", "context-style", "context-ehr-encounter"}
    assert required <= set(config["capabilities"])
    assert config["issuer"] == BASE_URL
    openid = client.get("/fhir/.well-known/openid-configuration").get_json()
    assert "RS256" in openid["id_token_signing_alg_values_supported"]
    assert openid["subject_types_supported"]
    keys = client.get(openid["jwks_uri"].removeprefix("http://localhost")).get_json()["keys"]
    assert any(k["kty"] == "RSA" for k in keys)
    assert all("d" not in k for k in keys)


def test_smart_style_answers_json(client):
    response = client.get("/auth/smart-style.json")
    assert response.status_code == 200 and response.is_json


def test_capability_statement_oauth_uris_equal_the_discovery_document(client):
    config = client.get("/fhir/.well-known/smart-configuration").get_json()
    security = client.get("/fhir/metadata").get_json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    (oauth,) = [e for e in security["extension"] if e["url"].endswith("/oauth-uris")]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris == {"authorize": config["authorization_endpoint"], "token": config["token_endpoint"],
                    "register": config["registration_endpoint"], "introspect": config["introspection_endpoint"],
                    "revoke": config["revocation_endpoint"], "manage": config["management_endpoint"]}
