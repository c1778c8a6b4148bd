"""The account page (change the password, the signed-in browsers, signing one or all others out) and
signing out: ending a session ends the grants issued in it (the portal's), not offline_access ones."""

from __future__ import annotations

import re

import pytest

from tests.web.flows import PASSWORD, form, sign_in, text
from tests.web.practice import build_practice

NEW_PASSWORD = "a brand new passphrase"
CHANGE = {"new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}


@pytest.fixture
def patients(ctx, app) -> dict:
    """The portal tests' practice (tests/web/practice.py): Maria (p1) and James (p2), maria and linda."""
    return build_practice(ctx, app)


def _fields(html: str, action: str) -> dict:
    start = html.index(f'action="{action}"')
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', html[start:html.index("</form>", start)]))


def _portal_token(app, client) -> str:
    from fhirportal.web.sessions import COOKIE

    return app.extensions["web"].sessions.load(client.get_cookie(COOKIE).value).content["access_token"]


def test_changing_the_password_signs_out_the_other_browsers(app, ctx, fhir, patients):
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, "maria", user_agent="Mozilla/5.0 (iPhone) Safari/604.1")
    sign_in(laptop, "maria", user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0")
    offline = ctx.tokens.mint(client_id="an-app", scope="patient/*.rs offline_access",
                              account_id=patients["maria"].id, context={"patient": "p1"})
    page = laptop.get("/auth/account")
    shown = text(page)
    assert "Safari on iPhone" in shown and "Chrome on Linux (this browser)" in shown
    html = page.get_data(as_text=True)
    fields = _fields(html, "/auth/account/password")
    wrong = laptop.post("/auth/account/password", data={**fields, "current_password": "nope", **CHANGE})
    assert wrong.status_code == 400 and "current password is not right" in text(wrong)
    weak = laptop.post("/auth/account/password", data={**fields, "current_password": PASSWORD,
                                                        "new_password": "password", "new_password_again": "password"})
    assert weak.status_code == 400 and "too common" in text(weak)
    done = laptop.post("/auth/account/password", data={**fields, "current_password": PASSWORD, **CHANGE})
    assert done.status_code == 200 and "Your password was changed" in text(done)
    assert "Safari on iPhone" not in text(laptop.get("/auth/account"))
    assert phone.get("/portal/").headers["Location"] == "/?state=ended"  # its grant ended with its session
    assert laptop.get("/portal/").status_code == 200
    assert fhir.with_token(offline).get("Patient/p1").status_code == 200  # offline_access outlives sign-ins
    fresh = app.test_client()
    assert sign_in(fresh, "maria", NEW_PASSWORD).request.path == "/portal/"


def test_signing_out_another_browser(app, patients):
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, "maria", user_agent="Mozilla/5.0 (Android 14) Chrome/130.0 Mobile")
    sign_in(laptop, "maria")
    html = laptop.get("/auth/account").get_data(as_text=True)
    rows = re.findall(r'<tr><td>([^<]+)(?:<strong>[^<]*</strong>)?</td>.*?name="sid" value="([^"]+)"', html, re.S)
    other = next(sid for browser, sid in rows if "Android" in browser)
    fields = _fields(html, "/auth/account/sessions/end")
    ended = laptop.post("/auth/account/sessions/end", data={**fields, "sid": other})
    assert "Signed out 1 browser(s)." in text(ended)
    assert phone.get("/portal/").headers["Location"] == "/?state=ended"
    assert 'name="step" value="login"' in phone.get("/auth/account").get_data(as_text=True)
    assert laptop.get("/portal/").status_code == 200
    forged = laptop.post("/auth/account/sessions/end", data={"csrf_token": "forged", "others": "1"})
    assert forged.status_code == 400


def test_the_sign_out_form_of_the_account_pages_ends_the_portal_too(app, client, patients, fhir):
    sign_in(client, "maria")
    token = _portal_token(app, client)
    page = client.get("/auth/apps").get_data(as_text=True)
    action, fields = form(page, "<nav")
    assert action == "/auth/logout"
    out = client.post(action, data=fields)
    assert out.status_code == 200 and "You are signed out" in text(out)
    assert fhir.with_token(token).get("Patient/p1").status_code == 401


def test_rp_initiated_logout_needs_an_id_token_of_this_server(client, patients):
    assert client.get("/auth/logout?id_token_hint=not.a.token").status_code == 400
    assert client.get("/auth/logout").status_code == 400
    discovery = client.get("/fhir/.well-known/openid-configuration").get_json()
    assert discovery["end_session_endpoint"] == "http://localhost/auth/logout"
