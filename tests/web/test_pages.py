"""The portal's pages with the Flask test client against a real database: signing in through the
authorization server, the health summary, lab results and vital signs (exactly what a FHIR search with
a patient token returns), caregivers switching records, downloading the record, signing out."""

from __future__ import annotations

import json
import re

import pytest

from fhirportal.web.sessions import COOKIE
from tests.web.flows import PASSWORD, follow, form, sign_in, text

WITHHELD = ("p1-a1c-unshared", "p1-a1c-nopat")


def _cookie(client) -> str | None:
    found = client.get_cookie(COOKIE)
    return found.value if found else None


def _session(app, client):
    return app.extensions["web"].sessions.load(_cookie(client))


def _patient_token(ctx, account, patient_id: str, scope: str = "patient/*.rs") -> str:
    return ctx.tokens.mint(client_id="an-app", scope=scope, account_id=account.id,
                           context={"patient": patient_id, "fhirUser": account.fhir_user})


def _searched_ids(fhir, query: str) -> set[str]:
    response = fhir.get(query)
    assert response.status_code == 200, response.get_json()
    return {e["resource"]["id"] for e in response.get_json().get("entry", [])}


def test_the_home_page_leads_to_signing_in_invitations_and_the_api(client):
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for link in ("/portal/signin", "/portal/invitation", "/portal/forgot-password", "/fhir/metadata",
                 "/fhir/.well-known/smart-configuration", "/api-docs/"):
        assert f'href="{link}"' in html, link
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    invitation = client.get("/portal/invitation")
    assert invitation.status_code == 200 and "PIN" in text(invitation) and "phone" in text(invitation)


def test_signing_in_shows_the_health_summary_in_the_patients_words(client, practice):
    page = sign_in(client, "maria")
    assert page.status_code == 200 and page.request.path == "/portal/"
    shown = text(page)
    assert "Your record: Maria Garcia" in shown and "born April 12, 1968" in shown
    for expected in ("Metformin ER 500 mg tablet", "1 tablet daily with the evening meal", "Penicillin",
                     "Type 2 diabetes mellitus", "since March 1, 2019", "Diabetes follow-up",
                     "Thursday, January 15, 2099 at 11:00 AM", "Annual physical", "Dr. Elena Vasquez",
                     "Primary care provider", "Hemoglobin A1c", "Blood pressure"):
        assert expected in shown, expected
    assert "Amoxicillin" not in shown  # stopped: not an active medication
    assert "860975" not in shown and "44054006" not in shown  # codes are shown by their display text
    assert "9.9" not in shown and "6.2 %" not in shown  # the NOPAT and the unshared result


def test_every_section_says_when_it_is_empty(client, ctx, app, practice):
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"text": "New Patient"}]}, fhir_id="p9")
    app.extensions["smart"].accounts.create("newbie", "a long enough passphrase", kind="patient",
                                            fhir_user="Patient/p9", patients=("p9",))
    shown = text(sign_in(client, "newbie", "a long enough passphrase"))
    for empty in ("No active medications on file.", "No known allergies on file.", "No immunizations on file.",
                  "No upcoming appointments.", "No visits on file.", "No lab results shared with you yet.",
                  "No vital signs on file.", "No care team on file."):
        assert empty in shown, empty
    assert "No lab results have been shared with you yet" in text(client.get("/portal/labs"))


def test_lab_results_are_exactly_what_a_search_with_the_patients_token_returns(client, ctx, practice, fhir):
    sign_in(client, "maria")
    page = client.get("/portal/labs")
    html = page.get_data(as_text=True)
    shown = set(re.findall(r'data-observation="([^"]+)"', html))
    app_fhir = fhir.with_token(_patient_token(ctx, practice["maria"], "p1"))
    expected = _searched_ids(app_fhir, "Observation?patient=p1&category=laboratory")
    assert shown == expected == {"p1-a1c-1", "p1-a1c-2", "p1-a1c-3"}
    assert re.search(r'data-count="(\d+)"', html).group(1) == str(len(expected))
    assert not set(WITHHELD) & shown and "9.9" not in html
    # grouped by test, newest first, flagged against the reference range, charted with the range shaded
    assert html.index('id="obs-p1-a1c-3"') < html.index('id="obs-p1-a1c-2"') < html.index('id="obs-p1-a1c-1"')
    assert "Latest: <strong>5.4 %</strong>" in html and html.count('<span class="flag">High</span>') == 2
    assert "Reference range: 4 % – 5.6 %" in html
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and '<rect class="range"' in svg and svg.count("<circle") == 3
    assert svg.count('class="point out"') == 2 and "shaded range 4–5.6 %" in svg


def test_vital_signs_chart_blood_pressure_and_weight(client, practice):
    sign_in(client, "maria")
    html = client.get("/portal/vitals").get_data(as_text=True)
    assert "Latest: <strong>128/79 mmHg</strong>" in html and "Latest: <strong>79.5 kg</strong>" in html
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 2
    pressure = next(c for c in charts if "Blood pressure" in c)
    assert pressure.count("<polyline") == 2 and pressure.count('<rect class="range"') == 2
    assert "typical adult range" in html


def test_a_caregiver_chooses_whose_record_and_switches(client, ctx, practice, fhir):
    chosen = sign_in(client, "linda", patient="p1")
    assert "You are viewing the record of Maria Garcia, whom you care for" in text(chosen)
    assert 'href="/portal/signin"' in chosen.get_data(as_text=True)  # switch to another record
    first_token = _session(client.application, client).content["access_token"]

    picker = follow(client, client.get("/portal/signin"))  # signed in at the authorization server: no password
    assert "Whose record" in text(picker) and "James Carter" in text(picker) and "Maria Garcia" in text(picker)
    action, fields = form(picker.get_data(as_text=True))
    switched = follow(client, client.post(action, data={**fields, "patient": "p2", "decision": "allow"}))
    assert "You are viewing the record of James Carter, whom you care for" in text(switched)
    labs = set(re.findall(r'data-observation="([^"]+)"', client.get("/portal/labs").get_data(as_text=True)))
    assert labs == {"p2-a1c-1", "p2-a1c-2", "p2-a1c-3"}
    assert fhir.with_token(first_token).get("Patient/p1").status_code == 401  # the first record's token ended


def test_signing_out_revokes_the_tokens_and_ends_the_authorization_servers_session(client, app, fhir, practice):
    sign_in(client, "maria")
    session = _session(app, client)
    access = session.content["access_token"]
    assert fhir.with_token(access).get("Patient/p1").status_code == 200
    page = client.get("/portal/")
    action, fields = form(page.get_data(as_text=True), "<nav")
    assert action == "/portal/signout"
    bad = client.post("/portal/signout", data={"csrf_token": "forged"})
    assert bad.status_code == 400 and _session(app, client) is not None
    out = client.post(action, data=fields)
    assert out.status_code == 303 and out.headers["Location"].startswith("/auth/logout?id_token_hint=")
    home = follow(client, out)
    assert home.request.path == "/" and "You are signed out." in text(home)
    assert fhir.with_token(access).get("Patient/p1").status_code == 401
    assert client.get("/portal/").headers["Location"] == "/portal/signin"
    assert 'name="step" value="login"' in client.get("/auth/apps").get_data(as_text=True)  # signed out there too


def test_signing_in_replaces_the_session_id(client, app, practice):
    login = follow(client, client.get("/portal/signin"))
    before = _cookie(client)
    assert before and not _session(app, client).signed_in
    action, fields = form(login.get_data(as_text=True))
    follow(client, client.post(action, data={**fields, "username": "maria", "password": PASSWORD}))
    after = _cookie(client)
    assert after != before and _session(app, client).signed_in
    assert app.extensions["web"].sessions.load(before) is None  # the id the browser had before is worthless
    cookie = [h for h in client.get("/portal/signin").headers.getlist("Set-Cookie") if h.startswith(COOKIE)][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_tokens_are_refreshed_before_they_expire(client, app, ctx, practice, fhir):
    sign_in(client, "maria")
    session = _session(app, client)
    old_access = session.content["access_token"]
    session.content["expires_at"] -= 3600 - 30  # 30 s left
    app.extensions["web"].sessions.save(session)
    assert client.get("/portal/").status_code == 200
    renewed = _session(app, client).content
    assert renewed["access_token"] != old_access and renewed["expires_at"] > session.content["expires_at"]
    assert fhir.with_token(renewed["access_token"]).get("Patient/p1").status_code == 200


def test_a_session_whose_tokens_were_revoked_ends(client, ctx, practice):
    sign_in(client, "maria")
    with ctx.database.write() as conn:
        ctx.tokens.revoke_account(conn, practice["maria"].id)
    page = client.get("/portal/labs")
    assert page.status_code == 303 and page.headers["Location"] == "/?state=ended"
    assert client.get_cookie(COOKIE) is None


def test_the_record_downloads_as_one_fhir_bundle(client, practice):
    sign_in(client, "maria")
    download = client.get("/portal/record.json")
    assert download.status_code == 200 and download.mimetype == "application/fhir+json"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="health-record-')
    bundle = json.loads(download.data)
    ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
    assert bundle["type"] == "collection" and ("Patient", "p1") in ids and ("Observation", "p1-a1c-1") in ids
    assert not {("Observation", w) for w in WITHHELD} & ids and ("Patient", "p2") not in ids
    assert "Download my record (JSON)" in text(client.get("/portal/record"))


def test_the_printable_summary(client, practice):
    sign_in(client, "maria")
    page = client.get("/portal/print")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Health summary of Maria Garcia" in html
    assert '<script src="/static/print.js"></script>' in html and "<script>" not in html
    assert "Hemoglobin A1c" in html and "5.4 %" in html
    assert "@media print" in client.get("/static/portal.css").get_data(as_text=True)


def test_a_staff_account_has_no_record_in_the_portal(client, app, practice):
    app.extensions["smart"].accounts.create("nurse", "a long enough passphrase", kind="staff",
                                            fhir_user="Practitioner/dr", roles=("staff",))
    page = sign_in(client, "nurse", "a long enough passphrase")
    assert page.status_code == 403 and "no patient record" in text(page)


@pytest.mark.parametrize("path", ["/portal/", "/portal/labs", "/portal/vitals", "/portal/record",
                                  "/portal/record.json", "/portal/print"])
def test_pages_of_the_record_need_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 303 and response.headers["Location"] == "/portal/signin"


def test_a_callback_without_its_sign_in_is_refused(client, practice):
    assert client.get("/portal/callback?code=x&state=y").status_code == 400
    client.get("/portal/signin")
    assert client.get("/portal/callback?code=x&state=forged").status_code == 400


def test_an_api_that_cannot_answer_gives_a_page_that_says_so(client, app, practice, monkeypatch):
    sign_in(client, "maria")
    from fhirportal.web import client as web_client

    def unavailable(self, path, query=None):
        raise web_client.ApiError(503, "the database is unavailable")

    monkeypatch.setattr(web_client.FhirApi, "get", unavailable)
    page = client.get("/portal/labs")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "could not be read just now" in text(page) and _session(app, client) is not None
