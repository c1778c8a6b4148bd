"""The patient portal (``fhirportal.web``) in a real headless browser (Playwright driving Debian's
chromium) against the live gunicorn server with the demo practice.

Every page is checked with axe-core (``tests/e2e/vendor/axe-core``, the npm package's axe.min.js, run
in the page: WCAG 2.0/2.1 A and AA rules), at a desktop width and on a 375-pixel phone (no sideways
scrolling), with no Content-Security-Policy violation in the console; a screenshot of each is saved
under ``test-artifacts/portal/``. Then the scenarios: a patient sees exactly what a FHIR search with her
token returns and never a withheld lab; a caregiver switches patients; a new patient goes from the
invitation email to the chart of a shared lab result; a password reset through the outbox; a consent
narrowed by kind of record gives the app 403s.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from fhirportal.smart.accounts import AccountStore
from fhirportal.store.database import Database
from fhirportal.store.outbox_schema import outbox
from tests.e2e.test_portal_browser import _invite, _register_in_browser
from tests.e2e.test_smart_live import (  # noqa: F401  (live: the module's fixture, demo accounts loaded)
    PUBLIC_APP,
    REDIRECT_URI,
    _authorize_url,
    _bearer,
    _pkce,
    _token,
    live,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)")

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "portal"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MARIA = ("maria", "demo-patient-pass", "patient-001")
JAMES = ("james", "demo-patient-pass", "patient-002")
LINDA = ("linda", "demo-caregiver-pass")
LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
SHARED_TAG = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


class Tab:
    """A browser profile of its own (no cookies), its console's CSP complaints collected."""

    def __init__(self, browser, width: int = 1100):
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.width = width
        self.csp_errors: list[str] = []
        self.page.on("console", lambda message: "Content Security Policy" in message.text
                     and self.csp_errors.append(message.text))

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser):
    opened = Tab(browser)
    yield opened
    opened.close()


@pytest.fixture
def phone(browser):
    opened = Tab(browser, width=375)
    yield opened
    opened.close()


def check_page(tab: Tab, name: str) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation, nothing scrolls sideways, no CSP complaint; a screenshot."""
    page = tab.page
    page.wait_for_load_state("load")
    page.evaluate(AXE.read_text() + "\n;true")  # through DevTools: the page's CSP allows no injected script
    result = page.evaluate("async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
    violations = [f"{v['id']}: {v['help']} ({len(v['nodes'])}: {v['nodes'][0]['target']})"
                  for v in result["violations"]]
    page.screenshot(path=str(ARTIFACTS / f"{name}-{tab.width}px.png"), full_page=True)
    assert not violations, f"{name}: {violations}"
    assert len(result["passes"]) >= 5, f"{name}: axe checked almost nothing"
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= tab.width, f"{name}: {overflow}px wide on a {tab.width}px screen"
    assert not tab.csp_errors, f"{name}: {tab.csp_errors}"


def sign_in(tab: Tab, live, user: tuple, patient_name: str | None = None) -> None:  # noqa: F811
    page = tab.page
    page.goto(f"{live['origin']}/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("User name").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Sign in").click()
    if patient_name:
        page.get_by_role("heading", name="Whose record do you want to see?").wait_for()
        page.get_by_label(patient_name).check()
        page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Health summary").wait_for()


def _observation_ids(page) -> set[str]:
    return set(page.eval_on_selector_all("[data-observation]", "rows => rows.map(r => r.dataset.observation)"))


def _app_token(live, user: tuple, scope: str = "launch/patient openid patient/*.rs", untick=()) -> dict:  # noqa: F811
    from tests.e2e.test_smart_live import _callback, _sign_in_and_consent

    verifier, challenge = _pkce()
    callback = _callback(_sign_in_and_consent(requests.Session(), _authorize_url(
        live, PUBLIC_APP, scope, challenge, str(uuid.uuid4())), user, untick=untick))
    response = _token(live, {"grant_type": "authorization_code", "code": callback["code"], "client_id": PUBLIC_APP,
                             "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def _search(live, query: str, token: str | None = None) -> list[dict]:  # noqa: F811
    url, found = f"{live['base_url']}/{query}", []
    while url:
        response = requests.get(url, headers=_bearer(token) if token else None, timeout=30)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "include"]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return found


# ---------------------------------------------------------------------- every page
def test_every_page_is_accessible_on_a_desktop_and_a_phone(live, tab, phone):  # noqa: F811
    for opened in (tab, phone):
        page = opened.page
        for path, name in (("/", "home"), ("/portal/invitation", "invitation"),
                           ("/portal/forgot-password", "forgot-password")):
            page.goto(live["origin"] + path)
            check_page(opened, name)
        page.goto(live["origin"] + "/portal/signin")
        page.get_by_role("heading", name="Sign in").wait_for()
        check_page(opened, "sign-in")
        sign_in(opened, live, MARIA)
        check_page(opened, "summary")
        for link, name in (("Appointments", "appointments"), ("Lab results", "labs"), ("Vital signs", "vitals"),
                           ("Messages", "messages"), ("Forms", "forms"),
                           ("Download my record", "record"),
                           ("Connected apps", "apps"), ("Who looked at my record", "access-log"),
                           ("Account", "account")):
            page.get_by_role("navigation").get_by_role("link", name=link).click()
            page.get_by_role("heading", level=1).wait_for()
            check_page(opened, name)
        page.goto(live["origin"] + "/portal/print")
        check_page(opened, "print")
        assert page.get_by_role("button", name="Print this page").is_visible()  # its script ran (CSP: 'self')
        page.goto(live["origin"] + "/portal/")
        page.get_by_role("navigation").get_by_role("button", name="Sign out").click()
        page.get_by_text("You are signed out.").wait_for()
        check_page(opened, "signed-out")


def test_keyboard_reaches_the_navigation_first(live, tab):  # noqa: F811
    sign_in(tab, live, MARIA)
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent.trim()") == "Skip to the main content"
    tab.page.keyboard.press("Enter")
    assert tab.page.url.endswith("#main")


# ---------------------------------------------------------------------- what the patient sees
def test_a_patient_sees_exactly_what_a_search_with_her_token_returns(live, tab):  # noqa: F811
    token = _app_token(live, MARIA)["access_token"]
    patient = MARIA[2]
    sign_in(tab, live, MARIA)
    page = tab.page
    shown = page.locator("#medications li").count()
    active = _search(live, f"MedicationRequest?patient={patient}&status=active", token)
    reported = _search(live, f"MedicationStatement?patient={patient}&status=active", token)
    assert shown == len(active) + len(reported) > 0
    for path, category in (("/portal/labs", LAB), ("/portal/vitals", VITALS)):
        page.goto(live["origin"] + path)
        found = {o["id"] for o in _search(live, f"Observation?patient={patient}&category={category}", token)}
        assert _observation_ids(page) == found and found
        assert page.locator("#result-count").get_attribute("data-count") == str(len(found))
    every_lab = {o["id"] for o in _search(live, f"Observation?patient={patient}&category={LAB}")}  # staff view
    withheld = every_lab - {o["id"] for o in _search(live, f"Observation?patient={patient}&category={LAB}", token)}
    assert withheld, "the demo data changed: patient-001 should have labs the practice did not share"
    page.goto(live["origin"] + "/portal/labs")
    assert not withheld & _observation_ids(page)
    page.goto(live["origin"] + "/portal/record")
    with page.expect_download(timeout=120_000) as download:  # the whole record: the slowest page
        page.get_by_role("link", name="Download my record (JSON)").click()
    bundle = json.loads(Path(download.value.path()).read_text())
    ids = {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    assert bundle["type"] == "collection" and ids and not withheld & ids


def test_requesting_an_appointment(live, tab, phone):  # noqa: F811
    """Free slots by day, one requested with a reason, the request listed and withdrawn (fhirportal/scheduling)."""
    from datetime import UTC, datetime, timedelta

    base = live["base_url"]
    first = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    bodies = [{"resourceType": "Schedule", "id": "browser-schedule", "actor": [
        {"reference": "Practitioner/practitioner-01"}]}]
    starts = [first + timedelta(days=n // 2, minutes=30 * (n % 2)) for n in range(4)]
    bodies += [{"resourceType": "Slot", "id": f"browser-slot-{n}", "status": "free",
                "schedule": {"reference": "Schedule/browser-schedule"}, "start": start.isoformat(),
                "end": (start + timedelta(minutes=30)).isoformat()} for n, start in enumerate(starts)]
    for body in bodies:
        written = requests.put(f"{base}/{body['resourceType']}/{body['id']}", json=body,
                               headers={"Content-Type": "application/fhir+json"}, timeout=30)
        assert written.status_code in (200, 201), written.text
    for opened in (phone, tab):
        sign_in(opened, live, MARIA)
        page = opened.page
        page.get_by_role("navigation").get_by_role("link", name="Appointments").click()
        page.get_by_role("heading", name="Appointments", level=1).wait_for()
        check_page(opened, "appointments")
        page.get_by_role("link", name="Request an appointment").click()
        page.get_by_role("heading", name="Request an appointment").wait_for()
        assert page.locator("fieldset.day").count() >= 2
        check_page(opened, "appointment-request")
    page = tab.page
    page.locator('input[name="slot"]').first.check()
    page.get_by_label("What is the appointment for?").first.fill("A sore knee")
    page.get_by_role("button", name="Request this time").click()
    page.get_by_text("Your request was sent to the practice").wait_for()
    check_page(tab, "appointment-requested")
    assert requests.get(f"{base}/Slot/browser-slot-0", timeout=30).json()["status"] == "busy-tentative"
    page.get_by_role("button", name="Withdraw this request").click()
    page.get_by_text("Your appointment was cancelled.").wait_for()
    assert requests.get(f"{base}/Slot/browser-slot-0", timeout=30).json()["status"] == "free"


def test_a_caregiver_switches_between_the_patients_she_cares_for(live, tab):  # noqa: F811
    database = Database(live["database_url"])
    try:
        linda = AccountStore(database).by_username(LINDA[0])
        AccountStore(database).add_patient(linda.id, "patient-005")  # a second child in her care
    finally:
        database.dispose()
    sign_in(tab, live, LINDA, patient_name="James Robert Whitfield")
    page = tab.page
    banner = page.get_by_role("note")
    assert "You are viewing the record of James Robert Whitfield Sr., whom you care for" in banner.inner_text()
    check_page(tab, "caregiver-summary")
    page.get_by_role("link", name="Switch to another record").click()
    page.get_by_role("heading", name="Whose record do you want to see?").wait_for()
    check_page(tab, "choose-record")
    page.get_by_label("Sophia Chen").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Health summary").wait_for()
    assert "You are viewing the record of Sophia Chen, whom you care for" in page.get_by_role("note").inner_text()
    page.goto(live["origin"] + "/portal/labs")
    staff = {o["id"] for o in _search(live, f"Observation?patient=patient-005&category={LAB}")}
    assert _observation_ids(page) <= staff and not _observation_ids(page) & {
        o["id"] for o in _search(live, f"Observation?patient=patient-002&category={LAB}")}


def test_a_new_patient_goes_from_the_invitation_email_to_a_lab_chart(live, tab):  # noqa: F811
    patient = "patient-004"
    base = live["base_url"]
    for when, value in (("2026-03-02T09:00:00-07:00", 7.8), ("2026-06-02T09:00:00-07:00", 7.1),
                        ("2026-09-02T09:00:00-07:00", 6.4)):  # the EHR sends results, the practice shares them
        created = requests.post(f"{base}/Observation", json={
            "resourceType": "Observation", "status": "final", "meta": {"tag": [SHARED_TAG]},
            "category": [{"coding": [{"system": LAB.split("|")[0], "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}], "text": "Hemoglobin A1c"},
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "%"},
            "referenceRange": [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.6, "unit": "%"}}]},
            headers={"Content-Type": "application/fhir+json"}, timeout=30)
        assert created.status_code == 201, created.text
    link, pin = _invite(live, f"Patient/{patient}")
    tab.page.goto(link)
    check_page(tab, "register")
    _register_in_browser(tab.page, link, birth_date="1972-11-05", pin=pin, username="minh")
    check_page(tab, "registered")
    sign_in(tab, live, ("minh", "a long enough passphrase"))
    page = tab.page
    page.get_by_role("navigation").get_by_role("link", name="Lab results").click()
    chart = page.get_by_role("img", name="Hemoglobin A1c over time")
    chart.wait_for()
    assert chart.locator("circle").count() >= 3 and chart.locator("rect.range").count() == 1
    check_page(tab, "new-patient-lab-chart")


def _outbox_body(server: dict, recipient: str, within: float = 15.0) -> str:
    """The newest email queued for the recipient. The reset email is queued after the page's answer
    has gone out (its timing must tell nothing), so the browser can show the page first: wait for it."""
    database = Database(server["database_url"])
    deadline = time.monotonic() + within
    try:
        while True:
            with database.read() as conn:
                body = conn.execute(select(outbox.c.body).where(outbox.c.recipient == recipient)
                                    .order_by(outbox.c.id.desc()).limit(1)).scalar()
            if body is not None or time.monotonic() > deadline:
                assert body is not None, f"no email to {recipient} in the outbox after {within} s"
                return body
            time.sleep(0.05)
    finally:
        database.dispose()


def test_a_password_reset_through_the_outbox(live, tab):  # noqa: F811
    page = tab.page
    page.goto(f"{live['origin']}/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address").fill("james.whitfield@example.org")
    page.get_by_role("button", name="Email me a link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    body = _outbox_body(live, "james.whitfield@example.org")
    assert "'james'" in body and "Whitfield" not in body
    page.goto(re.search(r"https?://\S+/portal/reset-password\?t=\S+", body).group(0))
    check_page(tab, "reset-password")
    page.get_by_label("New password (at least 8 characters)").fill("james new passphrase")
    page.get_by_label("New password again").fill("james new passphrase")
    page.get_by_role("button", name="Change password").click()
    page.get_by_role("heading", name="Password changed").wait_for()
    page.goto(re.search(r"https?://\S+/portal/reset-password\?t=\S+", body).group(0))
    page.get_by_role("heading", name="Link expired").wait_for()  # single use
    sign_in(tab, live, ("james", "james new passphrase"))
    assert "Your record: James Robert Whitfield" in page.get_by_role("note").inner_text()


def test_a_consent_narrowed_by_kind_of_record_gives_the_app_403(live, tab):  # noqa: F811
    page = tab.page
    verifier, challenge = _pkce()
    page.route(lambda url: url.startswith(REDIRECT_URI),
               lambda route: route.fulfill(status=200, content_type="text/html", body="<p>the app</p>"))
    page.goto(_authorize_url(live, PUBLIC_APP, "launch/patient openid patient/*.rs", challenge, "s1"))
    page.get_by_label("User name").fill(MARIA[0])
    page.get_by_label("Password").fill(MARIA[1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=re.compile(r"^Allow ")).wait_for()
    check_page(tab, "consent-by-kind")
    page.get_by_label("Allergies", exact=True).uncheck()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(lambda url: url.startswith(REDIRECT_URI))
    code = parse_qs(urlsplit(page.url).query)["code"][0]
    token = _token(live, {"grant_type": "authorization_code", "code": code, "client_id": PUBLIC_APP,
                          "redirect_uri": REDIRECT_URI, "code_verifier": verifier}).json()
    base, bearer = live["base_url"], _bearer(token["access_token"])
    assert "AllergyIntolerance" not in token["scope"]
    assert requests.get(f"{base}/AllergyIntolerance?patient=patient-001", headers=bearer, timeout=30).status_code == 403
    medications = requests.get(f"{base}/MedicationRequest?patient=patient-001", headers=bearer, timeout=30)
    assert medications.status_code == 200
    page.goto(f"{live['origin']}/auth/apps")
    app = page.get_by_role("region", name="Demo patient app (public)")
    app.get_by_label("Medications", exact=True).uncheck()
    app.get_by_role("button", name="Keep only the ticked records").click()
    page.get_by_text("access narrowed").wait_for()
    check_page(tab, "apps-narrowed")
    assert requests.get(f"{base}/MedicationRequest?patient=patient-001", headers=bearer, timeout=30).status_code == 403
    assert requests.get(f"{base}/Condition?patient=patient-001", headers=bearer, timeout=30).status_code == 200


# ---------------------------------------------------------------------- secure messages
def test_a_patient_writes_to_the_practice_with_a_file_and_reads_the_thread(live, tab):  # noqa: F811
    sign_in(tab, live, MARIA)
    page = tab.page
    page.get_by_role("navigation").get_by_role("link", name="Messages").click()
    page.get_by_role("heading", level=1, name="Messages").wait_for()
    check_page(tab, "messages")
    page.get_by_role("link", name="Write to your practice").click()
    page.get_by_role("heading", level=1, name="Write to your practice").wait_for()
    check_page(tab, "compose")
    topic = f"Moving my appointment {uuid.uuid4().hex[:6]}"
    page.get_by_label("Subject").fill(topic)
    page.get_by_label("Your message").fill("Could we move my next visit to the afternoon?")
    page.get_by_label("Attach a file").set_input_files(
        files=[{"name": "schedule.txt", "mimeType": "text/plain", "buffer": b"free after 2 pm"}])
    page.get_by_role("button", name="Send message").click()
    page.get_by_role("heading", level=1, name=topic).wait_for()
    check_page(tab, "thread")
    assert page.get_by_role("link", name="schedule.txt").is_visible()
    page.get_by_role("link", name="All messages").click()
    page.get_by_role("heading", level=1, name="Messages").wait_for()
    assert page.get_by_role("link", name=topic).is_visible()


def test_a_patient_fills_in_an_intake_form_the_practice_assigned(live, tab):  # noqa: F811
    """The practice assigns a form (an in-progress QuestionnaireResponse); the patient fills it in, a
    refused answer is shown on the form, then sent: the practice reads it back completed."""
    base = live["base_url"]
    form_id = f"browser-intake-{uuid.uuid4().hex[:6]}"
    questionnaire = {"resourceType": "Questionnaire", "id": form_id, "status": "active",
                     "url": f"https://practice.example.org/forms/{form_id}", "title": "Before your visit",
                     "item": [{"linkId": "reason", "text": "What brings you in?", "type": "string", "required": True},
                              {"linkId": "pain", "text": "Are you in pain?", "type": "boolean"},
                              {"linkId": "scale", "text": "How bad, 0 to 10?", "type": "integer"}]}
    assert requests.put(f"{base}/Questionnaire/{form_id}", json=questionnaire, timeout=30).status_code == 201
    assigned = requests.post(f"{base}/QuestionnaireResponse", timeout=30, json={
        "resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire": questionnaire["url"],
        "subject": {"reference": "Patient/patient-001"}, "author": {"reference": "Practitioner/practitioner-01"}})
    assert assigned.status_code == 201, assigned.text
    sign_in(tab, live, MARIA)
    page = tab.page
    page.get_by_role("navigation").get_by_role("link", name="Forms").click()
    page.get_by_role("heading", level=1, name="Forms").wait_for()
    check_page(tab, "forms")
    page.locator("#waiting").get_by_role("link", name="Before your visit").click()
    page.get_by_role("heading", level=1, name="Before your visit").wait_for()
    check_page(tab, "form")
    page.get_by_label("Yes").check()
    page.get_by_label("How bad, 0 to 10?").fill("4")
    page.get_by_role("button", name="Send to the practice").click()  # the required reason left out
    page.get_by_text("Please check your answers").wait_for()
    assert page.get_by_label("How bad, 0 to 10?").input_value() == "4"  # what was typed stays
    page.get_by_label("What brings you in?").fill("A sore knee")
    page.get_by_role("button", name="Send to the practice").click()
    page.get_by_text("your answers were sent to the practice").wait_for()
    stored = requests.get(f"{base}/QuestionnaireResponse/{assigned.json()['id']}", timeout=30).json()
    assert stored["status"] == "completed"
    assert {item["linkId"]: item["answer"] for item in stored["item"]} == {
        "reason": [{"valueString": "A sore knee"}], "pain": [{"valueBoolean": True}], "scale": [{"valueInteger": 4}]}
