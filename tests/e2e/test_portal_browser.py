"""Portal enrollment end to end in a real headless browser (Playwright driving Debian's chromium)
against the live gunicorn server.

What it proves, for a patient and for a caregiver (RelatedPerson) alike:

1. staff invite them (``$portal-invite``) and read the PIN (``$portal-status``); the email with the
   registration link lands in the outbox;
2. the person opens that link in the browser, fills in date of birth + PIN, a user name and a
   password, and clicks Register;
3. the person then signs in through a SMART standalone launch of the demo public app (authorization
   code + PKCE): the login page, the consent page, Allow; the app's redirect_uri is intercepted in
   the browser to pick up the code, which is exchanged for a token;
4. that token is for the right patient (the patient cared for, for the caregiver) and its Observation
   search returns exactly the lab results the practice shared — never the ones it withheld, whether
   never shared or labelled NOPAT with ``$portal-withhold``.
"""

from __future__ import annotations

import re
import shutil
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from sqlalchemy import select

from fhirportal.store.database import Database
from fhirportal.store.outbox_schema import outbox
from tests.e2e.test_smart_live import (  # noqa: F401  (live: the module's fixture, demo accounts loaded)
    PUBLIC_APP,
    REDIRECT_URI,
    _authorize_url,
    _bearer,
    _pkce,
    _server_keys,
    _token,
    live,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)")

PASSWORD = "a long enough passphrase"
LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
SHARED_TAG = ("https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "shared-with-patient")
NOPAT = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "NOPAT")
SCOPE = "launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs"


# -- the browser ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile (no cookies) per person."""
    context = browser.new_context()
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


# -- the practice's side (staff / EHR with the system token) ------------------------------------------

def _params(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in body["parameter"]}


def _invite(server, subject: str) -> tuple[str, str]:
    """Invite ``subject`` (Patient/… or RelatedPerson/…); the emailed registration link and the PIN
    the practice tells the person."""
    invited = _params(requests.post(f"{server['base_url']}/{subject}/$portal-invite", timeout=30))
    assert invited["status"] == "invited" and invited["email"]
    status = _params(requests.get(f"{server['base_url']}/{subject}/$portal-status", timeout=30))
    return _emailed_link(server, invited["email"]), status["accessCode"]


def _emailed_link(server, to: str) -> str:
    """The registration link in the latest email to ``to``, read from the server's outbox table."""
    database = Database(server["database_url"])
    try:
        with database.read() as conn:
            body = conn.execute(select(outbox.c.body).where(outbox.c.channel == "email", outbox.c.recipient == to)
                                .order_by(outbox.c.id.desc()).limit(1)).scalar_one()
    finally:
        database.dispose()
    link = re.search(r"https?://\S+/portal/register\?t=\S+", body).group(0)
    assert link.startswith(server["origin"]), link
    return link


def _has(codings: list, wanted: tuple[str, str]) -> bool:
    return any((c.get("system"), c.get("code")) == wanted for c in codings)


def _searched(server, patient_id: str, headers: dict | None = None) -> list[dict]:
    """Every lab Observation of the patient that a search with ``headers`` returns (all pages)."""
    url, found = f"{server['base_url']}/Observation", []
    params = {"patient": patient_id, "category": LAB, "_count": 100}
    while url:
        response = requests.get(url, params=params, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [entry["resource"] for entry in bundle.get("entry", [])]
        url, params = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None), None
    return found


def _relabel_one_each_way(server, patient_id: str) -> tuple[str, str]:
    """Staff share one withheld lab result and withhold (NOPAT) one shared one; their ids."""
    labs = _searched(server, patient_id)
    shared = [o["id"] for o in labs if _has(o.get("meta", {}).get("tag", []), SHARED_TAG)]
    unshared = [o["id"] for o in labs if o["id"] not in shared]
    assert len(shared) >= 2 and unshared, f"the demo data changed: {patient_id} labs {shared} / {unshared}"
    base = server["base_url"]
    assert requests.post(f"{base}/Observation/{unshared[0]}/$portal-share", timeout=30).status_code == 200
    assert requests.post(f"{base}/Observation/{shared[0]}/$portal-withhold", timeout=30).status_code == 200
    return unshared[0], shared[0]


def _shared_labs(server, patient_id: str) -> set[str]:
    """The lab results the practice shares with the patient as staff see them: tagged shared, not NOPAT."""
    return {o["id"] for o in _searched(server, patient_id)
            if _has(o.get("meta", {}).get("tag", []), SHARED_TAG) and not _has(o["meta"].get("security", []), NOPAT)}


# -- the person's side, in the browser ------------------------------------------------------------------

def _register_in_browser(page, link: str, *, birth_date: str, pin: str, username: str) -> None:
    """Open the emailed link and register with date of birth + PIN and a new user name and password."""
    page.goto(link)
    form = page.locator("form").filter(has=page.get_by_label("PIN (access code)"))
    form.get_by_label("Date of birth").fill(birth_date)
    form.get_by_label("PIN (access code)").fill(pin)
    form.get_by_label("User name", exact=True).fill(username)
    form.get_by_label("Password (at least 8 characters)").fill(PASSWORD)
    form.get_by_label("Password again").fill(PASSWORD)
    form.get_by_role("button", name="Register").click()
    page.get_by_role("heading", name="You are registered").wait_for()
    assert username in page.get_by_role("status").inner_text()


def _smart_launch_in_browser(page, server, *, username: str, scope: str = SCOPE) -> dict:
    """A standalone launch of the public demo app: sign in, Allow on the consent page, and the code
    from the redirect to the app (intercepted: nothing serves REDIRECT_URI) exchanged for a token."""
    verifier, challenge = _pkce()
    state = str(uuid.uuid4())
    page.route(lambda url: url.startswith(REDIRECT_URI),
               lambda route: route.fulfill(status=200, content_type="text/html", body="<p>the app</p>"))
    page.goto(_authorize_url(server, PUBLIC_APP, scope, challenge, state))

    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("heading", name=re.compile(r"^Allow ")).wait_for()
    assert f"Signed in as {username}" in page.locator("body").inner_text()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda url: url.startswith(REDIRECT_URI))

    callback = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert callback.get("state") == state and "error" not in callback, callback
    response = _token(server, {"grant_type": "authorization_code", "code": callback["code"],
                               "redirect_uri": REDIRECT_URI, "code_verifier": verifier, "client_id": PUBLIC_APP})
    assert response.status_code == 200, response.text
    return response.json()


def _assert_sees_only_shared_labs(server, token: dict, patient_id: str, newly_shared: str, withheld: str) -> None:
    seen = _searched(server, patient_id, headers=_bearer(token["access_token"]))
    assert {o["subject"]["reference"] for o in seen} == {f"Patient/{patient_id}"}
    seen_ids = {o["id"] for o in seen}
    assert seen_ids == _shared_labs(server, patient_id)
    assert newly_shared in seen_ids and withheld not in seen_ids
    assert len(seen_ids) < len(_searched(server, patient_id))  # some are withheld from the portal
    hidden = requests.get(f"{server['base_url']}/Observation/{withheld}", headers=_bearer(token["access_token"]),
                          timeout=30)
    assert hidden.status_code == 404


# -- the scenarios --------------------------------------------------------------------------------------

def test_patient_registers_from_the_email_and_sees_only_shared_labs(live, page):  # noqa: F811
    patient_id, birth_date = "patient-003", "1990-02-17"
    newly_shared, withheld = _relabel_one_each_way(live, patient_id)
    link, pin = _invite(live, f"Patient/{patient_id}")

    _register_in_browser(page, link, birth_date=birth_date, pin=pin, username="aiyana")
    token = _smart_launch_in_browser(page, live, username="aiyana")

    assert token["patient"] == patient_id
    _assert_sees_only_shared_labs(live, token, patient_id, newly_shared, withheld)


def test_caregiver_registers_and_sees_only_the_shared_labs_of_the_patient_cared_for(live, page):  # noqa: F811
    caregiver, patient_id = "RelatedPerson/relatedperson-03", "patient-006"
    birth_date = "1979-12-27"  # the caregiver's own, on her RelatedPerson in the demo practice
    record = requests.get(f"{live['base_url']}/{caregiver}", timeout=30).json()
    assert record["patient"] == {"reference": f"Patient/{patient_id}"} and record["birthDate"] == birth_date
    newly_shared, withheld = _relabel_one_each_way(live, patient_id)
    link, pin = _invite(live, caregiver)

    _register_in_browser(page, link, birth_date=birth_date, pin=pin, username="denise")
    token = _smart_launch_in_browser(page, live, username="denise",
                                     scope=f"{SCOPE} patient/RelatedPerson.rs")

    assert token["patient"] == patient_id
    assert jwt.decode(token["id_token"], _server_keys(live)).claims["fhirUser"].endswith(caregiver)
    _assert_sees_only_shared_labs(live, token, patient_id, newly_shared, withheld)
