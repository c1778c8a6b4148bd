"""Browser-facing hardening: every HTML page of the authorization server and the portal (login,
consent, error, connected apps, access log, registration) forbids framing (CSP ``frame-ancestors
'none'`` and X-Frame-Options), sniffing, referrers and caching; token responses (success and error)
are ``Cache-Control: no-store`` + ``Pragma: no-cache``; the session and CSRF cookies are HttpOnly and
SameSite, and Secure when the server's base URL is https — also when TLS ends at a proxy in front of
it (the request the app sees is plain http)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from fhirportal.app import create_app
from fhirportal.portal.pages import CSRF_COOKIE as PORTAL_CSRF_COOKIE
from fhirportal.smart.routes import CSRF_COOKIE, SESSION_COOKIE
from tests.smart.flows import authorization_params, authorize, exchange, form_action, hidden, login
from tests.support import Fhir

SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs"
HTTPS_BASE = "https://portal.example/fhir"


def _assert_html_hardened(response, what: str) -> None:
    headers = response.headers
    assert response.mimetype == "text/html", what
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, f"{what}: CSP {csp!r}"
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "no-referrer", what
    assert "no-store" in headers.get("Cache-Control", ""), what


def _cookie(response, name: str) -> str:
    """The Set-Cookie header for ``name`` (attributes lower-cased)."""
    found = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set: {response.headers.getlist('Set-Cookie')}"
    return found[-1].lower()


def _assert_cookie_hardened(response, name: str, *, secure: bool) -> None:
    cookie = _cookie(response, name)
    attributes = {a.strip().split("=")[0] for a in cookie.split(";")[1:]}
    assert "httponly" in attributes, cookie
    assert re.search(r"samesite=(lax|strict)", cookie), cookie
    assert ("secure" in attributes) is secure, cookie


def _assert_token_response_uncached(response, what: str) -> None:
    assert response.headers.get("Cache-Control") == "no-store", what
    assert response.headers.get("Pragma") == "no-cache", what


@pytest.fixture
def invitation(fhir, ctx):
    """A patient invited to the portal: the registration link token."""
    fhir.put("Patient/inv", {"resourceType": "Patient", "id": "inv", "birthDate": "1980-04-02",
                             "telecom": [{"system": "email", "value": "inv@example.org"}]})
    assert fhir.post("Patient/inv/$portal-invite").status_code == 200
    from tests.portal.conftest import link_token

    return link_token(ctx, "inv@example.org")


def test_authorization_pages_are_hardened(client, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    page = client.get("/auth/authorize?" + urlencode(auth.params))
    _assert_html_hardened(page, "login page")
    _assert_cookie_hardened(page, CSRF_COOKIE, secure=False)
    html = page.get_data(as_text=True)
    wrong = client.post(form_action(html), data={"csrf_token": hidden(html, "csrf_token"), "step": "login",
                                                 "username": "ada", "password": "wrong password"})
    assert wrong.status_code == 401
    _assert_html_hardened(wrong, "failed sign-in page")
    consent = login(client, auth, "ada")
    assert 'name="step" value="consent"' in consent.get_data(as_text=True)
    _assert_html_hardened(consent, "consent page")
    _assert_cookie_hardened(consent, SESSION_COOKIE, secure=False)
    error = client.get("/auth/authorize", query_string={**auth.params, "client_id": "nobody"})
    assert error.status_code == 400
    _assert_html_hardened(error, "error page")
    for path in ("/auth/apps", "/auth/access-log"):
        signed_in = client.get(path)
        assert signed_in.status_code == 200 and "ada" in signed_in.get_data(as_text=True), path
        _assert_html_hardened(signed_in, path)
        anonymous = client.application.test_client().get(path)  # no session: the sign-in form
        assert 'name="password"' in anonymous.get_data(as_text=True)
        _assert_html_hardened(anonymous, f"{path} sign-in")


def test_registration_pages_are_hardened(client, invitation):
    page = client.get(f"/portal/register?t={invitation}")
    assert page.status_code == 200
    _assert_html_hardened(page, "registration form")
    _assert_cookie_hardened(page, PORTAL_CSRF_COOKIE, secure=False)
    code_step = client.get(f"/portal/register?t={invitation}&step=code")
    _assert_html_hardened(code_step, "security code form")
    wrong = client.post(f"/portal/register?t={invitation}", data={
        "csrf_token": hidden(page.get_data(as_text=True), "csrf_token"), "birth_date": "1980-04-02",
        "pin": "WRONG-PIN", "username": "newbie", "password": "a long enough passphrase",
        "password_again": "a long enough passphrase"})
    assert wrong.status_code == 400
    _assert_html_hardened(wrong, "wrong PIN page")
    _assert_html_hardened(client.get("/portal/register?t=no-such-link"), "expired link page")


def test_token_responses_are_never_cached(client, public_app, confidential_app, patient_account):
    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    issued = exchange(client, params["code"], auth, public_app.client_id)
    assert issued.status_code == 200
    _assert_token_response_uncached(issued, "authorization_code")
    refreshed = client.post("/auth/token", data={"grant_type": "refresh_token", "client_id": public_app.client_id,
                                                 "refresh_token": issued.get_json()["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    _assert_token_response_uncached(refreshed, "refresh_token")
    replayed = exchange(client, params["code"], auth, public_app.client_id)
    assert replayed.status_code == 400
    _assert_token_response_uncached(replayed, "error")
    app, secret = confidential_app
    unsupported = client.post("/auth/token", data={"grant_type": "password", "username": "ada", "password": "x"},
                              auth=(app.client_id, secret))
    assert unsupported.status_code in (400, 401)
    _assert_token_response_uncached(unsupported, "unsupported grant")


@pytest.fixture
def https_app(settings, app):
    """The same server, configured with an https base URL (TLS ends at a proxy: requests arrive as http)."""
    behind_proxy = create_app(settings.with_overrides(base_url=HTTPS_BASE), create_schema=False)
    yield behind_proxy
    behind_proxy.extensions["fhirportal"].audit.flush()
    behind_proxy.extensions["fhirportal"].database.dispose()


def test_cookies_are_secure_when_the_base_url_is_https(https_app, public_app, patient_account, invitation):
    client = https_app.test_client()
    auth = authorization_params(public_app.client_id, SCOPE, aud=HTTPS_BASE)
    page = client.get("/auth/authorize?" + urlencode(auth.params))
    assert page.status_code == 200, page.get_data(as_text=True)
    _assert_cookie_hardened(page, CSRF_COOKIE, secure=True)
    html = page.get_data(as_text=True)
    csrf = hidden(html, "csrf_token")
    signed_in = client.post(form_action(html).replace("https://portal.example", ""),
                            headers={"Cookie": f"{CSRF_COOKIE}={csrf}"},
                            data={"csrf_token": csrf, "step": "login", "username": "ada",
                                  "password": "correct horse battery staple"})
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)
    _assert_cookie_hardened(signed_in, SESSION_COOKIE, secure=True)
    registration = client.get(f"/portal/register?t={invitation}")
    assert registration.status_code == 200
    _assert_cookie_hardened(registration, PORTAL_CSRF_COOKIE, secure=True)


def test_the_fhir_api_answers_json_not_html(fhir: Fhir):
    """(The API's answers are data for apps, not pages: no HTML error page to frame.)"""
    response = fhir.get("Patient/nobody")
    assert response.status_code == 404 and response.mimetype == "application/fhir+json"
