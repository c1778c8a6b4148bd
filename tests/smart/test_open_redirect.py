"""No open redirect: an authorization request whose redirect_uri is not exactly one the client
registered is answered with an error page — never a redirect to that URI, not even an error redirect
(bad aud, bad PKCE, a denied consent, a tampered consent form). Variants tried: other host, same
host other path, an added query or fragment, userinfo tricks, case, trailing slash, default port,
scheme, encodings, backslashes and protocol-relative URIs."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.smart.flows import PASSWORD, REDIRECT_URI, authorization_params, form_action, hidden, login

SCOPE = "launch/patient openid fhirUser patient/Patient.rs"
EVIL = [
    "https://evil.example/callback",
    "https://app.example/other",
    "https://app.example/callback/extra",
    "https://app.example/callback?next=https://evil.example",
    "https://app.example/callback#https://evil.example",
    "https://app.example@evil.example/callback",
    "https://app.example:443@evil.example/callback",
    "https://evil.example@app.example/callback",
    "https://evil.example\\@app.example/callback",
    "https://app.example.evil.example/callback",
    "https://evil.example/https://app.example/callback",
    "HTTPS://APP.EXAMPLE/CALLBACK",
    "https://app.example/Callback",
    "https://APP.example/callback",
    "https://app.example/callback/",
    "https://app.example:443/callback",
    "https://app.example/callback/../callback",
    "https://app.example/%63allback",
    "http://app.example/callback",
    "//evil.example/callback",
    "https:\\\\evil.example/callback",
    "javascript:alert(1)//https://app.example/callback",
    "https://app.example/callback ",
    " https://app.example/callback",
    "https://app.example/callback%00",
    "",
]
# Parameters that would make the server answer with an error redirect (or the code) once the
# redirect_uri is trusted: none may send the browser to an unregistered one.
ERRORS = {
    "none": {},
    "bad_aud": {"aud": "https://evil.example/fhir"},
    "no_pkce": {"code_challenge": None, "code_challenge_method": None},
    "bad_scope": {"scope": "nonsense/*.*"},
    "bad_response_type": {"response_type": "token"},
    "unknown_launch": {"launch": "no-such-launch"},
}


def _assert_not_redirected(response, evil: str) -> None:
    if not evil and "Location" in response.headers:  # none given: the one registered URI is the default
        assert response.headers["Location"].startswith(REDIRECT_URI + "?")
        return
    if not evil:
        assert response.status_code == 200 and 'name="password"' in response.get_data(as_text=True)
        return
    assert response.status_code == 400, (response.status_code, response.headers.get("Location"))
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    if evil.strip():  # the error page shows no link to it
        assert f'href="{evil}' not in body and f'action="{evil}' not in body
        assert "http-equiv" not in body.lower()  # no meta refresh either


@pytest.mark.parametrize("evil", EVIL)
@pytest.mark.parametrize("error", sorted(ERRORS))
def test_unregistered_redirect_uri_is_never_followed(client, public_app, evil, error):
    params = {**authorization_params(public_app.client_id, SCOPE).params, **ERRORS[error], "redirect_uri": evil}
    params = {k: v for k, v in params.items() if v is not None}
    _assert_not_redirected(client.get("/auth/authorize", query_string=params), evil)
    _assert_not_redirected(client.post("/auth/authorize", data=params), evil)


@pytest.mark.parametrize("evil", ["https://evil.example/callback", "https://app.example/callback?x=1",
                                  "https://app.example@evil.example/callback", "https://app.example/callback/"])
@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_tampered_consent_form_is_not_followed(client, public_app, patient_account, evil, decision):
    """A signed-in person's consent form posted back with another redirect_uri in its query string."""
    auth = authorization_params(public_app.client_id, SCOPE)
    page = login(client, auth, "ada")
    html = page.get_data(as_text=True)
    action = form_action(html).replace(urlencode({"redirect_uri": REDIRECT_URI}), urlencode({"redirect_uri": evil}))
    assert urlencode({"redirect_uri": evil}) in action
    scopes = re.findall(r'name="scope" value="([^"]*)" checked', html)
    response = client.post(action, data={"csrf_token": hidden(html, "csrf_token"), "step": "consent",
                                         "decision": decision, "scope": scopes})
    _assert_not_redirected(response, evil)
    login_form = client.application.test_client().get("/auth/authorize", query_string={**auth.params,
                                                                                       "redirect_uri": evil})
    _assert_not_redirected(login_form, evil)


def test_missing_redirect_uri_with_several_registered_is_refused(client, smart):
    app, _ = smart.clients.register({"client_name": "Two", "redirect_uris": [REDIRECT_URI, "https://b.example/cb"],
                                     "token_endpoint_auth_method": "none"})
    params = {k: v for k, v in authorization_params(app.client_id, SCOPE).params.items() if k != "redirect_uri"}
    response = client.get("/auth/authorize", query_string=params)
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_registered_uri_still_works(client, public_app, patient_account):
    """(Control: the exact registered redirect_uri is followed.)"""
    auth = authorization_params(public_app.client_id, SCOPE)
    page = login(client, auth, "ada", PASSWORD)
    html = page.get_data(as_text=True)
    response = client.post(form_action(html), data={"csrf_token": hidden(html, "csrf_token"), "step": "consent",
                                                    "decision": "allow",
                                                    "scope": re.findall(r'name="scope" value="([^"]*)" checked', html)})
    assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT_URI + "?")


def test_token_exchange_with_another_redirect_uri_is_refused(client, public_app, patient_account):
    """A code issued for the registered URI is not exchanged with any variant of it (400, never 500)."""
    from tests.smart.flows import authorize, exchange

    params, auth = authorize(client, public_app.client_id, SCOPE, "ada")
    for evil in EVIL:
        if evil:
            refused = exchange(client, params["code"], auth, public_app.client_id, redirect_uri=evil)
            assert refused.status_code == 400, (evil, refused.get_data(as_text=True))
            assert refused.get_json()["error"] == "invalid_grant"
