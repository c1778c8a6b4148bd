"""Helpers that drive the authorization server the way an app and a person would (test client)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

BASE_URL = "http://localhost/fhir"
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "correct horse battery staple"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} in page"
    return match.group(1)


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]*)"', html)
    assert match
    return match.group(1).replace("&amp;", "&")


@dataclass
class Authorization:
    params: dict
    verifier: str


def authorization_params(client_id: str, scope: str, **extra) -> Authorization:
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": scope,
              "state": secrets.token_hex(8), "aud": BASE_URL, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)
    return Authorization({k: v for k, v in params.items() if v is not None}, verifier)


def login(client, auth: Authorization, username: str, password: str = PASSWORD):
    """GET the authorize URL and sign in; returns the consent page response."""
    page = client.get("/auth/authorize?" + urlencode(auth.params))
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    if 'name="step" value="consent"' in html:
        return page  # already signed in
    return client.post(form_action(html), data={"csrf_token": hidden(html, "csrf_token"), "step": "login",
                                                "username": username, "password": password})


def consent(client, consent_page, *, scopes: list[str] | None = None, decision: str = "allow", **fields):
    html = consent_page.get_data(as_text=True)
    ticked = scopes if scopes is not None else re.findall(r'name="scope" value="([^"]*)" checked', html)
    data = {"csrf_token": hidden(html, "csrf_token"), "step": "consent", "decision": decision, "scope": ticked}
    data.update(fields)
    return client.post(form_action(html), data=data)


def redirect_params(response) -> dict:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(client, client_id: str, scope: str, username: str, *, scopes=None, **extra) -> tuple[dict, Authorization]:
    auth = authorization_params(client_id, scope, **extra)
    page = login(client, auth, username)
    assert page.status_code == 200, page.get_data(as_text=True)
    return redirect_params(consent(client, page, scopes=scopes)), auth


def exchange(client, code: str, auth: Authorization, client_id: str, secret: str | None = None, **overrides):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": auth.verifier}
    headers = {}
    if secret:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    else:
        data["client_id"] = client_id
    data.update(overrides)
    return client.post("/auth/token", data={k: v for k, v in data.items() if v is not None}, headers=headers)
