"""Standalone patient launch through the login and consent pages, token exchange and refresh."""

from __future__ import annotations

import base64

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.smart.flows import BASE_URL, authorization_params, authorize, consent, exchange, login

SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs"


def test_standalone_launch_issues_patient_token_and_id_token(client, public_app, patient_account):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    assert params["state"] == auth.params["state"]
    response = exchange(client, params["code"], auth, public_app.client_id)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    token = response.get_json()
    assert token["token_type"] == "Bearer"
    assert token["patient"] == "p1"
    assert isinstance(token["expires_in"], int)
    assert token["need_patient_banner"] is True
    assert token["smart_style_url"].startswith("http://localhost/")
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refresh_token"]
    jwks = KeySet.import_key_set(client.get("/auth/jwks").get_json())
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["RS256"])
    assert id_token.header["kid"]
    assert id_token.claims["iss"] == BASE_URL
    assert id_token.claims["aud"] == public_app.client_id
    assert id_token.claims["fhirUser"] == f"{BASE_URL}/Patient/p1"
    issuer_config = client.get("/fhir/.well-known/openid-configuration").get_json()
    assert issuer_config["issuer"] == id_token.claims["iss"]


def test_unticked_type_is_not_granted(client, public_app, patient_account):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada",
                             scopes=["launch/patient", "openid", "patient/Patient.rs"])
    token = exchange(client, params["code"], auth, public_app.client_id).get_json()
    assert "patient/Observation.rs" not in token["scope"].split()
    assert "patient/Patient.rs" in token["scope"].split()


def test_granular_category_scope_can_replace_whole_type(client, public_app, patient_account):
    lab = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    page = login(client, authorization_params(public_app.client_id, SCOPE), "ada")
    assert lab in page.get_data(as_text=True)
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada", scopes=["launch/patient", lab])
    token = exchange(client, params["code"], auth, public_app.client_id).get_json()
    assert token["scope"].split() == [lab, "launch/patient"]


def test_deny_redirects_with_access_denied(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    response = consent(client, login(client, auth, "ada"), decision="deny")
    assert response.status_code == 302
    assert "error=access_denied" in response.headers["Location"]
    assert f"state={auth.params['state']}" in response.headers["Location"]


def test_refresh_rotates_and_never_widens(client, confidential_app, patient_account):
    app, secret = confidential_app
    params, auth = authorize(client, app.client_id, SCOPE, "ada")
    first = exchange(client, params["code"], auth, app.client_id, secret).get_json()
    basic = {"Authorization": _basic(app.client_id, secret)}
    refreshed = client.post("/auth/token", data={"grant_type": "refresh_token",
                                                 "refresh_token": first["refresh_token"]}, headers=basic)
    assert refreshed.status_code == 200, refreshed.get_json()
    second = refreshed.get_json()
    assert set(second["scope"].split()) == set(first["scope"].split())
    assert second["patient"] == "p1"
    narrowed = client.post("/auth/token", headers=basic, data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"],
        "scope": "patient/Patient.rs launch/patient offline_access"})
    assert narrowed.status_code == 200
    assert narrowed.get_json()["scope"] == "patient/Patient.rs launch/patient offline_access"
    widened = client.post("/auth/token", data={"grant_type": "refresh_token",
                                               "refresh_token": narrowed.get_json()["refresh_token"],
                                               "scope": "patient/*.cruds"}, headers=basic)
    assert widened.status_code == 400
    replay = client.post("/auth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": first["refresh_token"]}, headers=basic)
    assert replay.status_code == 400


def _basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
