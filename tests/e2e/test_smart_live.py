"""SMART App Launch against the live server over HTTP, as a third-party app and a person drive it:
login and consent pages, token exchange, refresh, revocation, introspection, backend services,
and the unmodified ``fhirclient`` and ``fhirpy`` packages."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from fhirclient import client as smart_client
from fhirpy import SyncFHIRClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.e2e.conftest import BIN, ROOT

PUBLIC_APP = "demo-public-app"
CONFIDENTIAL_APP = ("demo-confidential-app", "demo-confidential-secret")
REDIRECT_URI = "http://127.0.0.1:9000/callback"
MARIA = ("maria", "demo-patient-pass", "patient-001")
STANDALONE_SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs " \
                   "patient/Condition.rs"


@pytest.fixture(scope="module")
def live(live_server):
    command = [str(BIN / "fhirportal"), "accounts", "load", str(ROOT / "fixtures" / "demo-accounts.json")]
    loaded = subprocess.run(command, env={"FHIRPORTAL_DATABASE_URL": live_server["database_url"], "PATH": str(BIN)},
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    origin = live_server["base_url"].removesuffix("/fhir")
    return {**live_server, "origin": origin}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _form(html: str) -> tuple[str, str]:
    action = re.search(r'<form method="post" action="([^"]*)"', html).group(1).replace("&amp;", "&")
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', html).group(1)
    return action, csrf


def _sign_in_and_consent(session: requests.Session, authorize_url: str, user: tuple, *, untick: tuple[str, ...] = (),
                         method: str = "GET", data: dict | None = None) -> requests.Response:
    """Drive the login and consent pages like a person; returns the redirect back to the app."""
    if method == "GET":
        page = session.get(authorize_url, allow_redirects=False, timeout=30)
    else:
        page = session.post(authorize_url, data=data, allow_redirects=False, timeout=30)
    if page.status_code == 302:
        return page
    assert page.status_code == 200, page.text
    action, csrf = _form(page.text)
    consent = session.post(action, data={"csrf_token": csrf, "step": "login", "username": user[0],
                                         "password": user[1]}, allow_redirects=False, timeout=30)
    assert consent.status_code == 200, consent.text
    action, csrf = _form(consent.text)
    ticked = [s for s in re.findall(r'name="scope" value="([^"]*)" checked', consent.text.replace("&amp;", "&"))
              if s not in untick]
    return session.post(action, data={"csrf_token": csrf, "step": "consent", "decision": "allow", "scope": ticked},
                        allow_redirects=False, timeout=30)


def _authorize_url(live, client_id: str, scope: str, challenge: str, state: str, **extra) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": scope,
              "state": state, "aud": live["base_url"], "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(extra)
    return f"{live['origin']}/auth/authorize?" + urlencode(params)


def _callback(response: requests.Response) -> dict:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _token(live, data: dict, auth: tuple | None = None) -> requests.Response:
    return requests.post(f"{live['origin']}/auth/token", data=data, auth=auth, timeout=30)


def _launch(live, client_id=PUBLIC_APP, scope=STANDALONE_SCOPE, untick=(), user=MARIA, **extra):
    verifier, challenge = _pkce()
    state = str(uuid.uuid4())
    callback = _callback(_sign_in_and_consent(requests.Session(), _authorize_url(
        live, client_id, scope, challenge, state, **extra), user, untick=untick))
    assert callback["state"] == state
    return callback["code"], verifier


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}


def test_standalone_launch_with_an_unticked_type(live):
    code, verifier = _launch(live, untick=("patient/Condition.rs",))
    response = _token(live, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                             "code_verifier": verifier, "client_id": PUBLIC_APP})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json()
    assert token["patient"] == "patient-001" and isinstance(token["expires_in"], int) and token["id_token"]
    base = live["base_url"]
    assert requests.get(f"{base}/Patient/patient-001", headers=_bearer(token["access_token"]), timeout=30).ok
    observations = requests.get(f"{base}/Observation", params={"patient": "patient-001"},
                                headers=_bearer(token["access_token"]), timeout=30)
    assert observations.status_code == 200
    subjects = {e["resource"]["subject"]["reference"] for e in observations.json().get("entry", [])}
    assert subjects <= {"Patient/patient-001"}
    unticked = requests.get(f"{base}/Condition", params={"patient": "patient-001"},
                            headers=_bearer(token["access_token"]), timeout=30)
    assert unticked.status_code == 403
    assert unticked.json()["resourceType"] == "OperationOutcome"
    other = requests.get(f"{base}/Patient/patient-003", headers=_bearer(token["access_token"]), timeout=30)
    assert other.status_code in (403, 404)
    fhir_user = jwt.decode(token["id_token"], _server_keys(live)).claims["fhirUser"]
    assert requests.get(fhir_user, headers=_bearer(token["access_token"]), timeout=30).status_code == 200


def _server_keys(live):
    from joserfc.jwk import KeySet

    config = requests.get(f"{live['base_url']}/.well-known/openid-configuration", timeout=30).json()
    return KeySet.import_key_set(requests.get(config["jwks_uri"], timeout=30).json())


def test_no_token_is_401_and_discovery_is_open(live):
    base = live["base_url"]
    anonymous = requests.get(f"{base}/Patient/patient-001", headers={"Authorization": ""}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    config = requests.get(f"{base}/.well-known/smart-configuration", headers={"Origin": "https://app.example"},
                          timeout=30)
    assert config.status_code == 200 and config.headers["Content-Type"].startswith("application/json")
    assert config.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")
    assert config.json()["token_endpoint"] == f"{live['origin']}/auth/token"
    metadata = requests.get(f"{base}/metadata", headers={"Authorization": ""}, timeout=30)
    assert metadata.status_code == 200


@pytest.mark.parametrize("case", ["bad_aud", "missing_state_kept", "pkce_mismatch", "reused_code", "wrong_redirect"])
def test_negative_cases(live, case):
    if case == "bad_aud":
        verifier, challenge = _pkce()
        response = requests.get(_authorize_url(live, PUBLIC_APP, STANDALONE_SCOPE, challenge, "s1",
                                               aud="https://inferno.healthit.gov/invalid_aud"),
                                allow_redirects=False, timeout=30)
        assert response.status_code == 302 and "code=" not in response.headers["Location"]
        assert "error=" in response.headers["Location"]
        return
    if case == "missing_state_kept":
        verifier, challenge = _pkce()
        url = _authorize_url(live, PUBLIC_APP, STANDALONE_SCOPE, challenge, "").replace("state=&", "")
        callback = _callback(_sign_in_and_consent(requests.Session(), url, MARIA))
        assert "state" not in callback and callback["code"]
        return
    code, verifier = _launch(live)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier, "client_id": PUBLIC_APP}
    if case == "pkce_mismatch":
        assert _token(live, {**exchange, "code_verifier": _pkce()[0]}).status_code == 400
    elif case == "wrong_redirect":
        assert _token(live, {**exchange, "redirect_uri": "http://127.0.0.1:9000/other"}).status_code == 400
    else:
        first = _token(live, exchange)
        assert first.status_code == 200
        assert _token(live, exchange).status_code == 400
        after = requests.get(f"{live['base_url']}/Patient/patient-001", headers=_bearer(first.json()["access_token"]),
                             timeout=30)
        assert after.status_code == 401  # the replayed code revoked what it had issued


def test_refresh_introspect_revoke(live):
    code, verifier = _launch(live, client_id=CONFIDENTIAL_APP[0])
    token = _token(live, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                          "code_verifier": verifier}, auth=CONFIDENTIAL_APP).json()
    refreshed = _token(live, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                       auth=CONFIDENTIAL_APP)
    assert refreshed.status_code == 200
    new = refreshed.json()
    with_scope = _token(live, {"grant_type": "refresh_token", "refresh_token": new["refresh_token"],
                               "scope": new["scope"]}, auth=CONFIDENTIAL_APP)
    assert with_scope.status_code == 200
    latest = with_scope.json()
    info = requests.post(f"{live['origin']}/auth/introspect", data={"token": latest["access_token"]},
                         auth=CONFIDENTIAL_APP, headers={"Accept": "application/json"}, timeout=30).json()
    assert info["active"] is True and info["patient"] == "patient-001"
    assert requests.post(f"{live['origin']}/auth/revoke", data={"token": latest["access_token"]},
                         auth=CONFIDENTIAL_APP, timeout=30).status_code == 200
    read = requests.get(f"{live['base_url']}/Patient/patient-001", headers=_bearer(latest["access_token"]),
                        timeout=30)
    assert read.status_code == 401
    assert _token(live, {"grant_type": "refresh_token", "refresh_token": latest["refresh_token"]},
                  auth=CONFIDENTIAL_APP).status_code in (400, 401)


def test_backend_services_token_and_search(live):
    key = RSAKey.import_key(json.loads(Path(ROOT / "fixtures" / "demo-backend-private-jwk.json").read_text()))
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"},
                           {"iss": "demo-ehr-backend", "sub": "demo-ehr-backend", "aud": f"{live['origin']}/auth/token",
                            "exp": now + 240, "jti": str(uuid.uuid4())}, key, algorithms=["RS384"])
    response = _token(live, {"grant_type": "client_credentials", "scope": "system/*.rs",
                             "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                             "client_assertion": assertion})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    patients = requests.get(f"{live['base_url']}/Patient", params={"_summary": "count"}, headers=_bearer(token),
                            timeout=30)
    assert patients.status_code == 200 and patients.json()["total"] >= 28


def test_fhirclient_completes_a_standalone_launch(live):
    settings = {"app_id": PUBLIC_APP, "api_base": live["base_url"], "redirect_uri": REDIRECT_URI,
                "scope": "launch/patient openid fhirUser patient/*.rs"}
    app = smart_client.FHIRClient(settings=settings)
    authorize_url = app.authorize_url
    assert authorize_url.startswith(f"{live['origin']}/auth/authorize")
    redirect = _sign_in_and_consent(requests.Session(), authorize_url, MARIA)
    assert redirect.status_code == 302
    app.handle_callback(redirect.headers["Location"])
    assert app.ready and app.patient_id == "patient-001"
    assert app.patient.name[0].family
    fhir = SyncFHIRClient(live["base_url"], authorization=f"Bearer {app.server.auth.access_token}")
    observations = fhir.resources("Observation").search(patient="patient-001").limit(100).fetch()
    assert observations
    assert all(o["subject"]["reference"] == "Patient/patient-001" for o in observations)
