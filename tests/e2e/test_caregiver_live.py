"""A caregiver over HTTP against the live server: the demo caregiver ``linda`` (RelatedPerson/relatedperson-01,
acting for patient-002) completes a standalone SMART launch with the public demo app and sees only
that patient."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import requests
from joserfc import jwt

from tests.e2e.test_smart_live import (  # noqa: F401  (live: the module's fixture, demo accounts loaded)
    PUBLIC_APP,
    REDIRECT_URI,
    _authorize_url,
    _bearer,
    _form,
    _launch,
    _pkce,
    _server_keys,
    _token,
    live,
)

LINDA = ("linda", "demo-caregiver-pass", "patient-002")
CAREGIVER = "RelatedPerson/relatedperson-01"
SCOPE = "launch/patient openid fhirUser patient/Patient.rs patient/RelatedPerson.rs patient/Observation.rs"


def test_caregiver_standalone_launch_sees_only_the_patient_cared_for(live):  # noqa: F811
    code, verifier = _launch(live, scope=SCOPE, user=LINDA)
    response = _token(live, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                             "code_verifier": verifier, "client_id": PUBLIC_APP})
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["patient"] == "patient-002"
    claims = jwt.decode(token["id_token"], _server_keys(live)).claims
    assert claims["fhirUser"].endswith(CAREGIVER), claims
    headers = _bearer(token["access_token"])
    base = live["base_url"]

    caregiver = requests.get(claims["fhirUser"], headers=headers, timeout=30)
    assert caregiver.status_code == 200, caregiver.text
    assert caregiver.json()["patient"] == {"reference": "Patient/patient-002"}
    assert requests.get(f"{base}/{CAREGIVER}", headers=headers, timeout=30).status_code == 200
    assert requests.get(f"{base}/Patient/patient-002", headers=headers, timeout=30).status_code == 200
    other = requests.get(f"{base}/Patient/patient-001", headers=headers, timeout=30)
    assert other.status_code == 404 and other.json()["resourceType"] == "OperationOutcome"
    observations = requests.get(f"{base}/Observation", params={"patient": "patient-001"}, headers=headers, timeout=30)
    assert observations.status_code == 200 and not observations.json().get("entry")


def test_caregiver_cannot_pick_another_patient_on_the_consent_page(live):  # noqa: F811
    verifier, challenge = _pkce()
    session = requests.Session()
    page = session.get(_authorize_url(live, PUBLIC_APP, SCOPE, challenge, str(uuid.uuid4())), timeout=30)
    assert page.status_code == 200, page.text
    action, csrf = _form(page.text)
    consent = session.post(action, data={"csrf_token": csrf, "step": "login", "username": LINDA[0],
                                         "password": LINDA[1]}, allow_redirects=False, timeout=30)
    assert consent.status_code == 200, consent.text
    assert "patient-001" not in consent.text
    action, csrf = _form(consent.text)
    scopes = re.findall(r'name="scope" value="([^"]*)" checked', consent.text.replace("&amp;", "&"))
    tampered = session.post(action, data={"csrf_token": csrf, "step": "consent", "decision": "allow",
                                          "scope": scopes, "patient": "patient-001"},
                            allow_redirects=False, timeout=30)
    assert tampered.status_code == 302
    query = parse_qs(urlsplit(tampered.headers["Location"]).query)
    assert "code" not in query and query["error"] == ["invalid_request"]
